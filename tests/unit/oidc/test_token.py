"""The token endpoint's script: each check with its exact error, tokens issued and recorded in the grant."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import select
import signal
from collections.abc import Mapping
from typing import Any

import jwt
import pytest

from sanscouture.errors import InvalidClientError
from sanscouture.errors import InvalidGrantError
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import OAuthError
from sanscouture.errors import StorageUnavailableError
from sanscouture.errors import UnsupportedGrantTypeError
from sanscouture.keys import KeyRing
from sanscouture.keys import KeysUnavailableError
from sanscouture.keys import public_jwk
from sanscouture.limits import RateLimiter
from sanscouture.limits import SlowDownError
from sanscouture.models import Client
from sanscouture.models import CodeGrant
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.codes import new_grant_id
from sanscouture.oidc.id_token import at_hash
from sanscouture.oidc.token import TokenEndpoint
from sanscouture.oidc.token import exchange_code
from sanscouture.oidc.token import handle_token_request
from sanscouture.oidc.token import invalid_client_response
from sanscouture.oidc.token import token_error_response
from sanscouture.web import Request
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import PSC_USERINFO
from tests.unit.oidc.fakes import SHARED_BROKER_KEY
from tests.unit.oidc.fakes import VERIFIER
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeKeySource
from tests.unit.oidc.fakes import FakeTables
from tests.unit.oidc.fakes import make_grant
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import sha256_secret
from tests.unit.oidc.fakes import shared_key_source

REDIRECT = "https://rp.example.fr/callback"
RP_BASIC = Client("rp-basic", (REDIRECT,), "client_secret_basic", sha256_secret("basic-secret"))
RP_POST = Client("rp-post", (REDIRECT,), "client_secret_post", sha256_secret("post-secret"))
RP_JWT = Client("rp-jwt", (REDIRECT,), "private_key_jwt", jwks_uri="https://rp-jwt.example.fr/jwks")
RP_JWT_KEY = SHARED_BROKER_KEY  # any RSA key: the client's key set is served by the endpoint's fetcher
FORM = "application/x-www-form-urlencoded"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.tables = FakeTables(self.clock)
        self.keys = KeyRing(shared_key_source(), clock=self.clock)
        self.endpoint = TokenEndpoint(
            settings=make_settings(RP_BASIC, RP_POST, RP_JWT),
            tables=self.tables,
            signer=self.keys,
            client_jwks=self.jwks,
            clock=self.clock,
        )

    def jwks(self, uri: str, refresh: bool = False) -> Mapping[str, Any]:
        """The JWK Set at RP_JWT's jwks_uri (and nothing anywhere else)."""
        return {"keys": [public_jwk(RP_JWT_KEY)]} if uri == RP_JWT.jwks_uri else {"keys": []}

    def code(self, client_id: str = "rp-basic", **kwargs: Any) -> str:
        code = issue_code(self.tables["codes"], make_grant(client_id, redirect_uri=REDIRECT, **kwargs), new_grant_id())
        assert code is not None
        return code

    def grant_row(self, code: str) -> Any:
        return self.tables["codes"].find(code.split(".")[0], GRANT_ROW)


@pytest.fixture
def world() -> World:
    return World()


def basic_request(form: Mapping[str, str], *, method: str = "POST", content_type: str = FORM) -> Request:
    credentials = base64.b64encode(b"rp-basic:basic-secret").decode()
    headers = {"authorization": f"Basic {credentials}", "content-type": content_type}
    return Request(method, f"{ISSUER}/token", headers=headers, form=dict(form))


def code_form(code: str, **overrides: str | None) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    form.update(overrides)  # type: ignore[arg-type]
    return {name: value for name, value in form.items() if value is not None}


def refused(world: World, request: Request, error_type: type[OAuthError], error: str) -> OAuthError:
    with pytest.raises(error_type) as raised:
        exchange_code(request, world.endpoint)
    assert raised.value.error == error
    return raised.value


