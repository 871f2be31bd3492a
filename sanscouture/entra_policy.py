"""The broker's rules for an Entra authentication (docs/design.md "/callback"); one rule per function.

Signature, issuer, audience and nonce are verified by the adapter; these rules decide whether a
genuine authentication is acceptable for a health professional's sign-in.
"""

from __future__ import annotations

from sanscouture.errors import SignInRefused
from sanscouture.models import AuthorizationRequest
from sanscouture.models import EntraAccount
from sanscouture.settings import Settings

# Clock skew tolerated between Entra and the broker.
SKEW = 120


def check_tenant_allowed(account: EntraAccount, settings: Settings) -> None:
    """Only the tenants of BROKER_ENTRA_ALLOWED_TENANTS (as PSC's ANS whitelist of ES tenants)."""
    if account.tid not in settings.entra_allowed_tenants:
        raise SignInRefused("tenant_not_allowed", detail=f"tenant {account.tid} is not allowed")


def check_auth_fresh(account: EntraAccount, settings: Settings, now: float) -> None:
    """auth_time within BROKER_ENTRA_MAX_AUTH_AGE (4 h by default, the CA sign-in frequency)."""
    if account.auth_time > now + SKEW:
        raise SignInRefused("upstream_token_invalid", detail="entra auth_time is in the future")
    if now - account.auth_time > settings.entra_max_auth_age + SKEW:
        raise SignInRefused("auth_too_old", detail=f"entra auth_time is {int(now - account.auth_time)} s old")


def max_age_for_entra(request: AuthorizationRequest, settings: Settings) -> int:
    """The ``max_age`` sent on every Entra request: the relying party's, never more than
    BROKER_ENTRA_MAX_AUTH_AGE. With Windows-session SSO, ``auth_time`` is the Windows logon (a PRT's
    primary authentication, hours old): asking Entra for a fresh authentication beyond this age
    (Windows Hello's prompt) is what keeps a professional from reaching :func:`check_auth_fresh`'s
    refusal. Entra honours max_age (MicrosoftDocs/azure-docs#51307) and MSAL checks auth_time against it.
    """
    if request.max_age is None:
        return settings.entra_max_auth_age
    return min(request.max_age, settings.entra_max_auth_age)


# An upstream authentication counts as "during this journey" if not older than its start, give or take.
JOURNEY_LEEWAY = 60


def check_fresh_for_request(auth_time: int, request: AuthorizationRequest, started_at: int, now: float) -> None:
    """OIDC Core 3.1.2.1, for any upstream authentication (Entra ID or PSC).

    ``prompt=login``: the person authenticated during this journey. ``max_age``: at most max_age
    seconds ago, or during this journey (the OP re-authenticated them).
    """
    during_journey = auth_time >= started_at - JOURNEY_LEEWAY
    if "login" in request.prompt and not during_journey:
        raise SignInRefused("auth_too_old", detail="prompt=login but the upstream authentication is older")
    if request.max_age is not None and not during_journey and now - auth_time > request.max_age:
        raise SignInRefused("auth_too_old", detail="upstream authentication older than the RP's max_age")


def check_required_acrs(account: EntraAccount, settings: Settings) -> None:
    """Every configured authentication context (Entra ``acrs``) must be in the ID token.

    The tenant binds a Conditional Access policy (phishing-resistant authentication strength) to
    these contexts; a password-only sign-in cannot satisfy it and comes back without them.
    """
    missing = [value for value in settings.entra_required_acrs if value not in account.acrs]
    if missing:
        raise SignInRefused("authentication_not_compliant", detail=f"entra acrs missing: {','.join(missing)}")


def check_entra_account(
    account: EntraAccount, request: AuthorizationRequest, settings: Settings, started_at: int, now: float
) -> None:
    check_tenant_allowed(account, settings)
    check_auth_fresh(account, settings, now)
    check_fresh_for_request(account.auth_time, request, started_at, now)
    check_required_acrs(account, settings)
