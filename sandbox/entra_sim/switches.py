"""The Entra simulator's switches: tenant configuration and workstation state a test selects.

Each is one function of :data:`SWITCHES` (see :mod:`sandbox.switches`), applied to the simulator's
:class:`~sandbox.entra_sim.model.TenantState`; ``GET /_sim/switches`` lists them with these docstrings.
"""

from __future__ import annotations

from typing import Any

from sandbox.entra_sim.model import CA_STATES
from sandbox.entra_sim.model import TenantState
from sandbox.entra_sim.model import WindowsSession
from sandbox.switches import Switchboard
from sandbox.token_faults import boolean
from sandbox.token_faults import drop_claim
from sandbox.token_faults import expired
from sandbox.token_faults import other_audience
from sandbox.token_faults import other_nonce

SWITCHES: Switchboard[TenantState] = Switchboard()

SANDBOX_CONDITIONAL_ACCESS = {"c1": "enforced"}
"""The state docs/deploy.md asks for: the broker's authentication context bound to an enabled policy."""


@SWITCHES.switch("conditional-access", default=SANDBOX_CONDITIONAL_ACCESS)
def conditional_access(tenant: TenantState, value: Any) -> None:
    """Conditional Access per authentication context, e.g. {"c1": "enforced"}. "enforced": a policy
    requiring the phishing-resistant strength is enabled (a password-only sign-in is stepped up, never
    given the context); "report-only": the policy only reports; "none": no policy is bound. In the
    last two, Entra issues the requested context to every sign-in. A context not listed has no policy."""
    if not isinstance(value, dict):
        raise ValueError("a JSON object {context: state}")
    for context, state in value.items():
        if state not in CA_STATES:
            raise ValueError(f"{context}: {state!r} is not one of {', '.join(CA_STATES)}")
    tenant.conditional_access = dict(value)


@SWITCHES.switch("optional-claims", default=None)
def optional_claims(tenant: TenantState, value: Any) -> None:
    """The ID-token optional claims every app registration declares, e.g. ["auth_time", "acrs"];
    null: what each registration declares (in the sandbox: infra/bicep/entra-optional-claims.json,
    the file the Bicep app registration loads). Entra emits auth_time only when it is declared."""
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise ValueError("a JSON list of claim names, or null")
    tenant.optional_claims_override = None if value is None else frozenset(value)


@SWITCHES.switch("windows-session", default=None)
def windows_session(tenant: TenantState, value: Any) -> None:
    """The Windows session of this machine: a persona id whose Windows logon (Windows Hello,
    smart card) gives the browser a Primary Refresh Token, so Entra signs it in without a page;
    {"persona": id, "logon_age": seconds} sets how long ago the logon was (default: the persona's
    windows_logon_age, 6 hours for whfb-sso). null: no Windows session."""
    if value is None:
        tenant.windows_session = None
        return
    persona_id, age = (value, None) if isinstance(value, str) else _session_fields(value)
    persona = next((p for p in tenant.personas if p.id == persona_id), None)
    if persona is None or not persona.sso:
        raise ValueError(f"{persona_id!r} is not a persona with Windows SSO")
    logon_age = persona.windows_logon_age if age is None else age
    tenant.windows_session = WindowsSession(persona.id, int(tenant.now()) - logon_age)


def _session_fields(value: Any) -> tuple[str, int | None]:
    if not isinstance(value, dict) or not isinstance(value.get("persona"), str):
        raise ValueError('a persona id, or {"persona": id, "logon_age": seconds}')
    age = value.get("logon_age")
    if age is not None and (not isinstance(age, int) or age < 0):
        raise ValueError("logon_age must be a non-negative number of seconds")
    return value["persona"], age


@SWITCHES.switch("clock-offset", default=0)
def clock_offset(tenant: TenantState, value: Any) -> None:
    """Seconds added to Entra's clock (auth_time, iat, exp, code lifetimes): the time that passed
    between two sign-ins, so a test needs no sleep to see a newer auth_time. 0: the machine's clock."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("a whole number of seconds")
    tenant.clock_offset = value


# -- ID-token faults: what the broker must refuse (OIDC Core 3.1.3.7; sandbox/token_faults.py) -------
# MSAL 1.38+ verifies neither the signature nor iss, aud or exp of the ID token (msal/oauth2cli/oidc.py:
# "MSAL does not validate the ID token"); it checks only the nonce and, with max_age, auth_time.

OTHER_APP_ID = "5d3e2b1a-7c4f-4e8d-9a6b-0f1e2d3c4b5a"
"""Another application registered in the hospital's tenant (fictitious)."""


