"""Both identity-provider simulators over HTTPS for the whole session.

The TLS material comes from the session fixture ``local_tls`` (``tests/conftest.py``): a CA made in a
temporary directory and trusted by requests, MSAL and PyJWT in this process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import entra_sim
from sandbox import psc_sim
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls

REDIRECT_URI = "https://127.0.0.1:7071/callback"
ENTRA_CLIENT_ID = "sans-couture-broker"
ENTRA_SECRET = "entra-secret-for-tests"
FIC_CLIENT_ID = "sans-couture-broker-fic"
"""Authenticates only with the managed identity as a federated credential (no secret)."""
STRANGER_CLIENT_ID = "app-trusting-another-identity"
"""Trusts a federated credential whose subject is not the sandbox's managed identity."""
MANAGED_IDENTITY = entra_sim.ManagedIdentity(
    client_id="4b7d2e10-8c3f-4a95-b6d1-0e9f8a7b6c5d", principal_id="8f6e5d4c-3b2a-4190-8e7d-6c5b4a392817"
)

PSC_CLIENT_ID = "sans-couture-broker"
PSC_SECRET = "psc-secret-for-tests"
PSC_REDIRECT_URI = "https://127.0.0.1:7071/pair/callback"
PSC_POST_LOGOUT_URI = "https://127.0.0.1:7071/"


@pytest.fixture(scope="session")
def entra_url(local_tls: LocalTls) -> Iterator[str]:
    """Base URL of a running Entra simulator with the apps and managed identity above."""
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    issuer = f"{base}/{entra_sim.HOSPITAL_TENANT_ID}/v2.0"
    declared = entra_sim.declared_optional_claims()  # what the Bicep app registration declares
    config = entra_sim.EntraSimConfig(
        apps=(
            entra_sim.AppRegistration(ENTRA_CLIENT_ID, ENTRA_SECRET, (REDIRECT_URI,), (), declared),
            entra_sim.AppRegistration(
                FIC_CLIENT_ID, None, (REDIRECT_URI,), (MANAGED_IDENTITY.federated_credential(base),), declared
            ),
            entra_sim.AppRegistration(
                STRANGER_CLIENT_ID, None, (REDIRECT_URI,),
                (entra_sim.FederatedCredential(issuer, "00000000-0000-4000-8000-000000000001"),),
            ),
        ),
        managed_identity=MANAGED_IDENTITY,
    )
    server = serve("entra-sim", entra_sim.create_app(base, config), port, local_tls)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def psc_url(local_tls: LocalTls) -> Iterator[str]:
    """Base URL of a running PSC simulator with one registered client."""
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    config = psc_sim.sandbox_config(PSC_CLIENT_ID, PSC_SECRET, (PSC_REDIRECT_URI,), (PSC_POST_LOGOUT_URI,))
    server = serve("psc-sim", psc_sim.create_app(base, config), port, local_tls)
    yield server.url
    server.stop()
