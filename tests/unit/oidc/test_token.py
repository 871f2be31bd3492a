"""The token endpoint's script: each check with its exact error, tokens issued and recorded in the grant."""

from __future__ import annotations

import base64
import hashlib
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
from sanscouture.web import Request
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import PSC_USERINFO
from tests.unit.oidc.fakes import VERIFIER
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeTables
from tests.unit.oidc.fakes import make_grant
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import sha256_secret
from tests.unit.oidc.fakes import shared_key_source

REDIRECT = "https://rp.example.fr/callback"
RP_BASIC = Client("rp-basic", (REDIRECT,), "client_secret_basic", sha256_secret("basic-secret"))
RP_POST = Client("rp-post", (REDIRECT,), "client_secret_post", sha256_secret("post-secret"))
FORM = "application/x-www-form-urlencoded"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.tables = FakeTables(self.clock)
        self.keys = KeyRing(shared_key_source(), clock=self.clock)
        self.endpoint = TokenEndpoint(
            settings=make_settings(RP_BASIC, RP_POST),
            tables=self.tables,
            signer=self.keys,
            client_jwks=lambda uri, refresh=False: {"keys": []},
            clock=self.clock,
        )

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
    refused(world, basic_request(code_form(world.code()), method="GET"), InvalidRequestError, "invalid_request")


def test_a_json_body_is_invalid_request(world: World) -> None:
    refused(world, basic_request({}, content_type="application/json"), InvalidRequestError, "invalid_request")


def test_repeated_parameters_are_invalid_request(world: World) -> None:
    request = basic_request(code_form(world.code()))
    request = Request("POST", request.url, request.headers, form=request.form, repeated=frozenset({"code"}))
    refused(world, request, InvalidRequestError, "invalid_request")


def test_client_is_authenticated_before_anything_else(world: World) -> None:
    request = Request("POST", f"{ISSUER}/token", {"content-type": FORM}, form=code_form(world.code()))
    refused(world, request, InvalidClientError, "invalid_client")


def test_missing_grant_type_is_invalid_request(world: World) -> None:
    refused(world, basic_request(code_form(world.code(), grant_type=None)), InvalidRequestError, "invalid_request")


def test_other_grant_type_is_unsupported(world: World) -> None:
    request = basic_request(code_form(world.code(), grant_type="password"))
    refused(world, request, UnsupportedGrantTypeError, "unsupported_grant_type")


def test_missing_code_is_invalid_request(world: World) -> None:
    form = {name: value for name, value in code_form("x").items() if name != "code"}
    refused(world, basic_request(form), InvalidRequestError, "invalid_request")


def test_unknown_code_is_invalid_grant(world: World) -> None:
    error = refused(world, basic_request(code_form("nope")), InvalidGrantError, "invalid_grant")
    assert error.description == "the authorization code is invalid, expired or was already used"


def test_reused_code_is_invalid_grant_and_revokes_the_tokens_it_gave(world: World) -> None:
    code = world.code()
    exchange_code(basic_request(code_form(code)), world.endpoint)
    assert world.grant_row(code).data["state"] == "redeemed"
    refused(world, basic_request(code_form(code)), InvalidGrantError, "invalid_grant")
    assert world.grant_row(code) is None  # the access token's record is gone: /userinfo refuses it


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
    refused(world, basic_request(code_form(world.code(), redirect_uri=None)), InvalidGrantError, "invalid_grant")


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
        with pytest.raises(InvalidGrantError):
            exchange_code(basic_request(code_form(code)), world.endpoint)
    finally:
        codes.find = original_find  # type: ignore[method-assign]
    assert world.grant_row(code) is None


def test_token_errors_render_as_json_with_a_basic_challenge_only_for_invalid_client() -> None:
    from sanscouture.oidc.token import token_error_response

    refused = token_error_response(InvalidClientError())
    assert (refused.status, refused.header("WWW-Authenticate")) == (401, 'Basic realm="sans-couture"')
    outage = token_error_response(StorageUnavailableError())
    assert (outage.status, outage.header("WWW-Authenticate"), outage.header("Cache-Control")) == (503, None, "no-store")
