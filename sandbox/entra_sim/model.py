"""The Entra simulator's configuration, parsed authorize requests, errors and in-memory state."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Generic
from typing import NamedTuple
from typing import TypeVar
from urllib.parse import urlencode
from urllib.parse import urlsplit

from flask import Response

from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID
from sandbox.entra_sim.personas import PERSONAS
from sandbox.entra_sim.personas import TENANT_DOMAINS
from sandbox.entra_sim.personas import EntraPersona
from sandbox.token_faults import IdTokenFaults

AZURE_AD_TOKEN_EXCHANGE = "api://AzureADTokenExchange"
"""The resource a managed identity asks a token for, to use it as a federated credential's assertion.
A federated identity credential must name this URI as its audience (AADSTS700214 otherwise)."""

AZURE_AD_TOKEN_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
"""The ``aud`` Entra actually puts in that token: the application id of the "AAD Token Exchange
Endpoint" first-party app, not the URI that was asked for (v2.0 tokens carry the app id). Observed
in public material, e.g. the decoded tokens in Azure DevOps workload-identity and HashiCorp Vault
write-ups; Entra matches it against a credential's ``api://AzureADTokenExchange`` itself."""

OPTIONAL_CLAIMS_FILE = Path(__file__).resolve().parents[2] / "infra" / "bicep" / "entra-optional-claims.json"
"""The optional claims of the broker's app registration: the file infra/bicep/modules/entra-app.bicep
loads with loadJsonContent, so the sandbox's Entra declares exactly what the deployed one does."""

DEFAULT_IDENTITY_HEADER = "sandbox-identity-header"
"""What the sim expects in ``X-IDENTITY-HEADER``; set the same value in ``IDENTITY_HEADER``."""

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_PROMPTS = ("", "login", "none", "select_account", "consent")


class FederatedCredential(NamedTuple):
    """A federated identity credential of an app registration (a plain triple works too)."""

    issuer: str
    subject: str
    audience: str = AZURE_AD_TOKEN_EXCHANGE


@dataclass(frozen=True)
class AppRegistration:
    """An application registered in the simulated directory (multi-tenant, consented everywhere)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uris: tuple[str, ...] = ()
    federated_credentials: tuple[FederatedCredential, ...] = ()
    # optionalClaims.idToken of the manifest: a new registration declares none (Entra's default).
    optional_id_token_claims: frozenset[str] = frozenset()


def declared_optional_claims(path: Path = OPTIONAL_CLAIMS_FILE) -> frozenset[str]:
    """The ID-token optional claims an ``optionalClaims`` JSON file declares (Graph application shape)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    return frozenset(str(claim["name"]) for claim in document.get("idToken", []))


@dataclass(frozen=True)
class ManagedIdentity:
    """The user-assigned managed identity served by ``/msi/token``."""

    client_id: str
    principal_id: str
    tenant: str = HOSPITAL_TENANT_ID

    def federated_credential(self, base_url: str) -> FederatedCredential:
        """The credential to add to an app so that this identity's tokens authenticate it."""
        return FederatedCredential(f"{base_url.rstrip('/')}/{self.tenant}/v2.0", self.principal_id)


@dataclass(frozen=True)
class EntraSimConfig:
    """Everything the simulator knows: apps, the managed identity, the users."""

    apps: tuple[AppRegistration, ...]
    managed_identity: ManagedIdentity | None = None
    identity_header: str = field(default=DEFAULT_IDENTITY_HEADER, repr=False)
    personas: tuple[EntraPersona, ...] = PERSONAS


SANDBOX_MANAGED_IDENTITY = ManagedIdentity(
    client_id="7e3b1c52-94d0-4f6a-b8e1-2c5d9a0f4b67", principal_id="d1c4e8a2-5f7b-4c39-9e06-8a2b3c4d5e6f"
)
"""The Function App's user-assigned identity, as the sandbox simulates it."""