def test_happy_path_issues_signed_tokens_and_records_the_access_token(world: World) -> None:
    code = world.code()
    tokens = exchange_code(basic_request(code_form(code)), world.endpoint)
    assert tokens.expires_in == 120 and tokens.scope == "openid scope_all"
    access = world.keys.decode(tokens.access_token, issuer=ISSUER, audience=ISSUER, typ="at+jwt")
    gid = code.split(".")[0]
    assert access == {
        "iss": ISSUER,
        "sub": PSC_USERINFO["sub"],
        "aud": ISSUER,
        "client_id": "rp-basic",
        "scope": "openid scope_all",
        "exp": int(NOW) + 120,
        "iat": int(NOW),
        "jti": access["jti"],
        "sid": "sid-1",
        "gid": gid,
    }
    row = world.grant_row(code)  # the code's row became the access token's record: one round trip
    assert row.expires_at == NOW + 120
    assert row.data["secret_sha256"] == hashlib.sha256(code.split(".")[1].encode()).hexdigest()  # replay finds it
    assert row.data["state"] == "redeemed"
    assert row.data["access"] == {access["jti"]: int(NOW) + 120}  # the live access tokens of the grant
    assert CodeGrant.from_dict(row.data) == make_grant("rp-basic", redirect_uri=REDIRECT)  # what /userinfo serves
    assert "refresh_sha256" not in row.data  # rp-basic is not registered for refresh tokens
    id_token = world.keys.decode(tokens.id_token, issuer=ISSUER, audience="rp-basic")
    assert id_token["at_hash"] == at_hash(tokens.access_token)
    assert id_token["nonce"] == "n-0S6_WzA2Mj"


def test_token_response_is_json_and_never_cached(world: World) -> None:
    response = handle_token_request(basic_request(code_form(world.code())), world.endpoint)
    assert response.status == 200
    assert response.header("Cache-Control") == "no-store"
    assert response.header("Pragma") == "no-cache"
    assert response.header("Content-Type") == "application/json; charset=utf-8"


def test_get_is_invalid_request(world: World) -> None:
    request = basic_request(code_form(world.code()), method="GET")
    error = refused(world, request, InvalidRequestError, "invalid_request")
    assert error.description == "the token endpoint only accepts POST"


def test_a_json_body_is_invalid_request(world: World) -> None:
    refused(world, basic_request({}, content_type="application/json"), InvalidRequestError, "invalid_request")


def test_repeated_parameters_are_invalid_request(world: World) -> None:
    request = basic_request(code_form(world.code()))
    request = Request("POST", request.url, request.headers, form=request.form, repeated=frozenset({"code"}))
    refused(world, request, InvalidRequestError, "invalid_request")


@pytest.mark.parametrize(("names", "description"), [
    ({"code", "zz"}, "repeated parameter: code"),
    ({"é"}, "a parameter is repeated"),  # not within RFC 6749 A.7: it raised ValueError (a 500)
    ({"<script>"}, "a parameter is repeated"),  # the sender's text is never echoed
])
def test_a_repeated_parameter_is_named_only_when_known(world: World, names: set[str], description: str) -> None:
    request = basic_request(code_form(world.code()))
    request = Request("POST", request.url, request.headers, form=request.form, repeated=frozenset(names))
    with pytest.raises(InvalidRequestError) as raised:
        handle_token_request(request, world.endpoint)
    assert raised.value.description == description
    # The log says how many names, never which (the sender's text): RFC 6749 A.7 does not bound it.
    assert raised.value.detail == ("" if "code" in names else f"{len(names)} repeated names")


def test_client_is_authenticated_before_anything_else(world: World) -> None:
    request = Request("POST", f"{ISSUER}/token", {"content-type": FORM}, form=code_form(world.code()))
    refused(world, request, InvalidClientError, "invalid_client")


