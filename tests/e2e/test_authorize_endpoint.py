"""/authorize over HTTPS: each protocol negative gets the exact OAuth error, or a page and no redirect."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests

from sandbox.run import Sandbox
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty


@pytest.fixture(scope="module")
def party(sandbox: Sandbox) -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-basic"))


def authorize(url: str, method: str = "GET") -> requests.Response:
    if method == "POST":  # a same-site POST: the browser's broker cookies go with it
        base, query = url.split("?", 1)
        return requests.post(base, data={k: v[0] for k, v in parse_qs(query).items()}, allow_redirects=False,
                             cookies={"__Host-sc-session": "s1.a-session"}, timeout=10)
    return requests.get(url, allow_redirects=False, timeout=10)


def error_of(response: requests.Response, party: RelyingParty) -> dict[str, str]:
    # 303 after a POST: the browser follows with a GET (RFC 9110 15.4.4).
    assert response.status_code == (303 if response.request.method == "POST" else 302), response.text[:300]
    location = response.headers["Location"]
    assert location.startswith(party.redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.parametrize(
    ("extra", "error", "description"),
    [
        (
            {"code_challenge": "", "code_challenge_method": ""},
            "invalid_request",
            "code_challenge is required (PKCE S256)",
        ),
        ({"code_challenge_method": "plain"}, "invalid_request", "code_challenge_method must be S256"),
        ({"scope": "profile scope_all"}, "invalid_scope", "the openid scope is required"),
        ({"response_type": "token"}, "unsupported_response_type", "only response_type=code is supported"),
        ({"response_type": "id_token"}, "unsupported_response_type", "only response_type=code is supported"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", "request objects are not supported"),
        ({"prompt": "none login"}, "invalid_request", "prompt=none cannot be combined with other values"),
    ],
)
def test_a_bad_request_goes_back_to_the_client_with_the_exact_error(
    party: RelyingParty, extra: dict[str, str], error: str, description: str
) -> None:
    pkce = Pkce()
    params = error_of(authorize(party.authorization_url(pkce, **extra)), party)
    assert params == {"error": error, "error_description": description, "state": pkce.state,
                      "iss": party.sandbox.broker_url}


def test_post_to_authorize_is_validated_the_same_way(party: RelyingParty) -> None:
    pkce = Pkce()
    params = error_of(authorize(party.authorization_url(pkce, code_challenge_method="plain"), "POST"), party)
    assert params["error"] == "invalid_request"


def test_an_unregistered_redirect_uri_gets_a_french_page_and_no_redirect(party: RelyingParty) -> None:
    response = authorize(party.authorization_url(Pkce(), redirect_uri="https://evil.example/callback"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'lang="fr"' in response.text and "evil.example" not in response.text
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_an_unknown_client_gets_a_french_page_and_no_redirect(party: RelyingParty) -> None:
    response = authorize(party.authorization_url(Pkce(), client_id="nobody"))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "Service inconnu" in response.text


def test_unknown_parameters_are_ignored(party: RelyingParty) -> None:
    response = authorize(party.authorization_url(Pkce(), foo="bar", ui_locales="fr", display="page"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(party.sandbox.entra_url)


def test_the_journey_cookie_is_host_prefixed_secure_httponly_lax_sealed_and_short_lived(party: RelyingParty) -> None:
    response = authorize(party.authorization_url(Pkce()))
    cookie = response.headers["Set-Cookie"]
    name, value = cookie.split(";")[0].split("=", 1)
    journey_id = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
    assert name == f"__Host-sc-j-{journey_id[:16]}"  # its own cookie: parallel tabs keep theirs
    assert value.startswith("s1.") and journey_id not in value and "rp-basic" not in value  # sealed
    attributes = cookie.split("; ")[1:]
    assert {"Path=/", "Secure", "HttpOnly", "SameSite=Lax"} <= set(attributes)
    assert not any(attribute.startswith("Domain") for attribute in attributes)
    max_age = int(next(a for a in attributes if a.startswith("Max-Age=")).split("=")[1])
    assert 1790 <= max_age <= 1800  # 15 min, and 15 more to say "too late" rather than "expired form"


def test_the_broker_passes_prompt_max_age_and_login_hint_on_to_entra(party: RelyingParty) -> None:
    response = authorize(party.authorization_url(Pkce(), prompt="login", max_age="300", login_hint="cpx"))
    entra = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    assert (entra["prompt"], entra["max_age"], entra["login_hint"]) == ("login", "300", "cpx")
    assert '"acrs"' in entra["claims"] and entra["code_challenge_method"] == "S256"


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        ({"max_age": "²"}, "max_age must be a non-negative integer"),
        ({"acr_values": "eidas1 " * 200}, "acr_values is too long"),
        ({"login_hint": "é" * 200}, "login_hint is too long"),
        ({"nonce": "n" * 600}, "nonce is too long"),
    ],
)
def test_hostile_values_get_invalid_request_not_a_500(
    party: RelyingParty, extra: dict[str, str], description: str
) -> None:
    params = error_of(authorize(party.authorization_url(Pkce(), **extra)), party)
    assert (params["error"], params["error_description"]) == ("invalid_request", description)


def test_an_over_long_state_is_refused_and_not_echoed_back(party: RelyingParty) -> None:
    pkce = Pkce()
    pkce.state = "s" * 5000
    params = error_of(authorize(party.authorization_url(pkce)), party)
    assert params["error"] == "invalid_request" and "state" not in params


def test_a_repeated_query_parameter_is_refused(party: RelyingParty) -> None:
    response = authorize(party.authorization_url(Pkce()) + "&state=second")
    assert error_of(response, party)["error_description"] == "state is included more than once"


@pytest.mark.parametrize("path", ["/callback?state=a/b", "/pair/callback?state=..%2F", "/callback?state=" + "x" * 5000])
def test_malformed_journey_ids_are_a_french_page_not_a_storage_error(party: RelyingParty, path: str) -> None:
    response = requests.get(party.sandbox.broker_url + path, timeout=10)
    assert response.status_code == 400 and 'lang="fr"' in response.text
