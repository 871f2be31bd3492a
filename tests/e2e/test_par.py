"""Pushed authorization requests (RFC 9126) over HTTPS: a relying party built on Authlib pushes its
request to /par, sends the browser to /authorize with the request_uri alone and signs in; a used, an
expired or another client's request_uri, a client that must use PAR and does not, and a push with bad
credentials are refused with their exact errors."""

from __future__ import annotations

import hashlib
import secrets
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken

from functions import _wiring
from sandbox.counting import RequestCounter
from sandbox.counting import counting_tables
from sandbox.run import RegisteredClient
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sanscouture.adapters.tables import Tables
from sanscouture.oidc.par import PAR_ROW
from sanscouture.oidc.par import REQUEST_URI_PREFIX
from tests.e2e.test_third_party_clients import FiveMinutePrivateKeyJWT

EXPIRED_PAGE = "Demande de connexion expirée"


def registered(sandbox: Sandbox, client_id: str) -> RegisteredClient:
    return next(c for c in sandbox.clients if c.client_id == client_id)


def metadata(sandbox: Sandbox) -> dict[str, Any]:
    return dict(requests.get(f"{sandbox.broker_url}/.well-known/openid-configuration", timeout=10).json())


def authlib_session(sandbox: Sandbox, client_id: str) -> OAuth2Session:
    """The relying party as Authlib builds it; private_key_jwt signs for the URL it posts to."""
    client = registered(sandbox, client_id)
    if client.auth_method == "private_key_jwt":
        return OAuth2Session(client_id=client_id, client_secret=dict(client.private_jwk or {}),
                             token_endpoint_auth_method=FiveMinutePrivateKeyJWT(), scope="openid scope_all",
                             redirect_uri=client.redirect_uris[0], code_challenge_method="S256")
    return OAuth2Session(client_id=client_id, client_secret=client.secret, scope="openid scope_all",
                         redirect_uri=client.redirect_uris[0], code_challenge_method="S256")


class PushingParty:
    """A relying party that pushes its authorization request (RFC 9126 2) and redirects with its
    request_uri (RFC 9126 4), with Authlib's request building and client authentication."""

    def __init__(self, sandbox: Sandbox, client_id: str = "rp-par") -> None:
        self.metadata = metadata(sandbox)
        self.client = registered(sandbox, client_id)
        self.session = authlib_session(sandbox, client_id)
        self.verifier, self.nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        self.state = ""

    def push(self, **extra: str) -> requests.Response:
        """POST the parameters Authlib would have put in the authorization URL to /par, authenticated
        the way the session authenticates at /token."""
        url, self.state = self.session.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=self.verifier, nonce=self.nonce, **extra
        )
        auth = self.session.client_auth(self.session.token_endpoint_auth_method)
        return self.session.post(self.metadata["pushed_authorization_request_endpoint"],
                                 data=dict(parse_qsl(urlsplit(url).query)), auth=auth, timeout=10)

    def request_uri(self, **extra: str) -> str:
        pushed = self.push(**extra)
        assert pushed.status_code == 201, pushed.text
        return str(pushed.json()["request_uri"])

    def authorization_url(self, request_uri: str) -> str:
        """RFC 9126 4: client_id and request_uri, nothing else."""
        query = urlencode({"client_id": self.client.client_id, "request_uri": request_uri})
        return f"{self.metadata['authorization_endpoint']}?{query}"


