"""The Entra adapter against the Entra simulator over HTTPS, with the credential it has in Azure.

In Azure the broker has no secret: MSAL gets a managed-identity token for ``api://AzureADTokenExchange``
and presents it as the client assertion of a federated identity credential. Entra issues that token
with the token-exchange app's id as ``aud`` (not the URI asked for); the broker only passes it on.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import msal
import pytest
import requests

from sandbox import entra_sim
from sandbox.servers import RunningServer
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.switches import switched
from sandbox.tls import LocalTls
from sanscouture.adapters.entra import EntraAdapter
from sanscouture.adapters.http import UpstreamSession
from sanscouture.errors import SignInRefused
from tests.unit.oidc.fakes import make_settings

REDIRECT = "https://broker.example/callback"
CLIENT_ID = "broker-with-managed-identity"
IDENTITY = entra_sim.SANDBOX_MANAGED_IDENTITY


@pytest.fixture(scope="module")
def entra(local_tls: LocalTls) -> Iterator[RunningServer]:
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    app = entra_sim.AppRegistration(CLIENT_ID, None, (REDIRECT,), (IDENTITY.federated_credential(base),),
                                    entra_sim.declared_optional_claims())
    config = entra_sim.EntraSimConfig(apps=(app,), managed_identity=IDENTITY)
    server = serve("entra-adapter", entra_sim.create_app(base, config), port, local_tls)
    yield server
    server.stop()


@pytest.fixture
def adapter(entra: RunningServer, local_tls: LocalTls, monkeypatch: pytest.MonkeyPatch) -> EntraAdapter:
    """The adapter as functions/_wiring.py builds it in Azure: managed identity, no secret."""
    for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{entra.url}/msi/token")  # what App Service / Functions set
    monkeypatch.setenv("IDENTITY_HEADER", entra_sim.DEFAULT_IDENTITY_HEADER)
    settings = make_settings(
        entra_authority=f"{entra.url}/organizations", entra_client_id=CLIENT_ID, entra_client_secret=None,
        entra_managed_identity_client_id=IDENTITY.client_id,
        entra_allowed_tenants=frozenset({entra_sim.HOSPITAL_TENANT_ID}),
    )
    return EntraAdapter(settings, UpstreamSession(str(local_tls.bundle)))


def authorize(
    adapter: EntraAdapter, persona: str, max_age: int | None = 4 * 3600
) -> tuple[Mapping[str, Any], dict[str, str]]:
    """The flow the journey keeps and Entra's answer at the redirect URI."""
    start = adapter.begin(redirect_uri=REDIRECT, state="journey-1", prompt=None, login_hint=persona, max_age=max_age)
    response = requests.get(start.url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:300]
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return start.flow, {name: values[0] for name, values in query.items()}


def test_the_managed_identity_assertion_redeems_the_code_whatever_audience_entra_gave_it(
    adapter: EntraAdapter, entra: RunningServer
) -> None:
    token = requests.get(f"{entra.url}/msi/token", headers={"X-IDENTITY-HEADER": entra_sim.DEFAULT_IDENTITY_HEADER},
                         params={"resource": entra_sim.AZURE_AD_TOKEN_EXCHANGE, "api-version": "2019-08-01",
                                 "client_id": IDENTITY.client_id}, timeout=10).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == entra_sim.AZURE_AD_TOKEN_EXCHANGE_APP_ID

    account = adapter.finish(*authorize(adapter, "cpx"))
    assert (account.tid, account.oid) == (entra_sim.HOSPITAL_TENANT_ID, "5b2f8c1e-3a47-4d90-8e6b-1c2d3e4f5a61")
    assert account.acrs == ("c1",)


def test_an_entra_error_is_a_refusal_that_keeps_the_aadsts_code(adapter: EntraAdapter) -> None:
    response = {"error": "interaction_required", "state": "journey-1",
                "error_description": "AADSTS50076: Due to a configuration change...\r\nTrace ID: "
                                     "5889afab-8ce9-40da-b5fb-c76b4f420000\r\nCorrelation ID: x"}
    with pytest.raises(SignInRefused) as refused:
        adapter.finish({"state": "journey-1"}, response)
    assert refused.value.reason == "entra_refused"
    assert refused.value.rp_error == "interaction_required"  # passed on to a prompt=none relying party
    assert "AADSTS50076" in refused.value.detail and "configuration change" not in refused.value.detail


def test_a_token_without_auth_time_names_the_optional_claim_to_declare(
    adapter: EntraAdapter, entra: RunningServer
) -> None:
    with switched(entra.url, optional_claims=["acrs"]), pytest.raises(SignInRefused) as refused:
        adapter.finish(*authorize(adapter, "cpx"))
    assert refused.value.reason == "entra_claim_missing" and refused.value.rp_error == "server_error"
    assert "no auth_time claim" in refused.value.detail


def test_without_max_age_msal_checks_no_auth_time_and_the_broker_still_does(
    adapter: EntraAdapter, entra: RunningServer
) -> None:
    """MSAL looks for auth_time only when max_age was sent; the broker's own check holds without it."""
    with switched(entra.url, optional_claims=["acrs"]), pytest.raises(SignInRefused) as refused:
        adapter.finish(*authorize(adapter, "cpx", max_age=None))
    assert refused.value.reason == "entra_claim_missing"
    assert "no auth_time claim" in refused.value.detail


def test_the_broker_asks_entra_only_for_an_id_token_and_keeps_no_entra_token(
    adapter: EntraAdapter, entra: RunningServer
) -> None:
    flow, response = authorize(adapter, "cpx")
    asked = requests.get(f"{entra.url}/_sim/last-authorize", timeout=10).json()
    assert asked["scope"].split() == ["openid", "profile"]  # no offline_access, no Graph permission
    adapter.finish(flow, response)
    msal_app = adapter._msal()
    assert msal_app.get_accounts() == []  # no access token, refresh token or account left in the worker
    assert list(msal_app.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN)) == []
    assert list(msal_app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)) == []
