"""Grants (code, then its access token's record), the jti replay guard, and pairings' session
revocations against Table Storage (Azurite)."""

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
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import find_grant
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.codes import new_grant_id
from sanscouture.oidc.token import grant_record
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


def issued_code(tables: Tables, grant_id: str | None = None) -> tuple[str, CodeGrant]:
    issued = grant()
    code = issue_code(tables["codes"], issued, grant_id or new_grant_id())
    assert code is not None
    return code, issued


def test_code_round_trips_through_table_storage_and_becomes_its_tokens_record(tables: Tables) -> None:
    code, issued = issued_code(tables)
    found = find_grant(tables["codes"], code)
    assert found is not None and found.row.expires_at == NOW + CODE_TTL
    assert CodeGrant.from_dict(found.row.data) == issued
    record = {**grant_record(issued, {"jti-a": NOW + 120}), "secret_sha256": found.row.data["secret_sha256"]}
    assert tables["codes"].replace(found.row, record, expires_in=120) is not None
    again = find_grant(tables["codes"], code)
    assert again is not None and again.redeemed and again.row.data["access"] == {"jti-a": NOW + 120}
    assert CodeGrant.from_dict(again.row.data) == issued  # what /userinfo serves, through Azurite's JSON


def test_one_journey_gives_one_code_even_under_concurrent_confirmations(tables: Tables) -> None:
    grant_id = new_grant_id()
    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = list(pool.map(lambda _: issue_code(tables["codes"], grant(), grant_id), range(10)))
    assert len([code for code in codes if code is not None]) == 1


def test_twenty_concurrent_redemptions_of_one_code_let_one_turn_it_into_tokens(tables: Tables) -> None:
    """What /token does: read the code, then replace it with the token's record (ETag condition)."""
    code, issued = issued_code(tables)

    def redeem(index: int) -> bool:
        found = find_grant(tables["codes"], code)
        if found is None or found.redeemed:
            return False
        record = {**grant_record(issued, {f"jti-{index}": NOW + 120}),
                  "secret_sha256": found.row.data["secret_sha256"]}
        return tables["codes"].replace(found.row, record, expires_in=120) is not None

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(redeem, range(20)))
    assert results.count(True) == 1


def test_expired_code_is_not_found(tables: Tables, clock: Clock) -> None:
    code, _ = issued_code(tables)
    clock.now += CODE_TTL
    assert find_grant(tables["codes"], code) is None


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


def test_a_revoked_grant_leaves_nothing_for_userinfo(tables: Tables) -> None:
    code, _ = issued_code(tables)
    grant_id = code.split(".")[0]
    assert tables["codes"].delete(grant_id, GRANT_ROW) is True
    assert tables["codes"].find(grant_id, GRANT_ROW) is None and find_grant(tables["codes"], code) is None
