"""The PSC adapter against the PSC simulator over HTTPS: JSON userinfo and signed (application/jwt) userinfo."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests

from sandbox import psc_sim
from sandbox.servers import RunningServer
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls
from sanscouture.adapters.http import UpstreamSession
from sanscouture.adapters.psc import PscAdapter
from sanscouture.errors import SignInRefused
from tests.unit.oidc.fakes import make_settings

REDIRECT = "https://broker.example/pair/callback"


@pytest.fixture(scope="module")
def psc(local_tls: LocalTls) -> Iterator[RunningServer]:
    port = free_port()
    clients = (
        psc_sim.PscClient("json-client", "json-secret", (REDIRECT,)),
        psc_sim.PscClient("jwt-client", "jwt-secret", (REDIRECT,), userinfo_signed=True),
    )
    server = serve("psc-adapter", psc_sim.create_app(f"https://127.0.0.1:{port}", psc_sim.PscSimConfig(clients)),
                   port, local_tls)
    yield server
    server.stop()


def adapter(psc: RunningServer, local_tls: LocalTls, client_id: str, secret: str) -> PscAdapter:
    settings = make_settings(
        psc_discovery_url=f"{psc.url}/auth/realms/esante-wallet/.well-known/wallet-openid-configuration",
        psc_client_id=client_id,
        psc_client_secret=secret,
    )
    return PscAdapter(settings, UpstreamSession(str(local_tls.bundle)))


def sign_in(psc_adapter: PscAdapter, persona: str = "medecin-cps") -> tuple[dict[str, object], dict[str, str]]:
    start = psc_adapter.begin(redirect_uri=REDIRECT, state="journey-state", prompt="login")
    assert parse_qs(urlsplit(start.url).query)["acr_values"] == ["eidas1"]
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
