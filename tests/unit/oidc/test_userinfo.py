"""/userinfo: Bearer token from header or body, revocation through the grant's row, scope filtering."""

from __future__ import annotations

import json

import pytest

from sanscouture.errors import InvalidRequestError
from sanscouture.errors import InvalidTokenError
from sanscouture.keys import KeyRing
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.token import build_access_token_claims
from sanscouture.oidc.token import grant_record
from sanscouture.oidc.userinfo import BearerTokenMissingError
from sanscouture.oidc.userinfo import bearer_error_response
from sanscouture.oidc.userinfo import bearer_from_header
from sanscouture.oidc.userinfo import build_userinfo
from sanscouture.oidc.userinfo import handle_userinfo
from sanscouture.oidc.userinfo import read_bearer_token
from sanscouture.web import Request
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import PSC_USERINFO
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_grant
from tests.unit.oidc.fakes import shared_key_source

SUB = PSC_USERINFO["sub"]


class World:
    def __init__(self, scope: tuple[str, ...] = ("openid", "scope_all")) -> None:
        self.clock = FakeClock()
        self.grants = FakeRowStore("codes", self.clock)
        self.keys = KeyRing(shared_key_source(), clock=self.clock)
        grant = make_grant(scope=scope)
        claims = build_access_token_claims(grant, issuer=ISSUER, grant_id="gid-1", jti="jti-1", now=int(NOW), ttl=120)
        self.token = self.keys.sign(claims, typ="at+jwt")
        self.grants.save("gid-1", GRANT_ROW, grant_record(grant, {"jti-1": int(NOW) + 120}), expires_in=120)

    def get(self, request: Request) -> dict[str, object]:
        response = handle_userinfo(request, issuer=ISSUER, decoder=self.keys, grants=self.grants, clock=self.clock)
        assert response.status == 200
        assert response.header("Cache-Control") == "no-store"
        return json.loads(response.body)


def bearer(token: str, method: str = "GET", form: dict[str, str] | None = None) -> Request:
    return Request(method, f"{ISSUER}/userinfo", {"authorization": f"Bearer {token}"}, form=form or {})


def test_get_with_a_bearer_header_returns_every_psc_claim_for_scope_all() -> None:
    world = World()
    assert world.get(bearer(world.token)) == PSC_USERINFO


def test_post_with_the_token_in_the_body_works() -> None:
    world = World()
    request = Request("POST", f"{ISSUER}/userinfo", form={"access_token": world.token})
    assert world.get(request)["sub"] == SUB


def test_token_in_header_and_body_is_invalid_request() -> None:
    world = World()
    with pytest.raises(InvalidRequestError):
        read_bearer_token(bearer(world.token, "POST", {"access_token": world.token}))


def test_no_token_raises_the_bare_challenge_error() -> None:
    with pytest.raises(BearerTokenMissingError):
        read_bearer_token(Request("GET", f"{ISSUER}/userinfo"))
    with pytest.raises(BearerTokenMissingError):
        read_bearer_token(Request("GET", f"{ISSUER}/userinfo", {"authorization": "Basic abc"}))
    # RFC 6750 2.3 (query parameter) is not supported: such a request has no token.
    with pytest.raises(BearerTokenMissingError):
        read_bearer_token(Request("GET", f"{ISSUER}/userinfo", query={"access_token": "x"}))


def test_bearer_scheme_is_case_insensitive_and_token_syntax_is_checked() -> None:
    assert bearer_from_header("bearer abc.def-_~+/=") == "abc.def-_~+/="
    with pytest.raises(InvalidTokenError):
        bearer_from_header("Bearer a b")


def test_garbage_token_is_invalid_token() -> None:
    with pytest.raises(InvalidTokenError) as raised:
        World().get(bearer("garbage"))
    assert raised.value.error == "invalid_token"


