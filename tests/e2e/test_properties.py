"""Property-based hostile input over real HTTPS (issue 8, point 15): one property per endpoint.

For every generated request (tests/e2e/hostile.py: generated, oversized, repeated, mis-encoded and
injection-laden parameters, headers and cookies), the broker answers

* never a 5xx (storage is up: not even 503) and never a stack trace;
* the endpoint's own error shape: at ``/token`` a JSON OAuth error of RFC 6749 5.2 among those the
  endpoint may give, 401 with ``WWW-Authenticate`` for ``invalid_client``; at ``/userinfo`` the RFC 6750
  3.1 answers (``invalid_request`` 400, ``invalid_token`` 401, a bare ``Bearer`` challenge without a token);
  at the browser endpoints a French page (``lang="fr"``) or a redirect to a registered URI (with ``error``
  for an authorization response), to Entra ID (a valid request starts a journey) or to the broker itself
  (a cross-site POST answered as a GET);
* nothing reflected unescaped: no injection marker's dangerous form in a header or the body, no header
  split by a parameter.

Each property sends at least 2,000 requests (the ``sanscouture-ci`` profile: ``derandomize`` and no
example database, so that CI replays the same requests), counts those really answered and asserts the
count. One TLS connection is reused while the server keeps it alive.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from sandbox.run import Sandbox
from sanscouture.oidc.client_auth import ASSERTION_TYPE
from tests.e2e.conftest import BrokerUnderTest
from tests.e2e.conftest import Pkce
from tests.e2e.conftest import RelyingParties
from tests.e2e.hostile import FORBIDDEN
from tests.e2e.hostile import INJECTED_COOKIE
from tests.e2e.hostile import INJECTED_HEADERS
from tests.e2e.hostile import Answer
from tests.e2e.hostile import HostileRequest
from tests.e2e.hostile import RawClient
from tests.e2e.hostile import hostile_request

REQUIRED_REQUESTS = 2000
settings.register_profile(
    "sanscouture-ci",
    max_examples=REQUIRED_REQUESTS,
    deadline=None,
    derandomize=True,  # the same requests on every run: CI is reproducible
    database=None,
    # A success costs no shrinking; a failure is shrunk (bounded) so that its report is readable.
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=list(HealthCheck),
    report_multiple_bugs=False,
    print_blob=False,
)
# A quicker profile for working on the properties: SANSCOUTURE_PROPERTY_PROFILE=sanscouture-dev.
settings.register_profile("sanscouture-dev", settings.get_profile("sanscouture-ci"), max_examples=100)
PROFILE = settings.get_profile(os.environ.get("SANSCOUTURE_PROPERTY_PROFILE", "sanscouture-ci"))

# The errors each JSON endpoint may answer (RFC 6749 5.2 for /token, RFC 6750 3.1 for /userinfo).
TOKEN_ERRORS = frozenset({"invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type",
                          "unauthorized_client"})
# RFC 6749 Appendix A.7.
DESCRIPTION = re.compile(r'^[\x20\x21\x23-\x5B\x5D-\x7E]*$')
STACK_TRACE = ("Traceback (most recent call last)", 'File "/', ".py\", line ", "sanscouture/", "site-packages")


@dataclass
class Material:
    """Real values mixed into the generated requests so that they reach deep code: the test clients'
    credentials, a real access token and ID token, a real journey (its cookie and id)."""

    basic: list[str]
    secret_post: str
    access_token: str
    id_token: str
    assertion: str
    journey_cookie: str
    journey_id: str


@pytest.fixture(scope="module")
def material(broker: BrokerUnderTest, sandbox: Sandbox) -> Material:
    rps = RelyingParties(broker)
    tokens = rps.tokens("rp-basic", nonce="n")
    headers, _ = rps.credentials("rp-basic")
    refresh_headers, _ = rps.credentials("rp-refresh")
    # A real journey: its sealed cookie, and its id (the state sent to Entra ID, back at /callback).
    pkce = Pkce.new()
    start = requests.get(f"{broker.url}/authorize", allow_redirects=False, timeout=10, params={
        "client_id": "rp-basic", "redirect_uri": broker.clients["rp-basic"].redirect_uris[0],
        "response_type": "code", "scope": "openid scope_all", "state": "s", "nonce": "n",
        "code_challenge": pkce.challenge, "code_challenge_method": "S256", "login_hint": "cpx"})
    assert start.status_code == 302 and start.headers["Location"].startswith(sandbox.entra_url)
    journey_id = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    cookie = next(f"{c.name}={c.value}" for c in start.cookies if c.name.startswith("__Host-sc-j-"))
    return Material(
        basic=[headers["Authorization"], refresh_headers["Authorization"]],
        secret_post=broker.clients["rp-post"].secret or "",
        access_token=tokens["access_token"],
        id_token=tokens["id_token"],
        assertion=rps.assertion("rp-jwt"),
        journey_cookie=cookie,
        journey_id=journey_id,
    )


# -- what every answer must be ---------------------------------------------------------------------------


def assert_sane(answer: Answer) -> None:
    """Never a 5xx, never a stack trace, nothing reflected unescaped, no header split by a parameter."""
    assert answer.status < 500, (answer.status, answer.body[:500])
    text = answer.text
    assert not any(trace in text for trace in STACK_TRACE), text[:1000]
    for name, value in answer.headers:
        assert name.lower() not in INJECTED_HEADERS, (name, value)
        assert "\r" not in value and "\n" not in value, (name, value)
        assert not any(form in value for form in FORBIDDEN), (name, value)
        if name.lower() == "set-cookie":
            assert INJECTED_COOKIE not in value, value
    for form in FORBIDDEN:
        assert form not in text, (form, text[:2000])


def assert_json_error(answer: Answer, allowed: frozenset[str]) -> dict[str, Any]:
    assert (answer.header("Content-Type") or "").startswith("application/json"), answer.headers
    assert answer.header("Cache-Control") == "no-store"
    body = answer.json()
    assert isinstance(body, dict) and body["error"] in allowed, body
    assert DESCRIPTION.match(body.get("error_description", "")), body
    return body


def assert_french_page(answer: Answer) -> None:
    assert (answer.header("Content-Type") or "").startswith("text/html"), (answer.status, answer.headers)
    assert '<html lang="fr"' in answer.text, answer.text[:500]
    assert answer.header("X-Content-Type-Options") == "nosniff"


def redirect_target(location: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query, keep_blank_values=True)


@dataclass(frozen=True)
class BrowserEndpoint:
    """Where a browser endpoint may send the browser: the broker itself, Entra ID, and the registered
    URIs (``rp_keys``: the parameters an answer to the relying party must carry one of)."""

    own_path: str
    entra_url: str | None
    registered: frozenset[str]
    rp_keys: frozenset[str]


def check_browser_answer(answer: Answer, endpoint: BrowserEndpoint, broker_url: str) -> None:
    assert_sane(answer)
    if answer.status in (301, 302, 303, 307, 308):
        location = answer.header("Location")
        assert location, answer.headers
        target, query = redirect_target(location)
        assert ".." not in target, location
        if target == f"{broker_url}{endpoint.own_path}":
            assert answer.status == 303  # a cross-site POST, answered as a GET
        elif endpoint.entra_url and target.startswith(endpoint.entra_url):
            assert target.endswith("/oauth2/v2.0/authorize"), location
        else:
            assert target in endpoint.registered, location
            assert endpoint.rp_keys & set(query) or not endpoint.rp_keys, location
        return
    assert_french_page(answer)
    assert answer.status in (200, 400, 403, 404, 409, 413, 429), answer.status


# -- running a property ----------------------------------------------------------------------------------


@dataclass
class Measured:
    sent: int
    seconds: float
    connections: int


def run_property(
    base_url: str, name: str, requests_of: st.SearchStrategy[HostileRequest], check: Callable[[HostileRequest,
                                                                                              Answer], None],
) -> Measured:
    """Send every generated request once, check its answer; the count of answered requests and the time."""
    client = RawClient(base_url)

    @settings(PROFILE)
    @given(requests_of)
    def prop(request: HostileRequest) -> None:
        check(request, client.send(request))

    started = time.perf_counter()
    try:
        prop()
    finally:
        client.close()
    measured = Measured(client.sent, time.perf_counter() - started, client.connections)
    print(f"\n{name}: {measured.sent} requests in {measured.seconds:.1f} s over {measured.connections} "
          f"connection(s)", file=sys.stderr)
    return measured


@pytest.fixture
def report(record_property: Callable[[str, object], None]) -> Iterator[Callable[[Measured], None]]:
    def record(measured: Measured) -> None:
        record_property("requests", measured.sent)
        record_property("seconds", round(measured.seconds, 1))
        assert measured.sent >= PROFILE.max_examples, measured

    yield record


# -- plausible values, mixed with the hostile ones --------------------------------------------------------


def authorization_parameters(broker: BrokerUnderTest, material: Material) -> dict[str, list[str]]:
    pkce = Pkce.new()
    return {
        "client_id": ["rp-basic", "rp-post", "rp-par", "nobody"],
        "redirect_uri": [broker.clients["rp-basic"].redirect_uris[0], broker.clients["rp-post"].redirect_uris[0],
                         "https://evil.example/callback", broker.clients["rp-basic"].redirect_uris[0] + "?x=1"],
        "response_type": ["code", "code", "token", "code id_token", ""],
        "scope": ["openid scope_all", "openid", "profile", "openid profile email address phone"],
        "state": [secrets.token_urlsafe(8)],
        "nonce": [secrets.token_urlsafe(8)],
        "code_challenge": [pkce.challenge, pkce.challenge, "short"],
        "code_challenge_method": ["S256", "S256", "plain", "s256"],
        "prompt": ["none", "login", "select_account", "consent", "none login"],
        "max_age": ["0", "1", "10000", "-1", "1e3", "٣"],
        "login_hint": ["cpx", "nobody@example.fr"],
        "id_token_hint": [material.id_token],
        "response_mode": ["query", "fragment", "form_post"],
        "request_uri": ["urn:ietf:params:oauth:request_uri:" + "A" * 43, "https://rp-basic.example.fr/r.jwt"],
        "request": ["eyJhbGciOiJub25lIn0.e30."],
        "acr_values": ["eidas1", "1 2"],
        "ui_locales": ["fr-FR", "se"],
        "display": ["page", "popup"],
    }


def browser(broker: BrokerUnderTest, sandbox: Sandbox, own_path: str, rp_keys: frozenset[str]) -> BrowserEndpoint:
    registered = {uri for client in broker.clients.values() for uri in client.redirect_uris}
    registered |= {uri for client in broker.clients.values() for uri in client.post_logout_redirect_uris}
    return BrowserEndpoint(own_path, sandbox.entra_url, frozenset(registered), rp_keys)


# -- the properties --------------------------------------------------------------------------------------


def test_get_authorize_answers_hostile_requests_with_a_french_page_or_a_safe_redirect(
    broker: BrokerUnderTest, sandbox: Sandbox, material: Material, report: Callable[[Measured], None]
) -> None:
    endpoint = browser(broker, sandbox, "/authorize", frozenset({"error"}))
    strategy = hostile_request("GET", "/authorize", authorization_parameters(broker, material),
                               cookies=[material.journey_cookie])
    report(run_property(broker.url, "GET /authorize", strategy,
                        lambda _request, answer: check_browser_answer(answer, endpoint, broker.url)))


def test_post_authorize_answers_hostile_requests_with_a_french_page_or_a_safe_redirect(
    broker: BrokerUnderTest, sandbox: Sandbox, material: Material, report: Callable[[Measured], None]
) -> None:
    endpoint = browser(broker, sandbox, "/authorize", frozenset({"error"}))
    strategy = hostile_request("POST", "/authorize", authorization_parameters(broker, material),
                               cookies=[material.journey_cookie])
    report(run_property(broker.url, "POST /authorize", strategy,
                        lambda _request, answer: check_browser_answer(answer, endpoint, broker.url)))


def test_token_answers_hostile_requests_with_its_oauth_errors_only(
    broker: BrokerUnderTest, material: Material, report: Callable[[Measured], None]
) -> None:
    plausible = {
        "grant_type": ["authorization_code", "authorization_code", "refresh_token", "client_credentials", ""],
        "code": [f"{secrets.token_hex(16)}.{secrets.token_urlsafe(32)}", "x"],
        "redirect_uri": [broker.clients["rp-basic"].redirect_uris[0], "https://evil.example/cb"],
        "code_verifier": [secrets.token_urlsafe(48)],
        "client_id": ["rp-basic", "rp-post", "rp-jwt", "nobody"],
        "client_secret": [material.secret_post, "wrong"],
        "client_assertion_type": [ASSERTION_TYPE],
        "client_assertion": [material.assertion],
        "refresh_token": [secrets.token_urlsafe(32)],
        "scope": ["openid", "openid scope_all offline_access"],
    }
    strategy = hostile_request("POST", "/token", plausible, authorizations=material.basic)

    def check(_request: HostileRequest, answer: Answer) -> None:
        assert_sane(answer)
        assert answer.status in (400, 401, 413), (answer.status, answer.body[:300])
        body = assert_json_error(answer, TOKEN_ERRORS)
        assert (body["error"] == "invalid_client") == (answer.status == 401), (answer.status, body)
        if answer.status == 401:
            assert answer.header("WWW-Authenticate"), answer.headers
        if answer.status == 413:
            assert body["error"] == "invalid_request"

    report(run_property(broker.url, "POST /token", strategy, check))


def test_userinfo_answers_hostile_requests_as_rfc_6750_says(
    broker: BrokerUnderTest, material: Material, report: Callable[[Measured], None]
) -> None:
    plausible = {"access_token": [material.access_token, "x"], "schema": ["openid"]}
    strategy = hostile_request(("GET", "POST"), "/userinfo", plausible,
                               authorizations=[f"Bearer {material.access_token}"], valid_token=material.access_token)

    def check(request: HostileRequest, answer: Answer) -> None:
        assert_sane(answer)
        if answer.status == 200:  # the real token, alone and well sent, still alive
            assert request.carries_valid_token and answer.json()["sub"], request
            return
        challenge = answer.header("WWW-Authenticate") or ""
        if answer.status == 401:
            assert challenge.startswith("Bearer"), answer.headers
            if answer.body:
                assert assert_json_error(answer, frozenset({"invalid_token"}))
                assert 'error="invalid_token"' in challenge
            return
        assert answer.status in (400, 413), (answer.status, answer.body[:300])
        assert_json_error(answer, frozenset({"invalid_request"}))
        if answer.status == 400:
            assert challenge.startswith('Bearer error="invalid_request"'), answer.headers

    report(run_property(broker.url, "GET/POST /userinfo", strategy, check))


def test_logout_answers_hostile_requests_with_a_french_page_or_a_registered_uri(
    broker: BrokerUnderTest, sandbox: Sandbox, material: Material, report: Callable[[Measured], None]
) -> None:
    plausible = {
        "id_token_hint": [material.id_token, material.id_token, "eyJhbGciOiJub25lIn0.e30."],
        "post_logout_redirect_uri": [broker.clients["rp-basic"].post_logout_redirect_uris[0],
                                     "https://evil.example/bye"],
        "client_id": ["rp-basic", "rp-post", "nobody"],
        "state": [secrets.token_urlsafe(8)],
        "ui_locales": ["fr-FR"],
        "j": [material.journey_id],
        "csrf_token": [secrets.token_urlsafe(32)],
        "action": ["logout", "cancel"],
    }
    endpoint = browser(broker, sandbox, "/logout", frozenset())
    # j and csrf_token make a POST the confirmation form: seldom, so that the RP's requests are tried too.
    strategy = hostile_request(("GET", "POST"), "/logout", plausible, cookies=[material.journey_cookie],
                               rare=frozenset({"j", "csrf_token", "action"}))

    def check(_request: HostileRequest, answer: Answer) -> None:
        check_browser_answer(answer, endpoint, broker.url)
        location = answer.header("Location")
        if location and not location.startswith(broker.url):
            assert set(redirect_target(location)[1]) <= {"state"}, location  # RP-Initiated Logout 1.0 3

    report(run_property(broker.url, "GET/POST /logout", strategy, check))


def upstream_return(material: Material) -> dict[str, list[str]]:
    """What Entra ID or PSC send back to the broker, plausible or not."""
    return {
        "code": ["0.AAAA" + secrets.token_urlsafe(40), "x"],
        "state": [material.journey_id, material.journey_id, secrets.token_urlsafe(32)],
        "error": ["access_denied", "login_required", "interaction_required", "server_error"],
        "error_description": ["AADSTS50058: A silent sign-in request was sent"],
        "session_state": [secrets.token_urlsafe(16)],
        "client_info": ["eyJ1aWQiOiIxIn0"],
        "iss": ["https://login.microsoftonline.com/x/v2.0"],
    }


def test_callback_answers_hostile_returns_with_a_french_page_or_a_safe_redirect(
    broker: BrokerUnderTest, sandbox: Sandbox, material: Material, report: Callable[[Measured], None]
) -> None:
    endpoint = browser(broker, sandbox, "/callback", frozenset({"error"}))
    strategy = hostile_request("GET", "/callback", upstream_return(material), cookies=[material.journey_cookie])
    report(run_property(broker.url, "GET /callback", strategy,
                        lambda _request, answer: check_browser_answer(answer, endpoint, broker.url)))


def test_pair_callback_answers_hostile_returns_with_a_french_page_or_a_safe_redirect(
    broker: BrokerUnderTest, sandbox: Sandbox, material: Material, report: Callable[[Measured], None]
) -> None:
    endpoint = browser(broker, sandbox, "/pair/callback", frozenset({"error"}))
    strategy = hostile_request("GET", "/pair/callback", upstream_return(material),
                               cookies=[material.journey_cookie])
    report(run_property(broker.url, "GET /pair/callback", strategy,
                        lambda _request, answer: check_browser_answer(answer, endpoint, broker.url)))


def test_the_ci_profile_sends_2000_requests_per_endpoint_reproducibly() -> None:
    ci = settings.get_profile("sanscouture-ci")
    assert ci.max_examples == REQUIRED_REQUESTS >= 2000
    assert ci.derandomize and ci.database is None and ci.deadline is None


def test_a_raw_client_request_reaches_the_broker_as_sent(broker: BrokerUnderTest) -> None:
    """The client itself: a kept-alive connection, latin-1 octets in the request line, bytes in headers."""
    client = RawClient(broker.url)
    try:
        first = client.send(HostileRequest("GET", "/userinfo", b"x=%FF\xe9", None, {"Authorization": b"Bearer \xe9"}))
        second = client.send(HostileRequest("GET", "/logout", urlencode({"state": "é"}).encode()))
    finally:
        client.close()
    assert (first.status, second.status, client.sent) == (401, 200, 2)
    assert first.json()["error"] == "invalid_token" and 'lang="fr"' in second.text
