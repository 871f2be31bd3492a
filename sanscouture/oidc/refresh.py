"""Refresh tokens (RFC 6749 6, 10.4; OAuth 2.0 Security BCP, RFC 9700 4.14): rotated on every use.

A refresh token is issued with a paired sign-in to a client registered for the ``refresh_token``
grant. It is opaque: ``<grant id>.<256 random bits>``, kept only as its SHA-256 in the grant's row
(``codes`` table), which is the token family: the current token, the tokens already used, the live
access tokens. Each use gives a new refresh token and marks the old one used; a used token presented
again (a stolen copy, or the legitimate one after the thief's use) revokes the whole family, with the
access tokens issued from it (the row is deleted: ``/userinfo`` refuses them).

It is bound to the client, to the pairing (``tid``, ``oid``, PSC ``sub``) and to the broker session
(``sid``), and it is refused (``invalid_grant``, the family revoked) once the pairing is removed or
replaced, the session ended, the 4-hour Entra re-authentication rule passed, or the pairing's periodic
re-verification due. Lifetime: ``BROKER_REFRESH_TOKEN_TTL`` from each use (PSC: 30 minutes), never past
``auth_time + BROKER_ENTRA_MAX_AUTH_AGE``. No ``offline_access``: nothing outlives the working session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any

from sanscouture.bindings import BindingStore
from sanscouture.errors import InvalidGrantError
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import InvalidScopeError
from sanscouture.errors import UnauthorizedClientError
from sanscouture.models import Client
from sanscouture.models import CodeGrant
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import REDEEMED_STATE
from sanscouture.ports import RowStore
from sanscouture.reverification import reverification_due
from sanscouture.settings import Settings

if TYPE_CHECKING:
    from sanscouture.oidc.token import IssuedTokens
    from sanscouture.oidc.token import TokenEndpoint
    from sanscouture.web import Request

_REFRESH = re.compile(r"^(?P<grant>[0-9a-f]{32})\.(?P<secret>[A-Za-z0-9_-]{43})$")
REFUSED = "the refresh token is invalid, expired or revoked"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_refresh_token(grant_id: str, grant: CodeGrant, settings: Settings, now: int) -> tuple[str, dict[str, Any]]:
    """A new refresh token of the grant's family and the record fields it needs."""
    secret = secrets.token_urlsafe(32)
    until = min(now + settings.refresh_token_ttl, grant.auth_time + settings.entra_max_auth_age)
    return f"{grant_id}.{secret}", {"refresh_sha256": _hash(secret), "refresh_until": until}


def exchange_refresh_token(request: Request, client: Client, endpoint: TokenEndpoint) -> IssuedTokens:
    """RFC 6749 6, one check per line: the family's current token, still valid, then rotation."""
    from sanscouture.oidc.token import IssuedTokens
    from sanscouture.oidc.token import build_access_token_claims
    from sanscouture.oidc.token import grant_record
    from sanscouture.oidc.token import start_signing

    check_client_may_refresh(client)
    grant_id, secret = check_refresh_token_form(request.form)
    codes, settings = endpoint.tables["codes"], endpoint.settings
    now = int(endpoint.clock())
    row = codes.find(grant_id, GRANT_ROW)
    if row is None or row.data.get("state") != REDEEMED_STATE:
        raise InvalidGrantError(REFUSED, detail="no such refresh token family")
    presented = _hash(secret)
    if presented in (row.data.get("refresh_used") or ()):
        codes.delete(grant_id, GRANT_ROW)
        raise InvalidGrantError(REFUSED, detail="a used refresh token was presented again: the family is revoked")
    if not hmac.compare_digest(str(row.data.get("refresh_sha256", "")).encode(), presented.encode()):
        raise InvalidGrantError(REFUSED, detail="not the family's current refresh token")
    grant = CodeGrant.from_dict(row.data)
    check_refresh_client(grant, client)
    check_refresh_alive(row.data, now)
    try:
        check_within_reauthentication(grant, settings, now)
        check_pairing_holds(BindingStore(endpoint.tables["bindings"], endpoint.clock), grant, now,
                            settings.pairing_reverify_days)
    except InvalidGrantError:
        codes.delete(grant_id, GRANT_ROW)  # the family dies with its pairing, session or 4-hour rule
        raise
    scope = narrowed_scope(request.form.get("scope"), grant.scope)
    jti = secrets.token_urlsafe(16)
    issued = replace(grant, scope=scope, nonce=None)  # OIDC Core 12.2: no nonce in a refreshed ID token
    signed = start_signing(endpoint, build_access_token_claims(
        issued, issuer=settings.issuer, grant_id=grant_id, jti=jti, now=now, ttl=settings.access_token_ttl
    ), issued, now)
    refresh_token, fields = new_refresh_token(grant_id, grant, settings, now)
    access = {key: value for key, value in _access(row.data).items() if value > now}
    access[jti] = now + settings.access_token_ttl
    record = {
        **row.data, **grant_record(grant, access), **fields,
        "refresh_used": [*(row.data.get("refresh_used") or ()), presented],
    }
    lifetime = max(int(fields["refresh_until"]) - now, settings.access_token_ttl)
    if codes.replace(row, record, expires_in=lifetime) is None:
        codes.delete(grant_id, GRANT_ROW)  # two uses of one refresh token at once: treated as a reuse
        raise InvalidGrantError(REFUSED, detail="concurrent use of one refresh token: the family is revoked")
    access_token, id_token = signed.result()
    return IssuedTokens(access_token, id_token, settings.access_token_ttl, " ".join(scope), refresh_token)


