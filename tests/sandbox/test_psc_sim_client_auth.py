"""The PSC simulator's token endpoint authenticates each client with its registered method, as Keycloak.

``jwt-broker`` is registered for ``private_key_jwt`` with a JWKS URL (the broker's ``/jwks`` in real
life, here a small HTTPS server whose keys a test can replace); ``secret-broker`` for
``client_secret_basic``. Errors are Keycloak's (see sandbox/psc_sim/client_auth.py for the sources).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from flask import Flask
from flask import jsonify

from sandbox import psc_sim
from sandbox.psc_sim.client_auth import ASSERTION_TYPE
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from tests.sandbox.test_psc_sim import pkce

REALM = "/auth/realms/esante-wallet"
REDIRECT = "https://broker.example/pair/callback"


@dataclass
class ClientKeys:
    """The JWKS the simulator fetches (``published``) and the key the client signs with (``signing``)."""

    url: str = ""
    signing: dict[str, Any] = field(default_factory=generate_private_jwk)
    published: list[dict[str, str]] = field(default_factory=list)

    def rotate(self) -> None:
        self.signing = generate_private_jwk()
        self.published.insert(0, public_jwk(self.signing))


@dataclass
class Clock:
    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def published_client_keys(local_tls: LocalTls) -> Iterator[ClientKeys]:
    """A client key pair whose JWKS an HTTPS server publishes while the block runs."""
    keys = ClientKeys()
    keys.published.append(public_jwk(keys.signing))
    app = Flask(__name__)
    app.add_url_rule("/jwks", "jwks", lambda: jsonify({"keys": keys.published}))
    port = free_port()
    server = serve("client-jwks", app, port, local_tls)
    keys.url = f"{server.url}/jwks"
    try:
        yield keys
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client_keys(local_tls: LocalTls) -> Iterator[ClientKeys]:
    """The keys of ``jwt-broker`` on the module's simulator; never rotated (the simulator caches them)."""
    with published_client_keys(local_tls) as keys:
        yield keys


@pytest.fixture
def rotating_client_keys(local_tls: LocalTls) -> Iterator[ClientKeys]:
    """Keys of this test alone, which it may rotate without touching the module's simulator."""
    with published_client_keys(local_tls) as keys:
        yield keys


def clients(keys: ClientKeys) -> tuple[psc_sim.PscClient, ...]:
    return (
        psc_sim.PscClient("jwt-broker", "", (REDIRECT,), token_endpoint_auth_method="private_key_jwt",
                          jwks_uri=keys.url),
        psc_sim.PscClient("secret-broker", "s3cret", (REDIRECT,)),
    )


@pytest.fixture(scope="module")
def psc(local_tls: LocalTls, client_keys: ClientKeys) -> Iterator[str]:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    config = psc_sim.PscSimConfig(clients(client_keys), ca_bundle=str(local_tls.bundle))
    server = serve("psc-client-auth", psc_sim.create_app(base, config), port, local_tls)
    yield server.url
    server.stop()


def assertion(psc: str, keys: ClientKeys, now: float | None = None, key: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None, **claims: Any) -> str:
    """An RFC 7523 client assertion for jwt-broker; ``claims`` override (None removes) the defaults."""
    issued = int(time.time() if now is None else now)
    payload = {"iss": "jwt-broker", "sub": "jwt-broker", "aud": psc + REALM, "iat": issued, "exp": issued + 60,
               "jti": secrets.token_urlsafe(16), **claims}
    signing = key or keys.signing
    header = {"kid": signing["kid"], **(headers or {})}
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, jwt.PyJWK(signing).key, algorithm="RS256", headers=header)


def token_request(psc: str, form: dict[str, str], auth: tuple[str, str] | None = None) -> requests.Response:
    body = {"grant_type": "authorization_code", "code": "not-a-code", "redirect_uri": REDIRECT, **form}
    return requests.post(f"{psc}{REALM}/protocol/openid-connect/token", data=body, auth=auth, timeout=10)