def test_an_id_token_is_not_an_access_token() -> None:
    world = World()
    id_token = world.keys.sign({"iss": ISSUER, "aud": ISSUER, "exp": int(NOW) + 60, "iat": int(NOW)})
    with pytest.raises(InvalidTokenError):
        world.get(bearer(id_token))


def test_revoked_token_is_invalid_token() -> None:
    world = World()
    world.grants.delete("gid-1", GRANT_ROW)
    with pytest.raises(InvalidTokenError) as raised:
        world.get(bearer(world.token))
    assert raised.value.description == "the access token was revoked or has expired"


def test_expired_token_is_invalid_token() -> None:
    world = World()
    world.clock.now += 120 + 30
    with pytest.raises(InvalidTokenError) as raised:
        world.get(bearer(world.token))
    assert raised.value.description == "the access token has expired"


def test_openid_scope_alone_gives_only_sub() -> None:
    world = World(scope=("openid",))
    assert world.get(bearer(world.token)) == {"sub": SUB}


def test_profile_and_email_scopes_give_their_standard_claims() -> None:
    claims = {**PSC_USERINFO, "email": "kit@example.fr", "email_verified": True}
    assert build_userinfo(["openid", "profile"], SUB, claims) == {
        "sub": SUB,
        "given_name": "KIT",
        "family_name": "DOC0042788",
        "preferred_username": "899700427885",
    }
    assert build_userinfo(["openid", "email"], SUB, claims) == {
        "sub": SUB,
        "email": "kit@example.fr",
        "email_verified": True,
    }


def test_sub_is_always_the_psc_sub() -> None:
    assert build_userinfo(["scope_all"], SUB, {"sub": "something-else", "x": 1}) == {"sub": SUB, "x": 1}


def test_error_challenges_follow_rfc_6750() -> None:
    missing = bearer_error_response(BearerTokenMissingError())
    assert missing.status == 401
    assert missing.header("WWW-Authenticate") == "Bearer"
    assert missing.body == b""
    invalid = bearer_error_response(InvalidTokenError("the access token has expired"))
    assert invalid.status == 401
    assert invalid.header("WWW-Authenticate") == (
        'Bearer error="invalid_token", error_description="the access token has expired"'
    )
    assert json.loads(invalid.body) == {"error": "invalid_token", "error_description": "the access token has expired"}
    malformed = bearer_error_response(InvalidRequestError("x"))
    assert malformed.status == 400
    assert malformed.header("WWW-Authenticate") == 'Bearer error="invalid_request", error_description="x"'


def test_an_outage_at_userinfo_is_a_plain_503_without_a_bearer_challenge() -> None:
    from sanscouture.errors import StorageUnavailableError
    from sanscouture.oidc.userinfo import userinfo_error_response

    response = userinfo_error_response(StorageUnavailableError())
    assert response.status == 503 and response.header("WWW-Authenticate") is None
    assert json.loads(response.body)["error"] == "temporarily_unavailable"


def test_refusals_have_their_exact_descriptions_and_logged_reasons() -> None:
    world = World()
    with pytest.raises(InvalidRequestError) as both:
        read_bearer_token(bearer(world.token, "POST", {"access_token": world.token}))
    assert both.value.description == "send the access token in the Authorization header or the body, not both"
    with pytest.raises(InvalidTokenError) as malformed:
        bearer_from_header("Bearer a b")
    assert malformed.value.description == "the access token is malformed"
    with pytest.raises(InvalidTokenError) as garbage:
        world.get(bearer("garbage"))
    assert (garbage.value.description, garbage.value.detail) == ("the access token is invalid or expired",
                                                                 "DecodeError: Not enough segments")


def test_a_token_in_a_get_body_is_not_read() -> None:
    world = World()
    with pytest.raises(BearerTokenMissingError):
        read_bearer_token(Request("GET", f"{ISSUER}/userinfo", form={"access_token": world.token}))