def test_missing_grant_type_is_invalid_request(world: World) -> None:
    request = basic_request(code_form(world.code(), grant_type=None))
    assert refused(world, request, InvalidRequestError, "invalid_request").description == "grant_type is required"


def test_other_grant_type_is_unsupported(world: World) -> None:
    request = basic_request(code_form(world.code(), grant_type="password"))
    refused(world, request, UnsupportedGrantTypeError, "unsupported_grant_type")


def test_missing_code_is_invalid_request(world: World) -> None:
    form = {name: value for name, value in code_form("x").items() if name != "code"}
    assert refused(world, basic_request(form), InvalidRequestError, "invalid_request").description == "code is required"


def test_unknown_code_is_invalid_grant(world: World) -> None:
    error = refused(world, basic_request(code_form("nope")), InvalidGrantError, "invalid_grant")
    assert error.description == "the authorization code is invalid, expired or was already used"


def test_reused_code_is_invalid_grant_and_revokes_the_tokens_it_gave(world: World) -> None:
    code = world.code()
    exchange_code(basic_request(code_form(code)), world.endpoint)
    assert world.grant_row(code).data["state"] == "redeemed"
    error = refused(world, basic_request(code_form(code)), InvalidGrantError, "invalid_grant")
    assert world.grant_row(code) is None  # the access token's record is gone: /userinfo refuses it
    assert error.description == "the authorization code is invalid, expired or was already used"
    assert error.detail == "replayed code: the access token it gave was revoked"  # what the log says


def test_expired_code_is_invalid_grant(world: World) -> None:
    code = world.code()
    world.clock.now += 60
    refused(world, basic_request(code_form(code)), InvalidGrantError, "invalid_grant")


def test_code_of_another_client_is_invalid_grant_and_burnt(world: World) -> None:
    code = world.code("rp-post")
    error = refused(world, basic_request(code_form(code)), InvalidGrantError, "invalid_grant")
    assert error.description == "the authorization code was issued to another client"
    assert world.tables["codes"].rows == {}


def test_redirect_uri_mismatch_is_invalid_grant(world: World) -> None:
    request = basic_request(code_form(world.code(), redirect_uri=REDIRECT + "/other"))
    error = refused(world, request, InvalidGrantError, "invalid_grant")
    assert error.description == "redirect_uri does not match the authorization request"


def test_missing_redirect_uri_is_invalid_grant(world: World) -> None:
    request = basic_request(code_form(world.code(), redirect_uri=None))
    error = refused(world, request, InvalidGrantError, "invalid_grant")
    assert error.description == "redirect_uri is required and must match the authorization request"


def test_missing_code_verifier_is_invalid_grant(world: World) -> None:
    refused(world, basic_request(code_form(world.code(), code_verifier=None)), InvalidGrantError, "invalid_grant")


def test_wrong_code_verifier_is_invalid_grant(world: World) -> None:
    request = basic_request(code_form(world.code(), code_verifier="x" * 43))
    assert refused(world, request, InvalidGrantError, "invalid_grant").description == "PKCE verification failed"


def test_malformed_code_verifier_is_invalid_request(world: World) -> None:
    request = basic_request(code_form(world.code(), code_verifier="short"))
    refused(world, request, InvalidRequestError, "invalid_request")


def test_failed_checks_issue_no_token(world: World) -> None:
    code = world.code()
    with pytest.raises(InvalidGrantError):
        exchange_code(basic_request(code_form(code, code_verifier="y" * 43)), world.endpoint)
    assert world.tables["codes"].rows == {}  # no record: the code is used up, no token issued


def test_invalid_client_answer_carries_a_basic_challenge() -> None:
    response = invalid_client_response(InvalidClientError())
    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Basic realm="sans-couture"'
    assert response.header("Cache-Control") == "no-store"
    assert b'"error":"invalid_client"' in response.body


def test_access_token_is_an_rfc_9068_jwt(world: World) -> None:
    tokens = exchange_code(basic_request(code_form(world.code())), world.endpoint)
    assert jwt.get_unverified_header(tokens.access_token)["typ"] == "at+jwt"
    assert jwt.get_unverified_header(tokens.id_token)["typ"] == "JWT"


