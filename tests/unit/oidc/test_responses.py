"""Authorization responses: the code or the error goes back with state and iss (RFC 6749 4.1.2, RFC 9207)."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

from sanscouture.errors import AccessDeniedError
from sanscouture.errors import LoginRequiredError
from sanscouture.models import AuthorizationRequest
from sanscouture.oidc.responses import code_response
from sanscouture.oidc.responses import error_redirect
from sanscouture.oidc.responses import error_redirect_url
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import ISSUER

REDIRECT = "https://sn.example.fr/cb?tenant=a"


def request(state: str | None = "st 1") -> AuthorizationRequest:
    return AuthorizationRequest("sn", REDIRECT, ("openid",), CHALLENGE, state=state)


def query(location: str | None) -> dict[str, list[str]]:
    assert location is not None and location.startswith("https://sn.example.fr/cb?")
    return parse_qs(urlsplit(location).query)


def test_the_code_goes_back_with_state_and_iss_and_the_cookies() -> None:
    response = code_response(request(), "gid.secret", ISSUER, cookies=("a=1",))
    assert response.status == 302
    assert query(response.header("Location")) == {"tenant": ["a"], "code": ["gid.secret"], "state": ["st 1"],
                                                  "iss": [ISSUER]}
    assert ("Set-Cookie", "a=1") in response.headers


def test_without_state_none_is_sent() -> None:
    assert "state" not in query(code_response(request(state=None), "c", ISSUER).header("Location"))
    assert query(code_response(request(state=""), "c", ISSUER).header("Location"))["tenant"] == ["a"]


def test_an_error_goes_back_with_its_description_state_and_iss() -> None:
    response = error_redirect(request(), ISSUER, LoginRequiredError("pairing no longer valid"), cookies=("b=2",))
    assert response.status == 302 and ("Set-Cookie", "b=2") in response.headers
    assert query(response.header("Location")) == {"tenant": ["a"], "error": ["login_required"],
                                                  "error_description": ["pairing no longer valid"],
                                                  "state": ["st 1"], "iss": [ISSUER]}


def test_an_error_without_description_or_state_sends_neither() -> None:
    location = error_redirect_url(REDIRECT, None, ISSUER, "access_denied")
    assert query(location) == {"tenant": ["a"], "error": ["access_denied"], "iss": [ISSUER]}
    assert query(error_redirect(request(state=None), ISSUER, AccessDeniedError("")).header("Location")) == {
        "tenant": ["a"], "error": ["access_denied"], "iss": [ISSUER]}