def test_an_empty_bearer_is_no_token() -> None:
    assert bearer_from_header("Bearer   ") is None
    assert bearer_from_header(None) is None
    assert bearer_from_header("  Bearer abc  ") == "abc"


def record(world: World, **changes: object) -> None:
    row = world.grants.find("gid-1", GRANT_ROW)
    assert row is not None
    world.grants.save("gid-1", GRANT_ROW, {**row.data, **changes}, expires_in=None)


@pytest.mark.parametrize(
    "changes",
    [{"state": "code"}, {"access": "jti-1"}, {"access": {"other-jti": int(NOW) + 120}},
     {"access": {"jti-1": str(int(NOW) + 120)}}, {"access": {"jti-1": int(NOW)}}],
)
def test_only_a_redeemed_record_listing_this_token_alive_serves_it(changes: dict[str, object]) -> None:
    world = World()
    record(world, **changes)
    with pytest.raises(InvalidTokenError) as raised:
        world.get(bearer(world.token))
    assert raised.value.description == "the access token was revoked or has expired"


def test_the_token_serves_until_the_second_its_record_says() -> None:
    world = World()
    record(world, access={"jti-1": int(NOW) + 1})
    assert world.get(bearer(world.token))["sub"] == SUB


@pytest.mark.parametrize("claims", [{"gid": None}, {"jti": None}, {"gid": ""}, {"jti": ""}, {"gid": 7}])
def test_an_access_token_without_its_grant_or_id_is_refused(claims: dict[str, object]) -> None:
    world = World()
    grant = make_grant(scope=("openid",))
    signed = {**build_access_token_claims(grant, issuer=ISSUER, grant_id="gid-1", jti="jti-1", now=int(NOW),
                                          ttl=120), **claims}
    token = world.keys.sign({name: value for name, value in signed.items() if value is not None}, typ="at+jwt")
    with pytest.raises(InvalidTokenError) as raised:
        world.get(bearer(token))
    assert raised.value.detail == "access token without gid or jti"


def test_a_scope_without_psc_claims_gives_nothing_missing() -> None:
    assert build_userinfo(["openid", "profile", "email"], SUB, None) == {"sub": SUB}
    assert build_userinfo(["openid", "email"], SUB, {"email": "a@b.fr"}) == {"sub": SUB, "email": "a@b.fr"}


def test_a_json_answer_is_never_cached() -> None:
    world = World()
    response = handle_userinfo(bearer(world.token), issuer=ISSUER, decoder=world.keys, grants=world.grants,
                               clock=world.clock)
    assert (response.header("Cache-Control"), response.header("Content-Type")) == (
        "no-store", "application/json; charset=utf-8")


@pytest.mark.parametrize(
    ("changes", "typ"),
    [({"iss": "https://other-broker.example.fr"}, "at+jwt"), ({"aud": "rp-basic"}, "at+jwt"), ({}, "JWT")],
)
def test_only_an_access_token_the_broker_issued_for_itself_is_accepted(changes: dict[str, str], typ: str) -> None:
    world = World()
    grant = make_grant(scope=("openid",))
    claims = {**build_access_token_claims(grant, issuer=ISSUER, grant_id="gid-1", jti="jti-1", now=int(NOW), ttl=120),
              **changes}
    with pytest.raises(InvalidTokenError) as raised:
        world.get(bearer(world.keys.sign(claims, typ=typ)))
    assert raised.value.description == "the access token is invalid or expired"


def test_userinfo_errors_carry_a_bearer_challenge_and_outages_are_never_cached() -> None:
    from sanscouture.errors import StorageUnavailableError
    from sanscouture.oidc.userinfo import userinfo_error_response

    refused = userinfo_error_response(InvalidTokenError("the access token has expired"))
    assert (refused.status, refused.header("WWW-Authenticate")) == (
        401, 'Bearer error="invalid_token", error_description="the access token has expired"')
    outage = userinfo_error_response(StorageUnavailableError())
    assert outage.header("Cache-Control") == "no-store"