def test_storage_outage_is_temporarily_unavailable(world: World) -> None:
    code = world.code()

    def down(partition: str, row: str) -> None:
        raise StorageUnavailableError(detail="table codes: HTTP 503")

    world.tables["codes"].find = down  # type: ignore[method-assign,assignment]
    with pytest.raises(StorageUnavailableError) as raised:
        exchange_code(basic_request(code_form(code)), world.endpoint)
    assert (raised.value.status, raised.value.error) == (503, "temporarily_unavailable")


def test_signing_keys_out_of_reach_answer_temporarily_unavailable_before_the_code_is_used(world: World) -> None:
    """The key is resolved before the code's row is replaced (the signatures run beside that write): a
    Key Vault outage costs the client a retry, not its code."""
    source = FakeKeySource([dict(SHARED_BROKER_KEY)])
    source.fail = KeysUnavailableError(detail="key source: HTTP 503")
    endpoint = dataclasses.replace(world.endpoint, signer=KeyRing(source, clock=world.clock))
    code = world.code()
    with pytest.raises(KeysUnavailableError) as raised:
        exchange_code(basic_request(code_form(code)), endpoint)
    assert (raised.value.status, raised.value.error) == (503, "temporarily_unavailable")
    source.fail = None
    world.clock.now += 31  # the ring tries its source again after 30 s
    tokens = exchange_code(basic_request(code_form(code)), endpoint)
    assert world.keys.decode(tokens.id_token, issuer=ISSUER, audience="rp-basic")["sub"] == PSC_USERINFO["sub"]


def test_a_forked_worker_redeems_with_signing_threads_of_its_own(world: World) -> None:
    """The signing threads are the process's own: a child forked after a redemption (a worker model that
    forks, a test runner) does not wait on threads that exist only in its parent."""
    exchange_code(basic_request(code_form(world.code())), world.endpoint)  # the parent's threads run now
    code = world.code()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which reports through the pipe
        try:
            tokens = exchange_code(basic_request(code_form(code)), world.endpoint)
            os.write(write_end, b"signed" if tokens.id_token.count(".") == 2 else b"unsigned")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        answer = os.read(read_end, 16) if ready else b"still waiting after 30 s"
    finally:
        os.close(read_end)
        if not ready:
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert answer == b"signed"


def test_two_concurrent_redemptions_of_one_code_revoke_every_token_of_the_grant(world: World) -> None:
    """The loser of the conditional replace revokes the winner's token too: the code was used twice."""
    code = world.code()
    codes = world.tables["codes"]
    row = world.grant_row(code)
    assert row is not None
    exchange_code(basic_request(code_form(code)), world.endpoint)  # the winner, between the loser's read and write
    original_find = codes.find
    codes.find = lambda partition, key: row  # type: ignore[method-assign]  # the loser read it before
    try:
        with pytest.raises(InvalidGrantError) as raised:
            exchange_code(basic_request(code_form(code)), world.endpoint)
    finally:
        codes.find = original_find  # type: ignore[method-assign]
    assert world.grant_row(code) is None
    assert raised.value.description == "the authorization code is invalid, expired or was already used"
    assert raised.value.detail == "concurrent redemption: the grant's tokens were revoked"


def test_token_errors_render_as_json_with_a_basic_challenge_only_for_invalid_client() -> None:
    from sanscouture.oidc.token import token_error_response

    refused = token_error_response(InvalidClientError())
    assert (refused.status, refused.header("WWW-Authenticate")) == (401, 'Basic realm="sans-couture"')
    outage = token_error_response(StorageUnavailableError())
    assert (outage.status, outage.header("WWW-Authenticate"), outage.header("Cache-Control")) == (503, None, "no-store")


