"""Authorization codes: one per grant id, 256 random bits stored hashed, 60 s, found once redeemed."""

from __future__ import annotations

import hashlib

from sanscouture.models import CodeGrant
from sanscouture.oidc.codes import CODE_TTL
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import find_grant
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.codes import new_grant_id
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_grant


def test_a_code_is_its_grant_id_and_256_random_bits() -> None:
    store = FakeRowStore()
    codes = {issue_code(store, make_grant(), new_grant_id()) for _ in range(50)}
    assert len(codes) == 50 and None not in codes
    for code in codes:
        assert code is not None
        grant_id, secret = code.split(".")
        assert len(grant_id) == 32 and len(secret) == 43


def test_the_row_is_keyed_by_the_grant_and_holds_only_the_secrets_hash() -> None:
    store = FakeRowStore()
    grant = make_grant()
    code = issue_code(store, grant, "0" * 32)
    assert code is not None
    [(partition, row)] = store.rows
    assert (partition, row) == ("0" * 32, GRANT_ROW)
    stored = store.rows[(partition, row)]
    secret = code.split(".")[1]
    assert secret not in repr(stored.data)
    assert stored.data["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert CodeGrant.from_dict(stored.data) == grant and stored.data["state"] == "code"
    assert stored.expires_at == NOW + CODE_TTL == NOW + 60


def test_one_grant_id_gives_one_code_only() -> None:
    store = FakeRowStore()
    assert issue_code(store, make_grant(), "1" * 32) is not None
    assert issue_code(store, make_grant(), "1" * 32) is None  # a replayed confirmation of the journey


def test_a_code_is_found_with_its_secret_only() -> None:
    store = FakeRowStore()
    code = issue_code(store, make_grant(), new_grant_id())
    assert code is not None
    found = find_grant(store, code)
    assert found is not None and not found.redeemed and found.grant_id == code.split(".")[0]
    wrong_secret = code.split(".")[0] + "." + "A" * 43
    assert find_grant(store, wrong_secret) is None


def test_expired_code_is_not_found() -> None:
    store = FakeRowStore()
    code = issue_code(store, make_grant(), new_grant_id())
    assert code is not None
    store.clock.now += CODE_TTL
    assert find_grant(store, code) is None


def test_malformed_codes_never_reach_storage() -> None:
    store = FakeRowStore()
    for code in ("nope", "", "x" * 129, "0" * 32 + ".short", "g" * 32 + "." + "A" * 43):
        assert find_grant(store, code) is None
    assert store.calls == []