def sandbox_config(
    client_id: str,
    client_secret: str | None,
    redirect_uris: tuple[str, ...],
    *,
    base_url: str | None = None,
    managed_identity: ManagedIdentity = SANDBOX_MANAGED_IDENTITY,
) -> EntraSimConfig:
    """The broker's app registration (with the optional claims the Bicep declares) and the default personas.

    With ``base_url`` the app also trusts ``managed_identity`` as a federated credential, as the
    Bicep deployment sets it up in Azure.
    """
    credentials = (managed_identity.federated_credential(base_url),) if base_url else ()
    app = AppRegistration(client_id, client_secret, tuple(redirect_uris), credentials, declared_optional_claims())
    return EntraSimConfig(apps=(app,), managed_identity=managed_identity)


@dataclass(frozen=True)
class AuthRequest:
    """A validated authorize request, kept while the user chooses and inside the code."""

    tenant: str
    client_id: str
    redirect_uri: str
    response_mode: str
    state: str
    nonce: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    acrs: tuple[str, ...]


@dataclass(frozen=True)
class Authentication:
    """One sign-in: who, when (``auth_time``) and the Entra session id (``sid``)."""

    persona_id: str
    auth_time: int
    sid: str


class SimError(Exception):
    """An OAuth error with an AADSTS code, sent to the redirect_uri or as a token error body."""

    def __init__(self, error: str, code: int, message: str, status: int = 400, subcode: str = "") -> None:
        super().__init__(f"{error}: AADSTS{code}")
        self.error, self.code, self.message, self.status, self.subcode = error, code, message, status, subcode
        self.trace_id, self.correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        self.timestamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%SZ}"

    @property
    def description(self) -> str:
        # Entra appends trace and correlation ids to every description.
        return (f"AADSTS{self.code}: {self.message}\r\nTrace ID: {self.trace_id}\r\n"
                f"Correlation ID: {self.correlation_id}\r\nTimestamp: {self.timestamp}")

    @property
    def error_uri(self) -> str:
        return f"https://login.microsoftonline.com/error?code={self.code}"

    def redirect_params(self, state: str) -> dict[str, str]:
        """An authorize error sent back to the redirect_uri (v2-protocols-oidc.md "Error response")."""
        params = {"error": self.error, "error_description": self.description, "error_uri": self.error_uri}
        if self.subcode:  # "cancel" when the user backs out; MSAL maps it to user_cancelled
            params["error_subcode"] = self.subcode
        return {**params, "state": state} if state else params

    def token_response(self) -> Response:
        return token_error(self.status, self.error, self.code, self.message)


def token_error(status: int, error: str, code: int, message: str) -> Response:
    """Entra's JSON error body: RFC 6749 5.2 plus ``error_codes``, ``timestamp``, ``trace_id``,
    ``correlation_id`` and ``error_uri`` (the shape quoted in MSAL.NET issue #3017 and others)."""
    exc = SimError(error, code, message, status)
    body = {"error": error, "error_description": exc.description, "error_codes": [code],
            "timestamp": exc.timestamp, "trace_id": exc.trace_id, "correlation_id": exc.correlation_id,
            "error_uri": exc.error_uri}
    return Response(json.dumps(body), status=status, content_type="application/json",
                    headers={"Cache-Control": "no-store"})


def redirect_to(uri: str, params: dict[str, str]) -> Response:
    """A bodiless 302 to ``uri`` with ``params`` added to its query (no HTML, not even a stub)."""
    separator = "&" if urlsplit(uri).query else "?"
    response = Response(status=302, headers={"Location": f"{uri}{separator}{urlencode(params)}" if params else uri})
    del response.headers["Content-Type"]
    return response


def resolve_tenant(tenant: str, config: EntraSimConfig) -> str | None:
    """``organizations``/``common`` as is, a known tenant GUID, or the GUID of a verified domain."""
    if tenant in ("organizations", "common"):
        return tenant
    known = {p.tid for p in config.personas} | set(TENANT_DOMAINS.values())
    if config.managed_identity is not None:
        known.add(config.managed_identity.tenant)
    lowered = tenant.lower()
    if _GUID.match(lowered) and lowered in known:
        return lowered
    return TENANT_DOMAINS.get(lowered)