def check_client_may_refresh(client: Client) -> None:
    """RFC 6749 5.2: a client not registered for the grant gets ``unauthorized_client``."""
    if not client.may_refresh:
        raise UnauthorizedClientError("the client is not registered for the refresh_token grant")


def check_refresh_token_form(form: Mapping[str, str]) -> tuple[str, str]:
    """RFC 6749 6: ``refresh_token`` is required; anything not shaped like ours is simply invalid."""
    token = form.get("refresh_token")
    if not token:
        raise InvalidRequestError("refresh_token is required")
    match = _REFRESH.fullmatch(token)
    if match is None:
        raise InvalidGrantError(REFUSED, detail="malformed refresh token")
    return match.group("grant"), match.group("secret")


def check_refresh_client(grant: CodeGrant, client: Client) -> None:
    """RFC 6749 6: the refresh token was issued to the authenticated client."""
    if grant.client_id != client.client_id:
        raise InvalidGrantError(REFUSED, detail="the refresh token was issued to another client")


def check_refresh_alive(record: Mapping[str, Any], now: int) -> None:
    until = record.get("refresh_until")
    if not isinstance(until, int) or until <= now:
        raise InvalidGrantError(REFUSED, detail="the refresh token has expired")


def check_within_reauthentication(grant: CodeGrant, settings: Settings, now: int) -> None:
    """The hospital's re-authentication rule (BROKER_ENTRA_MAX_AUTH_AGE, 4 h) bounds a refresh too."""
    if now - grant.auth_time > settings.entra_max_auth_age:
        raise InvalidGrantError(REFUSED, detail="the authentication is older than the re-authentication rule")


def check_pairing_holds(bindings: BindingStore, grant: CodeGrant, now: int, reverify_days: int) -> None:
    """The pairing still names this identity, its session was not ended, its re-verification not due."""
    if grant.tid is None or grant.oid is None:
        raise InvalidGrantError(REFUSED, detail="a refresh token without a pairing")
    binding = bindings.find(grant.tid, grant.oid)
    if binding is None or binding.identity.sub != grant.identity.sub:
        raise InvalidGrantError(REFUSED, detail="the pairing was removed or replaced")
    if binding.session_revoked(grant.sid, now):
        raise InvalidGrantError(REFUSED, detail="the broker session was ended")
    if reverification_due(binding, now, reverify_days):
        raise InvalidGrantError(REFUSED, detail="the pairing's periodic re-verification is due")


def narrowed_scope(requested: str | None, granted: tuple[str, ...]) -> tuple[str, ...]:
    """RFC 6749 6: a refresh may ask for a part of the original scope, never more."""
    if not requested:
        return granted
    scope = tuple(requested.split())
    if not set(scope) <= set(granted):
        raise InvalidScopeError("the scope asked exceeds the scope originally granted")
    return scope


def _access(record: Mapping[str, Any]) -> dict[str, int]:
    access = record.get("access")
    return {str(k): int(v) for k, v in access.items()} if isinstance(access, dict) else {}


def revoke_family(codes: RowStore, grant_id: str) -> bool:
    """Delete a grant's record: its refresh tokens and access tokens are refused from then on."""
    return codes.delete(grant_id, GRANT_ROW)