def with_assertion(token: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}


def refusal(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body.get("error_description", "")


def authenticated(response: requests.Response) -> bool:
    """Client authentication passed when the request fails only on its (fake) code."""
    return refusal(response)[:2] == (400, "invalid_grant")


def test_private_key_jwt_redeems_a_code_with_an_assertion_whose_audience_is_the_issuer(
    psc: str, client_keys: ClientKeys
) -> None:
    verifier, challenge = pkce()
    params = {"response_type": "code", "client_id": "jwt-broker", "redirect_uri": REDIRECT,
              "scope": "openid scope_all", "state": "s", "nonce": "n", "code_challenge": challenge,
              "code_challenge_method": "S256", "login_hint": "medecin-cps"}
    back = requests.get(f"{psc}/wallet/auth?{urlencode(params)}", allow_redirects=False, timeout=10)
    code = dict(parse_qsl(urlsplit(back.headers["Location"]).query))["code"]
    response = token_request(psc, {"code": code, "code_verifier": verifier,
                                   **with_assertion(assertion(psc, client_keys))})
    assert response.status_code == 200, response.text
    assert jwt.decode(response.json()["id_token"], options={"verify_signature": False})["aud"] == "jwt-broker"


def test_the_discovery_document_offers_private_key_jwt(psc: str) -> None:
    wallet = requests.get(f"{psc}{REALM}/.well-known/wallet-openid-configuration", timeout=10).json()
    assert "private_key_jwt" in wallet["token_endpoint_auth_methods_supported"]
    assert "RS256" in wallet["token_endpoint_auth_signing_alg_values_supported"]


def test_a_client_registered_for_private_key_jwt_is_refused_with_its_secret(psc: str) -> None:
    response = token_request(psc, {}, auth=("jwt-broker", "anything"))
    assert refusal(response) == (400, "invalid_client", "Parameter client_assertion_type is missing")


def test_a_client_registered_for_a_secret_is_refused_with_an_assertion(psc: str, client_keys: ClientKeys) -> None:
    token = assertion(psc, client_keys, iss="secret-broker", sub="secret-broker")
    assert refusal(token_request(psc, with_assertion(token))) == (
        400, "invalid_client", "Missing client_id parameter"
    )
    named = token_request(psc, with_assertion(token, client_id="secret-broker"))
    assert refusal(named) == (401, "invalid_client", "Invalid client or Invalid client credentials")
    assert named.headers["WWW-Authenticate"].startswith("Basic")
    assert authenticated(token_request(psc, {}, auth=("secret-broker", "s3cret")))


@pytest.mark.parametrize(
    ("audience", "description"),
    [
        ("{psc}/auth/realms/esante-wallet", None),
        ("{psc}/auth/realms/esante-wallet/protocol/openid-connect/token", None),
        ("https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", "Invalid token audience"),
        (["{psc}/auth/realms/esante-wallet", "https://elsewhere.example"], "Multiple audiences not allowed"),
    ],
)
def test_the_audience_is_the_realm_alone(
    psc: str, client_keys: ClientKeys, audience: str | list[str], description: str | None
) -> None:
    aud = [a.format(psc=psc) for a in audience] if isinstance(audience, list) else audience.format(psc=psc)
    response = token_request(psc, with_assertion(assertion(psc, client_keys, aud=aud)))
    if description is None:
        assert authenticated(response), response.text
    else:
        assert refusal(response) == (400, "invalid_client", description)


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        (lambda now: {"exp": None}, "Token exp claim is required"),
        (lambda now: {"iat": now - 200, "exp": now - 100}, "Token is not active"),
        (lambda now: {"iat": now - 120, "exp": now + 30}, "Token was issued too far in the past to be used now"),
        (lambda now: {"iat": now + 60, "exp": now + 90}, "Token was issued in the future"),
        (lambda now: {"iat": None, "exp": now + 300},
         "Token expiration is too far in the future and iat claim not present in token"),
        (lambda now: {"jti": None}, "Token jti claim is required"),
        (lambda now: {"sub": None}, "Token sub claim is required"),
        (lambda now: {"iss": "someone-else"},
         "Client authentication with signed JWT failed: Issuer mismatch. The issuer should match the subject"),
    ],
    ids=["no-exp", "expired", "issued-too-long-ago", "issued-in-the-future", "no-iat-long-exp", "no-jti", "no-sub",
         "iss-is-not-sub"],
)
def test_an_assertion_out_of_keycloaks_rules_is_refused(
    psc: str, client_keys: ClientKeys, claims: Callable[[int], dict[str, Any]], description: str
) -> None:
    values = claims(int(time.time()))
    form = with_assertion(assertion(psc, client_keys, **values))
    if "sub" in values:
        form["client_id"] = "jwt-broker"  # without sub, the client is named by client_id
    assert refusal(token_request(psc, form)) == (400, "invalid_client", description)