def discovery_document(base: str, tenant: str, tid: str) -> dict[str, object]:
    """OpenID configuration of ``/{tenant}/v2.0``: Entra's shape, limited to what the sim implements."""
    multi = tenant in ("organizations", "common")
    path = f"{base}/{tenant if multi else tid}"
    return {
        # Multi-tenant authorities publish a templated issuer; tokens carry the tenant-specific one.
        "issuer": f"{base}/{{tenantid}}/v2.0" if multi else f"{base}/{tid}/v2.0",
        "authorization_endpoint": f"{path}/oauth2/v2.0/authorize",
        "token_endpoint": f"{path}/oauth2/v2.0/token",
        "jwks_uri": f"{path}/discovery/v2.0/keys",
        "end_session_endpoint": f"{path}/oauth2/v2.0/logout",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["pairwise"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["plain", "S256"],
        "claims_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "nbf", "auth_time", "acrs", "nonce",
            "preferred_username", "name", "tid", "oid", "sid", "uti", "ver",
        ],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "sandbox.local",
    }


def parse_authorize(tenant: str, params: dict[str, str]) -> tuple[AuthRequest, str, int | None]:
    """Check what can go back to the redirect_uri; return the request, ``prompt`` and ``max_age``."""
    if params.get("response_type") != "code":
        raise SimError("unsupported_response_type", 700054,
                       f"response_type '{params.get('response_type', '')}' is not enabled for the application.")
    if params.get("response_mode", "query") not in ("query", "form_post"):
        raise SimError("invalid_request", 900144, "The simulator supports response_mode query and form_post.")
    challenge = params.get("code_challenge", "")
    method = params.get("code_challenge_method", "") or ("plain" if challenge else "")
    if method not in ("", "plain", "S256"):
        raise SimError("invalid_request", 501491, "Invalid code_challenge_method, use S256 or plain.")
    prompt = params.get("prompt", "")
    if prompt not in _PROMPTS:
        raise SimError("invalid_request", 90023, f"Invalid prompt value '{prompt}'.")
    max_age: int | None = None
    if params.get("max_age", "") != "":
        if not params["max_age"].isdigit():
            raise SimError("invalid_request", 90100, "max_age must be a non-negative integer.")
        max_age = int(params["max_age"])
    return (
        AuthRequest(
            tenant=tenant,
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            response_mode=params.get("response_mode") or "query",
            state=params.get("state", ""),
            nonce=params.get("nonce", ""),
            scope=params.get("scope", ""),
            code_challenge=challenge,
            code_challenge_method=method,
            acrs=_requested_acrs(params.get("claims", "")),
        ),
        prompt,
        max_age,
    )


def _requested_acrs(claims: str) -> tuple[str, ...]:
    """The authentication contexts asked for in ``claims``, in the documented forms only.

    Microsoft's developer guide for Conditional Access authentication context and its claims
    challenge page (MicrosoftDocs/entra-docs, docs/identity-platform/
    developer-guide-conditional-access-authentication-context.md and claims-challenge.md) show
    ``{"access_token":{"acrs":{"essential":true,"value":"c1"}}}``; several contexts use the OIDC Core
    5.5.1 ``values`` array, as Microsoft's own services send it (``{"acrs":{"essential":true,
    "values":["p1"]}}`` in Azure Resource Manager's challenges). Either ``id_token`` or
    ``access_token``. Any other shape (``acrs`` as a list, ``value`` as a list, ``essential``
    missing or false, a context id that is not c1..c99) asks for nothing, so the token comes back
    without ``acrs``, as it would from Entra.
    """
    if not claims:
        return ()
    try:
        parsed = json.loads(claims)
    except ValueError as exc:
        raise SimError("invalid_request", 90014, "The claims parameter is not valid JSON.") from exc
    if not isinstance(parsed, dict):
        raise SimError("invalid_request", 90014, "The claims parameter must be a JSON object.")
    values: list[str] = []
    for target in ("id_token", "access_token"):
        members = parsed.get(target)
        acrs = members.get("acrs") if isinstance(members, dict) else None
        for value in _documented_acrs_values(acrs):
            if value not in values:
                values.append(value)
    return tuple(values)


_CONTEXT_ID = re.compile(r"^c([1-9]|[1-9][0-9])$")