@SWITCHES.switch("id-token-wrong-signature", default=False)
def id_token_wrong_signature(tenant: TenantState, value: Any) -> None:
    """ID tokens signed with a key that is not in the tenant's JWKS, under the kid of a genuine key: a
    forged or tampered token (claims edited after signing). Only the signature check catches it."""
    tenant.id_token_faults.signing_fault("wrong-key", boolean(value, "id-token-wrong-signature"))


@SWITCHES.switch("id-token-alg-none", default=False)
def id_token_alg_none(tenant: TenantState, value: Any) -> None:
    """Unsigned ID tokens, header alg "none" (RFC 7519 6.1): the "none" attack, accepted by any relying
    party that lets the token's header choose how it is verified (RFC 8725 2.1)."""
    tenant.id_token_faults.signing_fault("alg-none", boolean(value, "id-token-alg-none"))


@SWITCHES.switch("id-token-hs256-public-key", default=False)
def id_token_hs256_public_key(tenant: TenantState, value: Any) -> None:
    """ID tokens with alg HS256 whose HMAC secret is the tenant's public RSA key (its PEM, which anyone can
    fetch from the JWKS): the algorithm-confusion attack of RFC 8725 2.1 and 3.1."""
    tenant.id_token_faults.signing_fault("hs256-public-key", boolean(value, "id-token-hs256-public-key"))


@SWITCHES.switch("id-token-foreign-issuer", default=False)
def id_token_foreign_issuer(tenant: TenantState, value: Any) -> None:
    """ID tokens whose iss is the v1.0 endpoint's https://sts.windows.net/{tid}/
    (MicrosoftDocs/entra-docs, docs/identity-platform/id-token-claims-reference.md) instead of the v2.0
    issuer the broker's discovery names, signed with the tenant's keys: a token from another issuer
    than the one configured, which only the iss check refuses."""
    tenant.id_token_faults.claims_fault("foreign-issuer", _v1_issuer, boolean(value, "id-token-foreign-issuer"))


def _v1_issuer(claims: dict[str, Any]) -> None:
    claims["iss"] = f"https://sts.windows.net/{claims['tid']}/"


@SWITCHES.switch("id-token-wrong-audience", default=False)
def id_token_wrong_audience(tenant: TenantState, value: Any) -> None:
    """ID tokens issued to another application of the tenant (aud = its client id): a token obtained
    by, or for, another app and injected into the broker's sign-in (token substitution)."""
    fault = other_audience(OTHER_APP_ID)
    tenant.id_token_faults.claims_fault("wrong-audience", fault, boolean(value, "id-token-wrong-audience"))


@SWITCHES.switch("id-token-wrong-nonce", default=False)
def id_token_wrong_nonce(tenant: TenantState, value: Any) -> None:
    """ID tokens carrying the nonce of another authorization request: a token replayed or injected from
    another sign-in (OIDC Core 15.5.2). MSAL refuses it before the broker sees the token."""
    tenant.id_token_faults.claims_fault("wrong-nonce", other_nonce, boolean(value, "id-token-wrong-nonce"))


@SWITCHES.switch("id-token-no-nonce", default=False)
def id_token_no_nonce(tenant: TenantState, value: Any) -> None:
    """ID tokens without the nonce that was sent: a token that nothing binds to this sign-in (OIDC Core
    3.1.3.7 step 11), e.g. one obtained without the broker's request. MSAL refuses it before the broker
    sees the token."""
    fault = drop_claim("nonce")
    tenant.id_token_faults.claims_fault("no-nonce", fault, boolean(value, "id-token-no-nonce"))


@SWITCHES.switch("id-token-expired", default=False)
def id_token_expired(tenant: TenantState, value: Any) -> None:
    """ID tokens that expired 10 minutes ago (iat, nbf and exp moved back one lifetime and 600 s): an old
    token replayed, or a provider whose clock is wrong."""
    tenant.id_token_faults.claims_fault("expired", expired, boolean(value, "id-token-expired"))


@SWITCHES.switch("id-token-no-auth-time", default=False)
def id_token_no_auth_time(tenant: TenantState, value: Any) -> None:
    """ID tokens without auth_time although the registration declares it: nothing then says how old the
    authentication is (the registration-side cause is the optional-claims switch). MSAL refuses it
    first, since the broker always sends max_age."""
    fault = drop_claim("auth_time")
    tenant.id_token_faults.claims_fault("no-auth-time", fault, boolean(value, "id-token-no-auth-time"))