def test_an_assertion_is_single_use(psc: str, client_keys: ClientKeys) -> None:
    token = assertion(psc, client_keys)
    assert authenticated(token_request(psc, with_assertion(token)))
    assert refusal(token_request(psc, with_assertion(token))) == (400, "invalid_client", "Token reuse detected")


def test_signature_key_algorithm_and_parameters_are_checked(psc: str, client_keys: ClientKeys) -> None:
    stranger = generate_private_jwk()
    unknown = assertion(psc, client_keys, key=stranger)
    assert refusal(token_request(psc, with_assertion(unknown))) == (400, "invalid_client", "Unable to load public key")
    forged = assertion(psc, client_keys, key=stranger, headers={"kid": client_keys.signing["kid"]})
    assert refusal(token_request(psc, with_assertion(forged)))[2] == (
        "Client authentication with signed JWT failed: Signature on JWT token failed validation"
    )
    hmac_signed = jwt.encode({"iss": "jwt-broker", "sub": "jwt-broker"}, "k" * 32, algorithm="HS256")
    assert refusal(token_request(psc, with_assertion(hmac_signed)))[2] == "Invalid signature algorithm"
    other_id = with_assertion(assertion(psc, client_keys), client_id="not-registered")
    assert refusal(token_request(psc, other_id))[2] == "client_id parameter does not match sub claim"
    wrong_type = {"client_assertion_type": "jwt", "client_assertion": assertion(psc, client_keys)}
    assert refusal(token_request(psc, wrong_type))[2] == (
        f"Parameter client_assertion_type has value 'jwt' but expected is '{ASSERTION_TYPE}'"
    )
    no_assertion = {"client_assertion_type": ASSERTION_TYPE, "client_id": "jwt-broker"}
    assert refusal(token_request(psc, no_assertion))[2] == "client_assertion parameter missing"


def test_the_jwks_is_cached_and_fetched_again_for_an_unknown_kid_at_most_every_10_seconds(
    local_tls: LocalTls, rotating_client_keys: ClientKeys
) -> None:
    client_keys = rotating_client_keys
    clock = Clock()
    base = "https://psc.test"
    config = psc_sim.PscSimConfig(clients(client_keys), ca_bundle=str(local_tls.bundle), clock=clock)
    app = psc_sim.create_app(base, config).test_client()

    def post(token: str) -> tuple[int, str]:
        body = {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT, **with_assertion(token)}
        response = app.post(f"{REALM}/protocol/openid-connect/token", data=body)
        return response.status_code, response.get_json().get("error_description", response.get_json()["error"])

    assert post(assertion(base, client_keys, now=clock.now)) == (400, "Code not valid")  # authenticated
    client_keys.rotate()  # the broker published a new key and signs with it
    clock.now += 5
    assert post(assertion(base, client_keys, now=clock.now)) == (400, "Unable to load public key")
    clock.now += 6
    assert post(assertion(base, client_keys, now=clock.now)) == (400, "Code not valid")