def _documented_acrs_values(acrs: object) -> list[str]:
    if not isinstance(acrs, dict) or acrs.get("essential") is not True:
        return []
    if "value" in acrs:
        found: object = [acrs["value"]] if isinstance(acrs["value"], str) else []
    else:
        found = acrs.get("values")
    if not isinstance(found, list) or not all(isinstance(v, str) and _CONTEXT_ID.match(v) for v in found):
        return []
    return list(found)


# -- the tenant's configuration, as switches change it -------------------------------------------

CA_STATES = ("enforced", "report-only", "none")
"""Conditional Access on an authentication context: a policy ``enabled``, a policy in report-only
mode (``enabledForReportingButNotEnforced``), or no policy bound to it."""


@dataclass(frozen=True)
class WindowsSession:
    """The Windows session of the machine the browser runs on: its Primary Refresh Token signs the
    browser in (PRT SSO) with ``auth_time`` = the primary authentication, however old."""

    persona_id: str
    auth_time: int
    sid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class TenantState:
    """What an administrator or a workstation changes in the simulated tenant (see switches.py)."""

    personas: tuple[EntraPersona, ...] = PERSONAS
    conditional_access: dict[str, str] = field(default_factory=dict)
    optional_claims_override: frozenset[str] | None = None
    windows_session: WindowsSession | None = None
    clock_offset: int = 0
    id_token_faults: IdTokenFaults = field(default_factory=IdTokenFaults)

    def now(self) -> float:
        """Entra's clock: the machine's, moved by the clock-offset switch."""
        return time.time() + self.clock_offset

    def optional_claims(self, app: AppRegistration) -> frozenset[str]:
        """The ID-token optional claims ``app`` declares (a switch may override the registration)."""
        if self.optional_claims_override is not None:
            return self.optional_claims_override
        return app.optional_id_token_claims

    def granted_contexts(self, requested: tuple[str, ...], persona: EntraPersona) -> tuple[str, ...] | None:
        """The contexts Conditional Access adds to the token, or None when a policy blocks it.

        The guide's table ("Summary table for expected behavior when ACRS are explicitly
        requested"): a requested context is issued when its policy is satisfied, AND when no policy
        is configured for it. A report-only policy is evaluated but never enforced, so it does not
        stop the issuance either. Only an enforced policy that the sign-in does not satisfy holds
        the token back: Entra then asks for a stronger method (step-up) instead.
        """
        for value in requested:
            if self.conditional_access.get(value, "none") == "enforced" and not persona.compliant:
                return None
        return requested

    def opportunistic_contexts(self, persona: EntraPersona) -> tuple[str, ...]:
        """With the ``acrs`` optional claim, Entra adds the contexts whose enforced policies the
        sign-in already satisfies ("Implicit auth context satisfaction by opportunistic evaluation")."""
        if not persona.compliant:
            return ()
        return tuple(sorted(v for v, state in self.conditional_access.items() if state == "enforced"))


T = TypeVar("T")


class Store(Generic[T]):
    """The simulator's memory: codes (single use), refresh tokens, Windows sessions, pending logins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, T] = {}
        self._redeemed: set[str] = set()
        self._pending: dict[str, AuthRequest] = {}
        self.refresh_tokens: dict[str, T] = {}
        self.sessions: dict[str, Authentication] = {}
        self.last_authorize: dict[str, str] | None = None

    def remember_authorize(self, params: dict[str, str]) -> None:
        self.last_authorize = dict(params)

    def put_code(self, code: str, grant: T) -> None:
        with self._lock:
            self._codes[code] = grant

    def pop_code(self, code: str) -> tuple[T | None, bool]:
        """The grant of ``code`` exactly once; the flag says a miss is a replay."""
        with self._lock:
            grant = self._codes.pop(code, None)
            if grant is not None:
                self._redeemed.add(code)
                return grant, False
            return None, code in self._redeemed

    def add_pending(self, req: AuthRequest) -> str:
        request_id = secrets.token_urlsafe(24)
        with self._lock:
            self._pending[request_id] = req
        return request_id

    def pop_pending(self, request_id: str) -> AuthRequest | None:
        with self._lock:
            return self._pending.pop(request_id, None)
