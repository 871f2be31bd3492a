"""Microsoft Entra ID simulator for the sandbox: v2.0 endpoints, personas, managed identity."""

from sandbox.entra_sim.app import create_app
from sandbox.entra_sim.model import AZURE_AD_TOKEN_EXCHANGE
from sandbox.entra_sim.model import AZURE_AD_TOKEN_EXCHANGE_APP_ID
from sandbox.entra_sim.model import DEFAULT_IDENTITY_HEADER
from sandbox.entra_sim.model import SANDBOX_MANAGED_IDENTITY
from sandbox.entra_sim.model import AppRegistration
from sandbox.entra_sim.model import EntraSimConfig
from sandbox.entra_sim.model import FederatedCredential
from sandbox.entra_sim.model import ManagedIdentity
from sandbox.entra_sim.model import declared_optional_claims
from sandbox.entra_sim.model import sandbox_config
from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID
from sandbox.entra_sim.personas import OTHER_TENANT_ID
from sandbox.entra_sim.personas import PERSONAS
from sandbox.entra_sim.personas import EntraPersona

__all__ = [
    "AZURE_AD_TOKEN_EXCHANGE",
    "AZURE_AD_TOKEN_EXCHANGE_APP_ID",
    "DEFAULT_IDENTITY_HEADER",
    "HOSPITAL_TENANT_ID",
    "OTHER_TENANT_ID",
    "PERSONAS",
    "SANDBOX_MANAGED_IDENTITY",
    "AppRegistration",
    "EntraPersona",
    "EntraSimConfig",
    "FederatedCredential",
    "ManagedIdentity",
    "create_app",
    "declared_optional_claims",
    "sandbox_config",
]
