"""The PSC adapter against the PSC simulator over HTTPS: JSON and signed (application/jwt) userinfo,
client_secret_basic and private_key_jwt towards PSC's token endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from flask import Flask
from flask import jsonify

from sandbox import psc_sim
from sandbox.servers import RunningServer
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls
from sanscouture.adapters.http import UpstreamSession
from sanscouture.adapters.keyfile import FileKeySource
from sanscouture.adapters.keyfile import ensure_key_file
from sanscouture.adapters.psc import PscAdapter
from sanscouture.errors import SignInRefused
from sanscouture.keys import KeyRing
from tests.unit.oidc.fakes import make_settings

REDIRECT = "https://broker.example/pair/callback"
REALM = "/auth/realms/esante-wallet"


@pytest.fixture(scope="module")
def key_ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    """The broker's signing keys (a file here, Key Vault in Azure)."""
    path = Path(tmp_path_factory.mktemp("keys")) / "signing-keys.json"
    ensure_key_file(path)
    return KeyRing(FileKeySource(path))


@pytest.fixture(scope="module")
def broker_jwks(local_tls: LocalTls, key_ring: KeyRing) -> Iterator[str]:
    """What the broker's /jwks publishes: ANS registers this URL as the client's JWKS URL."""
    app = Flask(__name__)
    app.add_url_rule("/jwks", "jwks", lambda: jsonify(key_ring.public_jwks()))
    server = serve("broker-jwks", app, free_port(), local_tls)
    yield f"{server.url}/jwks"
    server.stop()


@pytest.fixture(scope="module")
def psc(local_tls: LocalTls, broker_jwks: str) -> Iterator[RunningServer]:
    port = free_port()
    clients = (
        psc_sim.PscClient("json-client", "json-secret", (REDIRECT,)),
        psc_sim.PscClient("jwt-client", "jwt-secret", (REDIRECT,), userinfo_signed=True),
        psc_sim.PscClient("key-client", "", (REDIRECT,), token_endpoint_auth_method="private_key_jwt",
                          jwks_uri=broker_jwks),
    )
    config = psc_sim.PscSimConfig(clients, ca_bundle=str(local_tls.bundle))
    server = serve("psc-adapter", psc_sim.create_app(f"https://127.0.0.1:{port}", config), port, local_tls)
    yield server
    server.stop()