def test_a_charset_parameter_on_the_form_content_type_is_accepted(world: World) -> None:
    request = basic_request(code_form(world.code()), content_type=f"{FORM}; charset=UTF-8")
    assert exchange_code(request, world.endpoint).expires_in == 120


def test_a_request_without_content_type_is_invalid_request(world: World) -> None:
    request = basic_request(code_form(world.code()))
    request = Request("POST", request.url, {"authorization": request.headers["authorization"]}, form=request.form)
    error = refused(world, request, InvalidRequestError, "invalid_request")
    assert error.description == "the body must be application/x-www-form-urlencoded"


def test_the_token_response_body_is_rfc_6749_5_1(world: World) -> None:
    response = handle_token_request(basic_request(code_form(world.code())), world.endpoint)
    body = json.loads(response.body)
    assert sorted(body) == ["access_token", "expires_in", "id_token", "scope", "token_type"]  # no refresh token
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 120, "openid scope_all")
    access = world.keys.decode(body["access_token"], issuer=ISSUER, audience=ISSUER, typ="at+jwt")
    assert world.keys.decode(body["id_token"], issuer=ISSUER, audience="rp-basic")["at_hash"] == at_hash(
        body["access_token"])
    assert len(access["jti"]) == 22  # 128 random bits, base64url


def jwt_request(code: str, jti: str = "assertion-1") -> Request:
    claims = {"iss": "rp-jwt", "sub": "rp-jwt", "aud": ISSUER, "exp": int(NOW) + 60, "iat": int(NOW), "jti": jti}
    token = jwt.encode(claims, jwt.PyJWK(RP_JWT_KEY).key, algorithm="RS256", headers={"kid": RP_JWT_KEY["kid"]})
    form = {**code_form(code), "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token}
    return Request("POST", f"{ISSUER}/token", {"content-type": FORM}, form=form)


def test_private_key_jwt_is_checked_against_the_jwks_uri_the_clock_and_the_replay_guard(world: World) -> None:
    tokens = exchange_code(jwt_request(world.code("rp-jwt")), world.endpoint)
    assert world.keys.decode(tokens.id_token, issuer=ISSUER, audience="rp-jwt")["aud"] == "rp-jwt"
    assert world.tables["jti"].calls == ["insert"]  # the assertion's jti is recorded until its exp
    # The same assertion again is a replay, refused before the code is even looked at.
    error = refused(world, jwt_request(world.code("rp-jwt")), InvalidClientError, "invalid_client")
    assert error.status == 401


def test_failed_client_authentications_are_counted_per_source_until_slow_down(world: World) -> None:
    limited = dataclasses.replace(world.endpoint, failed_client_auth=RateLimiter(2, world.clock))
    wrong = Request("POST", f"{ISSUER}/token", {"content-type": FORM, "authorization": "Basic cnAtYmFzaWM6bm9wZQ=="},
                    form=code_form(world.code()))
    for _ in range(2):
        with pytest.raises(InvalidClientError):
            exchange_code(wrong, limited)
    with pytest.raises(SlowDownError) as raised:
        exchange_code(basic_request(code_form(world.code())), limited)  # even the right secret must wait
    assert (raised.value.error, raised.value.retry_after) == ("slow_down", 31)


def test_slow_down_is_429_with_retry_after_and_other_errors_carry_their_json_body() -> None:
    slow = token_error_response(SlowDownError(31))
    assert (slow.status, slow.header("Retry-After"), slow.header("Cache-Control")) == (429, "31", "no-store")
    assert json.loads(slow.body) == {"error": "slow_down",
                                     "error_description": "too many requests from this address, retry later"}
    grant = token_error_response(InvalidGrantError("redirect_uri does not match the authorization request"))
    assert (grant.status, json.loads(grant.body)) == (400, {
        "error": "invalid_grant", "error_description": "redirect_uri does not match the authorization request"})
    client = token_error_response(InvalidClientError())
    assert json.loads(client.body) == {"error": "invalid_client", "error_description": "client authentication failed"}
