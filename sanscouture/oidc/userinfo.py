"""The UserInfo endpoint (OIDC Core 5.3) as an OAuth protected resource (RFC 6750).

The access token is one of the broker's JWTs (RFC 9068) *and* the record its grant's row holds: the
signature proves who issued it, the row proves it was not revoked (a replayed code deletes it).
Claims are PSC's, exactly as PSC gave them, filtered by the granted scopes (OIDC Core 5.4).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

import jwt

from sanscouture.errors import InvalidRequestError
from sanscouture.errors import InvalidTokenError
from sanscouture.errors import OAuthError
from sanscouture.models import CodeGrant
from sanscouture.models import Row
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import REDEEMED_STATE
from sanscouture.oidc.token import ACCESS_TOKEN_TYP
from sanscouture.ports import Clock
from sanscouture.ports import RowStore
from sanscouture.web import NO_STORE
from sanscouture.web import Request
from sanscouture.web import Response

# OIDC Core 5.4: the standard claims each scope asks for (those PSC provides).
SCOPE_CLAIMS: Mapping[str, tuple[str, ...]] = {
    "profile": ("given_name", "family_name", "preferred_username"),
    "email": ("email", "email_verified"),
}
# scope_all (PSC): every claim of the PSC identity.
ALL_PSC_CLAIMS = "scope_all"

# RFC 6750 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


class BearerTokenMissingError(InvalidTokenError):
    """RFC 6750 3.1: no token at all; the answer carries a bare challenge and no error code."""

    description = "an access token is required"


class TokenDecoder(Protocol):
    """Verifies the broker's own JWTs (``sanscouture.keys.KeyRing``)."""

    def decode(
        self,
        token: str,
        *,
        issuer: str,
        audience: str | Sequence[str] | None = None,
        typ: str | None = None,
        leeway: float = 30,
        verify_exp: bool = True,
    ) -> dict[str, Any]: ...


def handle_userinfo(
    request: Request, *, issuer: str, decoder: TokenDecoder, grants: RowStore, clock: Clock = time.time
) -> Response:
    """OIDC Core 5.3: GET or POST with a Bearer token → the claims of its scopes, as JSON (one read)."""
    token = read_bearer_token(request)
    claims = verify_access_token(token, decoder, issuer)
    row = load_token_record(grants, claims, now=clock())
    grant = CodeGrant.from_dict(row.data)
    userinfo = build_userinfo(grant.scope, grant.identity.sub, grant.identity.claims)
    return Response.json(userinfo, headers=NO_STORE)


def read_bearer_token(request: Request) -> str:
    """RFC 6750 2.1 (header) or 2.2 (form body of a POST), never both (RFC 6750 2)."""
    from_header = bearer_from_header(request.header("authorization"))
    from_body = request.form.get("access_token") if request.method == "POST" else None
    if from_header and from_body:
        raise InvalidRequestError("send the access token in the Authorization header or the body, not both")
    token = from_header or from_body
    if not token:
        raise BearerTokenMissingError()
    return token


def bearer_from_header(header: str | None) -> str | None:
    """The token of ``Authorization: Bearer <b64token>``; None for no header or another scheme."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = credentials.strip()
    if token and not _B64TOKEN.match(token):
        raise InvalidTokenError("the access token is malformed")
    return token or None


def verify_access_token(token: str, decoder: TokenDecoder, issuer: str) -> dict[str, Any]:
    """RFC 9068 4: typ at+jwt, our signature, iss and aud = the broker, not expired."""
    try:
        return decoder.decode(token, issuer=issuer, audience=issuer, typ=ACCESS_TOKEN_TYP)
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("the access token has expired") from None
    except jwt.InvalidTokenError as error:
        raise InvalidTokenError(detail=f"{type(error).__name__}: {error}") from None


def load_token_record(grants: RowStore, claims: Mapping[str, Any], *, now: float) -> Row:
    """The grant's row listing this very token among its live access tokens (``gid``, ``jti``); absent
    (revoked: a replayed code or refresh token, a removed pairing) or not listed means refused."""
    grant_id, jti = claims.get("gid"), claims.get("jti")
    if not isinstance(grant_id, str) or not isinstance(jti, str) or not grant_id or not jti:
        raise InvalidTokenError(detail="access token without gid or jti")
    row = grants.find(grant_id, GRANT_ROW)
    access = row.data.get("access") if row is not None else None
    if row is None or row.data.get("state") != REDEEMED_STATE or not isinstance(access, dict):
        raise InvalidTokenError("the access token was revoked or has expired")
    expires = access.get(jti)
    if not isinstance(expires, int) or expires <= now:
        raise InvalidTokenError("the access token was revoked or has expired")
    return row


def build_userinfo(scopes: Iterable[str], sub: str, psc_claims: Mapping[str, Any] | None) -> dict[str, Any]:
    """OIDC Core 5.4: ``sub`` always (the PSC sub), then the claims each granted scope asks for."""
    granted = set(scopes)
    claims = psc_claims or {}
    userinfo: dict[str, Any] = {}
    if ALL_PSC_CLAIMS in granted:
        userinfo.update(claims)
    for scope, names in SCOPE_CLAIMS.items():
        if scope in granted:
            userinfo.update({name: claims[name] for name in names if name in claims})
    userinfo["sub"] = sub
    return userinfo


def userinfo_error_response(error: OAuthError) -> Response:
    """RFC 6750 3: token and request errors carry a Bearer challenge; others (an outage) are plain."""
    if isinstance(error, (InvalidTokenError, InvalidRequestError)):
        return bearer_error_response(error)
    return Response.json(error.body(), status=error.status, headers=NO_STORE)


def bearer_error_response(error: OAuthError) -> Response:
    """RFC 6750 3 and 3.1: the challenge says what was wrong, except when no token was sent at all."""
    if isinstance(error, BearerTokenMissingError):
        return Response(error.status, b"", (("WWW-Authenticate", "Bearer"), *NO_STORE.items()))
    # RFC 6749 A.7 keeps " and \ out of descriptions, so they fit in a quoted-string unescaped.
    challenge = f'Bearer error="{error.error}", error_description="{error.description}"'
    return Response.json(error.body(), status=error.status, headers={**NO_STORE, "WWW-Authenticate": challenge})