class RecordingSession(UpstreamSession):
    """The broker's outbound session, keeping the forms it posts (to read the client assertion)."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__(ca_bundle)
        self.posted: list[dict[str, Any]] = []

    def post(self, url: str | bytes, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:
        self.posted.append({"url": url, "data": dict(data or {}), "auth": kwargs.get("auth")})
        return super().post(url, data=data, json=json, **kwargs)


def adapter(
    psc: RunningServer, local_tls: LocalTls, client_id: str, secret: str | None, *,
    method: str = "client_secret_basic", keys: KeyRing | None = None, session: UpstreamSession | None = None,
) -> PscAdapter:
    settings = make_settings(
        psc_discovery_url=f"{psc.url}{REALM}/.well-known/wallet-openid-configuration",
        psc_client_id=client_id,
        psc_client_secret=secret,
        psc_token_auth_method=method,
    )
    return PscAdapter(settings, session or UpstreamSession(str(local_tls.bundle)), keys=keys)


def sign_in(psc_adapter: PscAdapter, persona: str = "medecin-cps") -> tuple[dict[str, object], dict[str, str]]:
    start = psc_adapter.begin(redirect_uri=REDIRECT, state="journey-state", prompt="login", max_age=0)
    query = parse_qs(urlsplit(start.url).query)
    assert (query["acr_values"], query["prompt"], query["max_age"]) == (["eidas1"], ["login"], ["0"])
    wallet = requests.get(start.url + "&" + urlencode({"login_hint": persona}), allow_redirects=False, timeout=10)
    back = {k: v[0] for k, v in parse_qs(urlsplit(wallet.headers["Location"]).query).items()}
    return dict(start.flow), back


@pytest.mark.parametrize(("client_id", "secret"), [("json-client", "json-secret"), ("jwt-client", "jwt-secret")])
def test_a_cps_sign_in_gives_the_identity_from_json_or_signed_userinfo(
    psc: RunningServer, local_tls: LocalTls, client_id: str, secret: str
) -> None:
    psc_adapter = adapter(psc, local_tls, client_id, secret)
    flow, back = sign_in(psc_adapter)
    authentication = psc_adapter.finish(flow, back)
    identity = authentication.identity
    assert (identity.subject_name_id, identity.auth_mode, authentication.acr) == ("810100000001", "CARD", "eidas1")
    assert identity.claims["SubjectRefPro"]["exercices"][0]["codeProfession"] == "10"


def test_a_signed_userinfo_loses_its_jwt_envelope_and_nothing_else(psc: RunningServer, local_tls: LocalTls) -> None:
    plain = adapter(psc, local_tls, "json-client", "json-secret")
    signed = adapter(psc, local_tls, "jwt-client", "jwt-secret")
    from_json = plain.finish(*sign_in(plain)).identity.claims
    from_jwt = signed.finish(*sign_in(signed)).identity.claims
    assert not {"iss", "aud", "exp", "iat", "nbf", "jti"} & set(from_jwt)
    assert from_jwt == from_json


def test_private_key_jwt_signs_in_with_an_assertion_of_the_brokers_signing_key(
    psc: RunningServer, local_tls: LocalTls, key_ring: KeyRing
) -> None:
    session = RecordingSession(str(local_tls.bundle))
    psc_adapter = adapter(psc, local_tls, "key-client", None, method="private_key_jwt", keys=key_ring, session=session)
    authentication = psc_adapter.finish(*sign_in(psc_adapter, "pharmacien-cps"))
    assert authentication.identity.subject_name_id == "810100000003"
    posted = session.posted[-1]
    assert posted["auth"] is None and "client_secret" not in posted["data"]
    assert posted["data"]["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = posted["data"]["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256" and header["kid"] in {k["kid"] for k in key_ring.public_jwks()["keys"]}
    claims = jwt.decode(assertion, options={"verify_signature": False})
    # RFC 7523 3 and OIDC Core 1.0 errata set 2 section 9: the audience is PSC's issuer, as a string.
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("key-client", "key-client", psc.url + REALM)
    assert claims["exp"] - claims["iat"] == 60 and len(claims["jti"]) >= 32


@pytest.mark.parametrize(
    ("client_id", "secret", "method", "status_and_error"),
    [
        ("key-client", "anything", "client_secret_basic", "HTTP 400 'invalid_client'"),
        ("json-client", None, "private_key_jwt", "HTTP 400 'invalid_client'"),
    ],
    ids=["secret-for-a-private-key-jwt-registration", "assertion-for-a-secret-registration"],
)
def test_a_method_psc_did_not_register_is_refused_not_a_crash(
    psc: RunningServer, local_tls: LocalTls, key_ring: KeyRing,
    client_id: str, secret: str | None, method: str, status_and_error: str,
) -> None:
    psc_adapter = adapter(psc, local_tls, client_id, secret, method=method, keys=key_ring)
    with pytest.raises(SignInRefused) as raised:
        psc_adapter.finish(*sign_in(psc_adapter))
    assert raised.value.reason == "psc_refused" and raised.value.detail == f"psc token: {status_and_error}"


def test_private_key_jwt_without_the_key_ring_is_a_wiring_error(psc: RunningServer, local_tls: LocalTls) -> None:
    with pytest.raises(ValueError, match="needs the broker's signing key ring"):
        adapter(psc, local_tls, "key-client", None, method="private_key_jwt")


def test_the_end_session_endpoint_comes_from_psc_discovery(psc: RunningServer, local_tls: LocalTls) -> None:
    psc_adapter = adapter(psc, local_tls, "json-client", "json-secret")
    assert psc_adapter.end_session_url() == f"{psc.url}{REALM}/protocol/openid-connect/logout"


def test_a_state_that_is_not_the_journeys_is_refused(psc: RunningServer, local_tls: LocalTls) -> None:
    psc_adapter = adapter(psc, local_tls, "json-client", "json-secret")
    flow, back = sign_in(psc_adapter)
    with pytest.raises(SignInRefused) as raised:
        psc_adapter.finish(flow, {**back, "state": "another"})
    assert raised.value.reason == "session_expired"


def test_a_wrong_client_secret_is_refused_not_a_crash(psc: RunningServer, local_tls: LocalTls) -> None:
    psc_adapter = adapter(psc, local_tls, "json-client", "not-the-secret")
    flow, back = sign_in(psc_adapter)
    with pytest.raises(SignInRefused) as raised:
        psc_adapter.finish(flow, back)
    assert raised.value.reason == "psc_refused"
