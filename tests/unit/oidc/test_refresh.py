"""Refresh tokens (RFC 6749 6, RFC 9700 4.14): each check with its exact error, rotation and the family."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from sanscouture.bindings import BindingStore
from sanscouture.errors import InvalidGrantError
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import InvalidScopeError
from sanscouture.errors import OAuthError
from sanscouture.errors import UnauthorizedClientError
from sanscouture.keys import KeyRing
from sanscouture.models import Client
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.codes import new_grant_id
from sanscouture.oidc.refresh import REFUSED
from sanscouture.oidc.refresh import check_pairing_holds
from sanscouture.oidc.refresh import check_within_reauthentication
from sanscouture.oidc.token import IssuedTokens
from sanscouture.oidc.token import TokenEndpoint
from sanscouture.oidc.token import exchange_code
from sanscouture.oidc.userinfo import load_token_record
from sanscouture.web import Request
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import VERIFIER
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeTables
from tests.unit.oidc.fakes import make_grant
from tests.unit.oidc.fakes import make_identity
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import sha256_secret
from tests.unit.oidc.fakes import shared_key_source

REDIRECT = "https://rp.example.fr/callback"
GRANTS = ("authorization_code", "refresh_token")
RP_REFRESH = Client("rp-refresh", (REDIRECT,), "client_secret_basic", sha256_secret("refresh-secret"),
                    grant_types=GRANTS)
RP_OTHER = Client("rp-other", (REDIRECT,), "client_secret_basic", sha256_secret("other-secret"), grant_types=GRANTS)
RP_BASIC = Client("rp-basic", (REDIRECT,), "client_secret_basic", sha256_secret("basic-secret"))
TID, OID = "00000000-0000-0000-0000-000000000001", "oid-1"
ACCOUNT = EntraAccount(TID, OID, auth_time=int(NOW) - 30)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.tables = FakeTables(self.clock)
        self.keys = KeyRing(shared_key_source(), clock=self.clock)
        self.settings = make_settings(RP_REFRESH, RP_OTHER, RP_BASIC)
        self.endpoint = TokenEndpoint(settings=self.settings, tables=self.tables, signer=self.keys,
                                      client_jwks=lambda uri, refresh=False: {"keys": []}, clock=self.clock)
        self.bindings = BindingStore(self.tables["bindings"], self.clock)
        self.bindings.create(ACCOUNT, make_identity())

    def sign_in(self, client_id: str = "rp-refresh", *, paired: bool = True) -> IssuedTokens:
        grant = dataclasses.replace(make_grant(client_id, redirect_uri=REDIRECT),
                                    tid=TID if paired else None, oid=OID if paired else None)
        code = issue_code(self.tables["codes"], grant, new_grant_id())
        assert code is not None
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
        return exchange_code(request(form, client_id), self.endpoint)

    def refresh(self, token: str | None, client_id: str = "rp-refresh", **extra: str) -> IssuedTokens:
        form = {"grant_type": "refresh_token", **({"refresh_token": token} if token else {}), **extra}
        return exchange_code(request(form, client_id), self.endpoint)

    def access_alive(self, tokens: IssuedTokens) -> bool:
        claims = self.keys.decode(tokens.access_token, issuer=ISSUER, audience=ISSUER, typ="at+jwt")
        try:
            load_token_record(self.tables["codes"], claims, now=self.clock())
        except OAuthError:
            return False
        return True

    def later(self, seconds: float) -> None:
        self.clock.now += seconds


def request(form: dict[str, str], client_id: str) -> Request:
    secret = {"rp-refresh": "refresh-secret", "rp-other": "other-secret", "rp-basic": "basic-secret"}[client_id]
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    headers = {"authorization": f"Basic {credentials}", "content-type": "application/x-www-form-urlencoded"}
    return Request("POST", f"{ISSUER}/token", headers=headers, form=form)


@pytest.fixture
def world() -> World:
    return World()


CODE_REFUSED = "the authorization code is invalid, expired or was already used"


def refused(call: Any, error_type: type[OAuthError], error: str) -> OAuthError:
    with pytest.raises(error_type) as raised:
        call()
    assert raised.value.error == error
    if error == "invalid_grant":  # one public description for every refused refresh (or code)
        assert raised.value.description in (REFUSED, CODE_REFUSED)
    return raised.value


def test_a_paired_sign_in_to_a_registered_client_gets_a_refresh_token(world: World) -> None:
    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    assert tokens.body()["refresh_token"] == tokens.refresh_token
    row = world.tables["codes"].find(tokens.refresh_token.split(".")[0], GRANT_ROW)
    assert row is not None and tokens.refresh_token.split(".")[1] not in str(row.data)  # kept hashed only
    assert row.data["refresh_until"] == int(NOW) + 30 * 60
    assert row.expires_at == NOW + 30 * 60  # the row lives as long as its family can


def test_no_refresh_token_for_a_client_not_registered_for_the_grant(world: World) -> None:
    assert world.sign_in("rp-basic").refresh_token is None
    assert "refresh_token" not in world.sign_in("rp-basic").body()


def test_no_refresh_token_without_a_pairing(world: World) -> None:
    assert world.sign_in(paired=False).refresh_token is None


def test_a_refresh_rotates_the_token_and_issues_new_tokens(world: World) -> None:
    first = world.sign_in()
    world.later(60)
    second = world.refresh(first.refresh_token)
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    assert world.access_alive(first) and world.access_alive(second)
    id_token = world.keys.decode(second.id_token, issuer=ISSUER, audience="rp-refresh")
    assert "nonce" not in id_token  # OIDC Core 12.2
    assert id_token["auth_time"] == int(NOW) - 30  # the original authentication, not the refresh
    assert id_token["iat"] == int(NOW) + 60


def test_the_refresh_token_lifetime_runs_from_each_use(world: World) -> None:
    tokens = world.sign_in()
    for _ in range(3):
        world.later(25 * 60)
        tokens = world.refresh(tokens.refresh_token)
    assert tokens.refresh_token


def test_a_used_refresh_token_presented_again_revokes_the_family(world: World) -> None:
    first = world.sign_in()
    second = world.refresh(first.refresh_token)
    error = refused(lambda: world.refresh(first.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.description == "the refresh token is invalid, expired or revoked"
    assert error.detail == "a used refresh token was presented again: the family is revoked"
    assert not world.access_alive(first) and not world.access_alive(second)
    refused(lambda: world.refresh(second.refresh_token), InvalidGrantError, "invalid_grant")


def test_a_reused_authorization_code_revokes_the_refresh_family_too(world: World) -> None:
    grant = dataclasses.replace(make_grant("rp-refresh", redirect_uri=REDIRECT), tid=TID, oid=OID)
    code = issue_code(world.tables["codes"], grant, new_grant_id())
    assert code is not None
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    tokens = exchange_code(request(form, "rp-refresh"), world.endpoint)
    refused(lambda: exchange_code(request(form, "rp-refresh"), world.endpoint), InvalidGrantError, "invalid_grant")
    refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")


def test_a_missing_refresh_token_is_invalid_request(world: World) -> None:
    error = refused(lambda: world.refresh(None), InvalidRequestError, "invalid_request")
    assert error.description == "refresh_token is required"


@pytest.mark.parametrize("token", ["x", "0" * 32, "0" * 32 + ".short", "g" * 32 + "." + "a" * 43, "a.b.c"])
def test_a_malformed_refresh_token_is_invalid_grant(world: World, token: str) -> None:
    error = refused(lambda: world.refresh(token), InvalidGrantError, "invalid_grant")
    assert (error.description, error.detail) == (REFUSED, "malformed refresh token")


def test_an_unknown_refresh_token_is_invalid_grant(world: World) -> None:
    error = refused(lambda: world.refresh("0" * 32 + "." + "A" * 43), InvalidGrantError, "invalid_grant")
    assert (error.description, error.detail) == (REFUSED, "no such refresh token family")


def test_a_wrong_secret_of_a_live_family_is_refused_without_revoking_it(world: World) -> None:
    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    forged = tokens.refresh_token.split(".")[0] + "." + "A" * 43
    error = refused(lambda: world.refresh(forged), InvalidGrantError, "invalid_grant")
    assert (error.description, error.detail) == (REFUSED, "not the family's current refresh token")
    assert world.refresh(tokens.refresh_token).refresh_token  # a guess does not let an attacker kill a family


def test_a_client_not_registered_for_the_grant_is_unauthorized_client(world: World) -> None:
    tokens = world.sign_in()
    error = refused(lambda: world.refresh(tokens.refresh_token, "rp-basic"), UnauthorizedClientError,
                    "unauthorized_client")
    assert error.description == "the client is not registered for the refresh_token grant"


def test_another_clients_refresh_token_is_invalid_grant(world: World) -> None:
    tokens = world.sign_in()
    error = refused(lambda: world.refresh(tokens.refresh_token, "rp-other"), InvalidGrantError, "invalid_grant")
    assert (error.description, error.detail) == (REFUSED, "the refresh token was issued to another client")
    assert world.refresh(tokens.refresh_token).refresh_token  # the family lives on for its own client


def test_an_expired_refresh_token_is_invalid_grant(world: World) -> None:
    tokens = world.sign_in()
    world.later(30 * 60 - 1)
    tokens = world.refresh(tokens.refresh_token)  # one second before its end, still alive
    world.later(30 * 60)
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert (error.description, error.detail) == (REFUSED, "no such refresh token family")  # the row expired with it


def test_the_four_hour_rule_ends_the_family_even_with_a_longer_lifetime(world: World) -> None:
    world.endpoint = dataclasses.replace(world.endpoint, settings=dataclasses.replace(
        world.settings, refresh_token_ttl=8 * 3600))
    tokens = world.sign_in()
    world.later(4 * 3600 - 60)
    tokens = world.refresh(tokens.refresh_token)
    row = world.tables["codes"].find(tokens.refresh_token.split(".")[0], GRANT_ROW)  # type: ignore[union-attr]
    assert row is not None and row.data["refresh_until"] == int(NOW) - 30 + 4 * 3600  # capped by auth_time + 4 h
    world.later(100)  # auth_time + 4 h passed; the row lives on for its access token (120 s)
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "the refresh token has expired"


def test_the_four_hour_rule_is_checked_even_when_the_record_says_otherwise(world: World) -> None:
    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    codes = world.tables["codes"]
    row = codes.find(tokens.refresh_token.split(".")[0], GRANT_ROW)
    assert row is not None
    codes.replace(row, {**row.data, "refresh_until": int(NOW) + 10 * 3600}, expires_in=None)
    world.later(4 * 3600)
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "the authentication is older than the re-authentication rule"
    assert codes.find(tokens.refresh_token.split(".")[0], GRANT_ROW) is None  # the family is gone


def test_a_removed_pairing_ends_the_family(world: World) -> None:
    tokens = world.sign_in()
    world.bindings.remove(TID, OID)
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "the pairing was removed or replaced"
    assert not world.access_alive(tokens)


def test_a_pairing_replaced_by_another_identity_ends_the_family(world: World) -> None:
    tokens = world.sign_in()
    world.bindings.remove(TID, OID)
    other = PscIdentity.from_userinfo({**make_identity().claims, "sub": "f:other:810000000002",
                                       "SubjectNameID": "810000000002"})
    world.bindings.create(ACCOUNT, other)
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "the pairing was removed or replaced"


def test_an_ended_broker_session_ends_the_family(world: World) -> None:
    tokens = world.sign_in()
    world.bindings.revoke_session(TID, OID, "sid-1", until=int(NOW) + 3600)
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "the broker session was ended"


def test_a_refresh_may_narrow_the_scope(world: World) -> None:
    tokens = world.sign_in()
    narrowed = world.refresh(tokens.refresh_token, scope="openid")
    assert narrowed.scope == "openid"


def test_a_refresh_may_not_widen_the_scope(world: World) -> None:
    tokens = world.sign_in()
    error = refused(lambda: world.refresh(tokens.refresh_token, scope="openid profile"), InvalidScopeError,
                    "invalid_scope")
    assert error.description == "the scope asked exceeds the scope originally granted"
    assert world.refresh(tokens.refresh_token).refresh_token  # a refused scope does not burn the token


def test_only_live_access_tokens_are_kept_in_the_family(world: World) -> None:
    tokens = world.sign_in()
    for _ in range(4):
        world.later(121)
        tokens = world.refresh(tokens.refresh_token)
    assert tokens.refresh_token is not None
    row = world.tables["codes"].find(tokens.refresh_token.split(".")[0], GRANT_ROW)
    assert row is not None and len(row.data["access"]) == 1


def test_the_four_hour_rule_counts_from_auth_time_to_the_second(world: World) -> None:
    grant = make_grant("rp-refresh", redirect_uri=REDIRECT)
    check_within_reauthentication(grant, world.settings, grant.auth_time + 4 * 3600)
    with pytest.raises(InvalidGrantError) as raised:
        check_within_reauthentication(grant, world.settings, grant.auth_time + 4 * 3600 + 1)
    assert raised.value.description == REFUSED


def test_a_grant_without_a_pairing_or_due_for_re_verification_gets_no_refresh(world: World) -> None:
    unpaired = make_grant("rp-refresh", redirect_uri=REDIRECT)
    with pytest.raises(InvalidGrantError) as raised:
        check_pairing_holds(world.bindings, dataclasses.replace(unpaired, tid=TID, oid=None), int(NOW), 30)
    assert (raised.value.description, raised.value.detail) == (REFUSED, "a refresh token without a pairing")
    paired = dataclasses.replace(unpaired, tid=TID, oid=OID)
    check_pairing_holds(world.bindings, paired, int(NOW), 30)
    with pytest.raises(InvalidGrantError) as raised:
        check_pairing_holds(world.bindings, paired, int(NOW) + 31 * 86400, 30)
    assert (raised.value.description, raised.value.detail) == (REFUSED,
                                                               "the pairing's periodic re-verification is due")


def test_two_uses_of_one_refresh_token_at_once_revoke_the_family(world: World) -> None:
    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    codes = world.tables["codes"]
    codes.replace = lambda current, data, expires_in: None  # type: ignore[method-assign,assignment,misc]
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "concurrent use of one refresh token: the family is revoked"
    assert codes.find(tokens.refresh_token.split(".")[0], GRANT_ROW) is None


def test_a_refreshed_record_keeps_the_family_and_lives_as_long_as_the_new_token(world: World) -> None:
    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    world.later(60)
    second = world.refresh(tokens.refresh_token)
    row = world.tables["codes"].find(tokens.refresh_token.split(".")[0], GRANT_ROW)
    assert row is not None and second.refresh_token is not None
    assert row.data["refresh_until"] == int(NOW) + 60 + 30 * 60 and row.expires_at == NOW + 60 + 30 * 60
    assert len(row.data["refresh_used"]) == 1 and row.data["state"] == "redeemed"
    assert (second.expires_in, second.scope) == (120, "openid scope_all")
    access = world.keys.decode(second.access_token, issuer=ISSUER, audience=ISSUER, typ="at+jwt")
    assert (access["exp"], access["gid"], len(access["jti"])) == (int(NOW) + 60 + 120, row.partition, 22)
    assert row.data["access"][access["jti"]] == int(NOW) + 60 + 120


def test_a_refresh_token_is_refused_at_the_second_it_ends(world: World) -> None:
    world.endpoint = dataclasses.replace(world.endpoint, settings=dataclasses.replace(
        world.settings, refresh_token_ttl=8 * 3600))
    tokens = world.sign_in()
    world.later(4 * 3600 - 60)
    tokens = world.refresh(tokens.refresh_token)  # refresh_until is now auth_time + 4 h, 30 s ahead
    world.later(30)  # exactly refresh_until (and exactly 4 h after auth_time): the row still lives
    error = refused(lambda: world.refresh(tokens.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "the refresh token has expired"


def test_asking_for_the_whole_granted_scope_again_is_not_widening(world: World) -> None:
    tokens = world.sign_in()
    assert world.refresh(tokens.refresh_token, scope="scope_all openid").scope == "scope_all openid"


def test_a_narrowed_refresh_narrows_the_access_token_too(world: World) -> None:
    tokens = world.refresh(world.sign_in().refresh_token, scope="openid")
    access = world.keys.decode(tokens.access_token, issuer=ISSUER, audience=ISSUER, typ="at+jwt")
    assert access["scope"] == "openid"


def test_access_tokens_expiring_at_the_refresh_are_dropped_from_the_family(world: World) -> None:
    tokens = world.sign_in()
    world.later(120)  # the first access token expires now
    tokens = world.refresh(tokens.refresh_token)
    assert tokens.refresh_token is not None
    row = world.tables["codes"].find(tokens.refresh_token.split(".")[0], GRANT_ROW)
    assert row is not None and len(row.data["access"]) == 1


def test_every_used_refresh_token_stays_known_to_the_family(world: World) -> None:
    first = world.sign_in()
    second = world.refresh(first.refresh_token)
    third = world.refresh(second.refresh_token)
    error = refused(lambda: world.refresh(first.refresh_token), InvalidGrantError, "invalid_grant")
    assert error.detail == "a used refresh token was presented again: the family is revoked"
    assert not world.access_alive(third)


def test_a_record_without_access_tokens_is_refreshed(world: World) -> None:
    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    codes = world.tables["codes"]
    row = codes.find(tokens.refresh_token.split(".")[0], GRANT_ROW)
    assert row is not None
    codes.replace(row, {name: value for name, value in row.data.items() if name != "access"}, expires_in=None)
    assert world.refresh(tokens.refresh_token).refresh_token is not None


def test_revoking_a_family_deletes_its_record(world: World) -> None:
    from sanscouture.oidc.refresh import revoke_family

    tokens = world.sign_in()
    assert tokens.refresh_token is not None
    gid = tokens.refresh_token.split(".")[0]
    assert revoke_family(world.tables["codes"], gid) is True
    assert world.tables["codes"].find(gid, GRANT_ROW) is None and revoke_family(world.tables["codes"], gid) is False
