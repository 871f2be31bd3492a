"""Authorization codes: 256 random bits, stored hashed, 60 s, single use."""

from __future__ import annotations

import hashlib

from sanscouture.models import CodeGrant
from sanscouture.oidc.codes import CODE_ROW
from sanscouture.oidc.codes import CODE_TTL
from sanscouture.oidc.codes import code_key
from sanscouture.oidc.codes import find_code
from sanscouture.oidc.codes import grant_id_of
from sanscouture.oidc.codes import issue_code
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_grant


def test_code_is_256_bits_of_urlsafe_randomness() -> None:
    store = FakeRowStore()
    codes = {issue_code(store, make_grant()) for _ in range(50)}
    assert len(codes) == 50
    assert all(len(code) == 43 and code.replace("-", "").replace("_", "").isalnum() for code in codes)


def test_row_is_keyed_by_the_code_hash_and_never_holds_the_code() -> None:
    store = FakeRowStore()
    grant = make_grant()
    code = issue_code(store, grant)
    [(partition, row)] = store.rows
    assert partition == hashlib.sha256(code.encode()).hexdigest() == code_key(code)
    assert row == CODE_ROW
    stored = store.rows[(partition, row)]
    assert code not in repr(stored.data)
    assert dict(stored.data) == grant.to_dict()
    assert stored.expires_at == NOW + CODE_TTL == NOW + 60


def test_a_code_is_found_until_its_row_is_consumed() -> None:
    store = FakeRowStore()
    grant = make_grant()
    code = issue_code(store, grant)
    row = find_code(store, code)
    assert row is not None and CodeGrant.from_dict(row.data) == grant
    assert store.consume_row(row) is True
    assert find_code(store, code) is None
    assert store.consume_row(row) is False


def test_expired_code_is_not_found() -> None:
    store = FakeRowStore()
    code = issue_code(store, make_grant())
    store.clock.now += CODE_TTL
    assert find_code(store, code) is None


def test_unknown_empty_or_oversized_codes_are_not_redeemed() -> None:
    store = FakeRowStore()
    assert find_code(store, "nope") is None
    assert find_code(store, "") is None
    assert find_code(store, "x" * 129) is None
    assert store.calls == ["find"]  # empty and oversized codes never reach storage


def test_grant_id_is_derived_from_the_code_but_differs_from_its_row_key() -> None:
    code = "abc"
    assert grant_id_of(code) == hashlib.sha256(b"grant:abc").hexdigest()
    assert grant_id_of(code) != code_key(code)
