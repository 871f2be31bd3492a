"""Entra ID through MSAL's auth code flow, with the broker's own ID token verification.

MSAL builds the authorization URL (PKCE S256, nonce, state) and redeems the code; the flow dict it
returns is sealed in the journey cookie, never in a URL. MSAL 1.38+ does not verify the ID token, so
:meth:`EntraAdapter.finish` verifies it against Entra's JWKS (key rollover handled by
:class:`JwksCache`), with the tenant-specific issuer of the token's ``tid``.

Client authentication to Entra, selected by settings: a client secret in the sandbox, or in Azure a
client assertion obtained from the Function App's user-assigned managed identity, which the app
registration trusts as a federated identity credential (no secret anywhere).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import msal
import requests

from sanscouture.adapters.upstream_oidc import JWKS_TTL
from sanscouture.adapters.upstream_oidc import CachedDocument
from sanscouture.adapters.upstream_oidc import JwksCache
from sanscouture.adapters.upstream_oidc import verify_id_token
from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.models import EntraAccount
from sanscouture.models import UpstreamStart
from sanscouture.ports import Clock
from sanscouture.settings import Settings

log = logging.getLogger("sanscouture.entra")

# The broker asks Entra for the default query response mode on purpose: the journey cookie is
# SameSite=Lax, which a cross-site form_post would not carry. MSAL warns about it on every call.
warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended", category=UserWarning)

# The broker needs Entra's ID token only: no resource scope (MSAL adds openid and profile, which give
# the ID token its oid, tid and name), and offline_access excluded (MSAL would add it): no Entra
# refresh token exists for a broker sign-in. The app registration consents to exactly these two.
SCOPES: list[str] = []
EXCLUDED_SCOPES = ["offline_access"]
# Entra errors that mean "a person must interact", passed on to a prompt=none relying party.
_INTERACTION_ERRORS = {"login_required", "interaction_required", "consent_required"}
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a secret


class _KeepNothing(msal.TokenCache):
    """MSAL puts every token it obtains in the application's cache, which lives as long as the worker
    and would hold the Entra tokens of every professional signed in through it. The broker reads the
    ID token once, in :meth:`EntraAdapter.finish`, and keeps no Entra token at all."""

    def add(self, event: dict[str, Any], now: Any = None) -> None:
        return None


def claims_request(contexts: tuple[str, ...]) -> str | None:
    """The ``claims`` parameter asking for authentication contexts, in the documented form.

    One context: ``{"id_token":{"acrs":{"essential":true,"value":"c1"}}}``, the form Microsoft's web-app
    sample sends to Entra for an ID token (Azure-Samples/ms-identity-dotnetcore-ca-auth-context-app,
    TodoListController.CheckForRequiredAuthContext). Microsoft's developer guide to Conditional Access
    authentication context and its claims-challenge page (MicrosoftDocs/entra-docs,
    docs/identity-platform/claims-challenge.md) show the same ``acrs`` request under ``access_token``
    only, for a web API's access token. Several: OIDC Core 5.5.1's ``values`` array, the form
    Microsoft's own services send in their claims challenges.
    """
    if not contexts:
        return None
    acrs: dict[str, object] = {"essential": True}
    if len(contexts) == 1:
        acrs["value"] = contexts[0]
    else:
        acrs["values"] = list(contexts)
    return json.dumps({"id_token": {"acrs": acrs}}, separators=(",", ":"))


def _aadsts(response: Mapping[str, str]) -> str:
    """The AADSTS code and trace id of an Entra error, for the log (an administrator looks them up in
    Entra's sign-in logs); the rest of the description may name the user and is not logged."""
    description = response.get("error_description", "")
    code = re.match(r"AADSTS(\d{4,7})\b", description)
    trace = re.search(r"Trace ID: ([0-9a-fA-F-]{36})", description)
    parts = [f"AADSTS{code.group(1)}" if code else "", f"trace {trace.group(1)}" if trace else ""]
    return " ".join(part for part in parts if part)


def _missing_optional_claim(name: str) -> SignInRefused:
    """Entra emits auth_time only when the app registration declares it as an optional claim
    (optional-claims-reference.md): without it every sign-in is refused (fail closed). The acrs opt-in
    only lets Conditional Access add contexts opportunistically; the contexts the broker asks for
    explicitly are issued without it ("the only way to get an ACRS in the token will be to explicitly
    ask for it"), and a missing required context is refused by sanscouture/entra_policy.py. Both are
    declared in infra/bicep/entra-optional-claims.json, read by the Bicep."""
    return SignInRefused(
        "entra_claim_missing",
        detail=f"entra: the ID token has no {name} claim: declare the optional claim {name} of the ID token "
        "in the app registration (infra/bicep/entra-optional-claims.json)",
        rp_error="server_error",
    )


def _refusal_for_msal_check(message: str) -> SignInRefused:
    """What MSAL's own ID token checks mean (msal/oauth2cli/oidc.py): its messages quote the
    token's claims, so only the kind of failure is kept."""
    if "should contain auth_time" in message:
        return _missing_optional_claim("auth_time")
    if "max_age" in message:
        return SignInRefused("auth_too_old", detail="entra: auth_time older than the max_age sent")
    return SignInRefused("upstream_token_invalid", detail="entra: MSAL refused the ID token (nonce)")


class EntraAdapter:
    """Implements :class:`sanscouture.ports.EntraSignIn`."""

    def __init__(self, settings: Settings, session: requests.Session, clock: Clock = time.time) -> None:
        self._settings = settings
        self._clock = clock  # the broker's: tokens are checked against the time its rules use
        self._session = session
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        self._jwks: JwksCache | None = None
        # Fetched on first use only (no network at construction: cold start).
        self._metadata = CachedDocument(
            session, f"{settings.entra_authority}/v2.0/.well-known/openid-configuration", "entra discovery", JWKS_TTL
        )

    def begin(
        self,
        *,
        redirect_uri: str,
        state: str,
        prompt: str | None,
        login_hint: str | None,
        max_age: int | None,
    ) -> UpstreamStart:
        try:
            flow = self._msal().initiate_auth_code_flow(
                SCOPES,
                redirect_uri=redirect_uri,
                state=state,
                prompt=prompt,
                login_hint=login_hint,
                max_age=max_age,
                claims_challenge=self._claims_challenge(),
            )
        except (requests.RequestException, ValueError) as error:
            raise UpstreamUnavailableError(detail=f"entra: {type(error).__name__}") from error
        # The URL goes to the browser; the rest travels sealed in the journey's cookie, without it.
        return UpstreamStart(url=flow["auth_uri"], flow={k: v for k, v in flow.items() if k != "auth_uri"})

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> EntraAccount:
        if "error" in response:
            error = response.get("error", "")
            raise SignInRefused(
                "entra_refused",
                detail=f"entra returned {error[:64]!r} {_aadsts(response)}".rstrip(),
                rp_error=error if error in _INTERACTION_ERRORS else "access_denied",
            )
        try:
            result = self._msal().acquire_token_by_auth_code_flow(dict(flow), dict(response), SCOPES)
        except ValueError as error:  # state mismatch or a flow that does not fit the response
            raise SignInRefused("session_expired", detail="entra: flow/state mismatch") from error
        except RuntimeError as error:  # nonce, or max_age (its message quotes the claims: never logged)
            raise _refusal_for_msal_check(str(error)) from error
        except requests.RequestException as error:
            raise UpstreamUnavailableError(detail=f"entra token: {type(error).__name__}") from error
        if "error" in result:
            raise SignInRefused("entra_refused", detail=f"entra token error {str(result['error'])[:64]!r}")
        id_token = result.get("id_token")
        if not id_token:
            raise SignInRefused("upstream_token_invalid", detail="entra: no id_token")
        claims = verify_id_token(
            id_token,
            self._keys(),
            audience=self._settings.entra_client_id,
            issuer=self._issuer_for,
            nonce=hashlib.sha256(flow["nonce"].encode()).hexdigest(),  # MSAL sends the nonce's hash
            provider="entra",
            now=self._clock(),
        )
        for name in ("tid", "oid"):
            if not isinstance(claims.get(name), str) or not claims[name]:
                raise SignInRefused("upstream_token_invalid", detail=f"entra: no {name} claim")
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int):
            raise _missing_optional_claim("auth_time")
        acrs = claims.get("acrs") or ()
        return EntraAccount(
            tid=claims["tid"].lower(),
            oid=claims["oid"].lower(),
            auth_time=auth_time,
            name=str(claims.get("name") or ""),
            preferred_username=str(claims.get("preferred_username") or ""),
            acrs=tuple(str(value) for value in acrs) if isinstance(acrs, list) else (),
        )

    def probe(self) -> None:
        """For /health: the authority's metadata answers."""
        self._metadata.get()

    # -- internals ---------------------------------------------------------------------------

    def _claims_challenge(self) -> str | None:
        """Ask for the configured authentication contexts in the ID token (Entra ``acrs``)."""
        return claims_request(self._settings.entra_required_acrs)

    def _issuer_for(self, claims: dict[str, Any]) -> str:
        """Entra's issuer is tenant-specific; discovery gives a template for multi-tenant authorities."""
        template = str(self._metadata.get().get("issuer", ""))
        return template.replace("{tenantid}", str(claims.get("tid", "")))

    def _keys(self) -> JwksCache:
        with self._lock:
            if self._jwks is None:
                jwks_uri = self._metadata.get()["jwks_uri"]
                self._jwks = JwksCache(CachedDocument(self._session, jwks_uri, "entra jwks", JWKS_TTL))
            return self._jwks

    def _msal(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                try:
                    self._app = msal.ConfidentialClientApplication(
                        self._settings.entra_client_id,
                        client_credential=self._credential(),
                        authority=self._settings.entra_authority,
                        # The authority is configured, not guessed: skip the instance discovery call.
                        instance_discovery=False,
                        http_client=self._session,
                        token_cache=_KeepNothing(),
                        exclude_scopes=EXCLUDED_SCOPES,
                    )
                except (requests.RequestException, ValueError) as error:
                    raise UpstreamUnavailableError(detail=f"entra metadata: {type(error).__name__}") from error
            return self._app

    def _credential(self) -> Any:
        if self._settings.entra_client_secret:
            return self._settings.entra_client_secret
        managed_identity = msal.ManagedIdentityClient(
            msal.UserAssignedManagedIdentity(client_id=self._settings.entra_managed_identity_client_id),
            http_client=self._session,
        )

        def assertion() -> str:
            # MSAL caches the managed identity token; called lazily for each token request.
            result = managed_identity.acquire_token_for_client(resource=TOKEN_EXCHANGE_AUDIENCE)
            if "access_token" not in result:
                raise UpstreamUnavailableError(detail=f"managed identity: {result.get('error', 'no token')}")
            return str(result["access_token"])

        return {"client_assertion": assertion}