def redirect_params(response: requests.Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def test_discovery_names_the_par_endpoint_and_does_not_require_it_of_every_client(sandbox: Sandbox) -> None:
    document = metadata(sandbox)
    assert document["pushed_authorization_request_endpoint"] == f"{sandbox.broker_url}/par"
    assert document["require_pushed_authorization_requests"] is False  # rp-basic, rp-post… do not


def test_an_authlib_client_pushes_its_request_then_signs_in_with_the_request_uri_alone(sandbox: Sandbox) -> None:
    party = PushingParty(sandbox)
    pushed = party.push(login_hint="cpx")
    assert pushed.status_code == 201
    assert pushed.headers["Cache-Control"] == "no-store"
    assert pushed.headers["Content-Type"].startswith("application/json")
    body = pushed.json()
    assert body["expires_in"] == 60 and body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")

    browser, redirect_uri = Browser(sandbox, psc_persona="medecin-cps"), party.client.redirect_uris[0]
    page = browser.go(party.authorization_url(body["request_uri"]), stop_at=redirect_uri)
    if isinstance(page, Page) and page.h1 == "Appairage du compte":
        page = browser.submit(page, "pair", stop_at=redirect_uri)
    assert isinstance(page, Page) and page.h1 == "Connexion"
    landing = browser.submit(page, "confirm", stop_at=redirect_uri)
    assert isinstance(landing, Landing)
    assert landing.params["state"] == party.state and landing.params["iss"] == sandbox.broker_url

    token = party.session.fetch_token(party.metadata["token_endpoint"], authorization_response=landing.url,
                                      code_verifier=party.verifier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib.jose is deprecated in favour of joserfc; still the 1.x API
        from authlib.jose import JsonWebKey
        from authlib.jose import jwt

        jwks = requests.get(party.metadata["jwks_uri"], timeout=10).json()
        claims = jwt.decode(
            token["id_token"], JsonWebKey.import_key_set(jwks), claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": party.metadata["issuer"]}},
            claims_params={"nonce": party.nonce, "client_id": "rp-par", "access_token": token["access_token"]},
        )
        claims.validate()
    assert claims["acr"] == "eidas1"
    assert party.session.get(party.metadata["userinfo_endpoint"]).json()["SubjectNameID"] == "810100000001"


def test_a_private_key_jwt_assertion_signed_for_the_par_endpoint_is_accepted(sandbox: Sandbox) -> None:
    """Authlib's PrivateKeyJWT without an endpoint signs for the URL it posts to: RFC 9126 2 makes the
    PAR endpoint URL an audience the server must accept (as one string)."""
    party = PushingParty(sandbox, "rp-jwt")
    request_uri = party.request_uri(login_hint="cpx")
    first_hop = requests.get(party.authorization_url(request_uri), allow_redirects=False, timeout=10)
    assert first_hop.status_code == 302 and first_hop.headers["Location"].startswith(sandbox.entra_url)


def test_a_used_request_uri_is_refused_with_a_page_and_no_redirect(sandbox: Sandbox) -> None:
    party = PushingParty(sandbox)
    url = party.authorization_url(party.request_uri(login_hint="cpx"))
    first = requests.get(url, allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Location"].startswith(sandbox.entra_url)
    again = requests.get(url, allow_redirects=False, timeout=10)
    assert again.status_code == 400 and "Location" not in again.headers
    assert EXPIRED_PAGE in again.text


def test_an_expired_request_uri_is_refused_with_a_page_and_no_redirect(sandbox: Sandbox) -> None:
    party = PushingParty(sandbox)
    request_uri = party.request_uri()
    store = Tables.from_connection_string(sandbox.azurite_connection or "")["par"]
    key = hashlib.sha256(request_uri.removeprefix(REQUEST_URI_PREFIX).encode()).hexdigest()
    row = store.find(key, PAR_ROW)
    assert row is not None and row.data["client_id"] == "rp-par"
    store.save(key, PAR_ROW, row.data, expires_in=-1)  # as if pushed 61 s ago
    response = requests.get(party.authorization_url(request_uri), allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Location" not in response.headers
    assert EXPIRED_PAGE in response.text


def test_another_clients_request_uri_is_refused(sandbox: Sandbox) -> None:
    """RFC 9126 2.2: the request_uri is bound to the client that pushed it."""
    request_uri = PushingParty(sandbox, "rp-basic").request_uri()
    url = f"{sandbox.broker_url}/authorize?" + urlencode({"client_id": "rp-post", "request_uri": request_uri})
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Location" not in response.headers
    assert EXPIRED_PAGE in response.text


def test_a_client_that_must_use_par_and_does_not_gets_invalid_request_at_its_redirect_uri(sandbox: Sandbox) -> None:
    party = PushingParty(sandbox)
    url, state = party.session.create_authorization_url(party.metadata["authorization_endpoint"],
                                                        code_verifier=party.verifier, nonce=party.nonce)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302 and response.headers["Location"].startswith(party.client.redirect_uris[0])
    assert redirect_params(response) == {
        "error": "invalid_request",
        "error_description": "this client must use pushed authorization requests (PAR)",
        "state": state,
        "iss": sandbox.broker_url,
    }


def test_a_push_with_bad_client_credentials_is_invalid_client_401(sandbox: Sandbox) -> None:
    party = PushingParty(sandbox)
    party.session.client_secret = "not-the-secret"  # a wrong secret, on purpose
    refused = party.push()
    assert refused.status_code == 401
    assert refused.json() == {"error": "invalid_client", "error_description": "client authentication failed"}
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="sans-couture"'
    assert refused.headers["Cache-Control"] == "no-store"


def test_a_pushed_request_is_validated_as_authorize_would_and_answered_in_json(sandbox: Sandbox) -> None:
    party = PushingParty(sandbox)
    refused = party.push(redirect_uri="https://attacker.example/cb")
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_request", "error_description":
                              "redirect_uri did not match any of the client's registered redirect_uris"}
    pushed_uri = party.push(request_uri=REQUEST_URI_PREFIX + "x")
    assert pushed_uri.json()["error_description"] == "request_uri must not be pushed"


def test_a_get_to_par_is_405_with_allow_post(sandbox: Sandbox) -> None:
    response = requests.get(f"{sandbox.broker_url}/par", timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"


@pytest.fixture
def counted(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[RequestCounter]:
    """The worker's tables, every request to Azurite counted (as in test_round_trips.py)."""
    wired = _wiring.services()
    tables, counter = counting_tables(sandbox.azurite_connection or "")
    monkeypatch.setitem(vars(wired), "tables", tables)
    monkeypatch.delitem(vars(wired), "broker", raising=False)
    yield counter
    vars(wired).pop("broker", None)


def test_a_push_costs_one_round_trip_and_the_pushed_authorize_two(sandbox: Sandbox, counted: RequestCounter) -> None:
    party = PushingParty(sandbox)
    counted.take()
    request_uri = party.request_uri(login_hint="cpx")
    assert counted.take() == Counter({"POST par": 1})  # the pushed request's row
    response = requests.get(party.authorization_url(request_uri), allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert counted.take() == Counter({"GET par": 1, "DELETE par": 1})  # read, then deleted If-Match its ETag
