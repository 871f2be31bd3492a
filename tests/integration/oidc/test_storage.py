"""Codes, jti replay guard and token revocation against Table Storage (Azurite)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from sanscouture.adapters.tables import Tables
from sanscouture.errors import InvalidClientError
from sanscouture.models import CodeGrant
from sanscouture.models import PscIdentity
from sanscouture.oidc.client_auth import record_assertion_jti
from sanscouture.oidc.client_auth import table_key
from sanscouture.oidc.codes import CODE_TTL
from sanscouture.oidc.codes import code_key
from sanscouture.oidc.codes import find_code
from sanscouture.oidc.codes import grant_id_of
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.token import revoke_tokens
from sanscouture.oidc.token import store_access_token
from tests.integration.conftest import NOW
from tests.integration.conftest import Clock


def grant(client_id: str = "rp-basic") -> CodeGrant:
    identity = PscIdentity.from_userinfo(
        {
            "sub": "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:899700427885",
            "SubjectNameID": "899700427885",
            "given_name": "KIT",
            "family_name": "DOC0042788",
            "authMode": "CARD",
            "SubjectRefPro": {"codeCivilite": "M", "exercices": [{"codeProfession": "10"}]},
            "otherIds": [{"identifiant": "899700427885", "origine": "RPPS", "qualite": 1}],
        }
    )
    return CodeGrant(
        client_id=client_id,
        redirect_uri="https://rp.example.fr/callback",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        scope=("openid", "scope_all"),
        identity=identity,
        auth_time=int(NOW) - 10,
        sid="sid-" + uuid.uuid4().hex,
        nonce="n-1",
    )


def test_code_round_trips_through_table_storage_and_is_used_once(tables: Tables) -> None:
    issued = grant()
    code = issue_code(tables["codes"], issued)
    row = tables["codes"].find(code_key(code), "grant")
    assert row is not None and row.expires_at == NOW + CODE_TTL
    assert CodeGrant.from_dict(row.data) == issued
    assert tables["codes"].consume_row(row) is True
    assert find_code(tables["codes"], code) is None


def test_twenty_concurrent_redemptions_of_one_code_let_one_consume_it(tables: Tables) -> None:
    """What /token does: read the code, record tokens, then consume the row it read (ETag delete)."""
    code = issue_code(tables["codes"], grant())

    def redeem(_: int) -> bool:
        row = find_code(tables["codes"], code)
        return row is not None and tables["codes"].consume_row(row)

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(redeem, range(20)))
    assert results.count(True) == 1


def test_expired_code_is_not_found(tables: Tables, clock: Clock) -> None:
    code = issue_code(tables["codes"], grant())
    clock.now += CODE_TTL
    assert find_code(tables["codes"], code) is None


def test_jti_is_accepted_once_even_with_characters_table_keys_forbid(tables: Tables) -> None:
    client_id = "rp/" + uuid.uuid4().hex  # "/" is forbidden in Table keys
    jti = "a/b\\c#d?e\x01" + uuid.uuid4().hex
    claims = {"jti": jti, "exp": NOW + 60}
    record_assertion_jti(tables["jti"], client_id, claims, NOW)
    with pytest.raises(InvalidClientError) as raised:
        record_assertion_jti(tables["jti"], client_id, claims, NOW)
    assert raised.value.description == "client_assertion was already used"
    row = tables["jti"].find(table_key(client_id), table_key(jti))
    assert row is not None and row.expires_at == NOW + 60 + 30


def test_a_jti_can_be_reused_once_its_guard_expired(tables: Tables, clock: Clock) -> None:
    claims = {"jti": uuid.uuid4().hex, "exp": NOW + 60}
    record_assertion_jti(tables["jti"], "rp-jwt", claims, NOW)
    clock.now += 91
    record_assertion_jti(tables["jti"], "rp-jwt", {**claims, "exp": clock.now + 60}, clock.now)


def test_tokens_of_a_grant_are_stored_and_revoked_together(tables: Tables) -> None:
    code = uuid.uuid4().hex
    gid = grant_id_of(code)
    issued = grant()
    store_access_token(tables["tokens"], issued, grant_id=gid, jti="jti-a", ttl=120)
    store_access_token(tables["tokens"], issued, grant_id=gid, jti="jti-b", ttl=120)
    row = tables["tokens"].find(gid, "jti-a")
    assert row is not None
    assert row.data["claims"] == dict(issued.identity.claims)
    assert row.data["scope"] == "openid scope_all"
    assert revoke_tokens(tables["tokens"], gid) == 2
    assert tables["tokens"].find(gid, "jti-a") is None
    assert tables["tokens"].partition(gid) == []
