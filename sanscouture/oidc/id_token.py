"""The ID token's claims (OIDC Core 2, 3.1.3.6): a pure builder; signing is the key ring's job.

It carries the authentication event only. The PSC identity claims (``SubjectNameID``,
``SubjectRefPro``, ...) come from ``/userinfo`` with scope ``scope_all``, as with PSC itself, and the
conformance suite warns about an ID token with claims that were not requested.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sanscouture.keys import b64url
from sanscouture.models import CodeGrant

ID_TOKEN_TTL = 300  # seconds


def at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6: base64url of the left half of SHA-256 of the access token (RS256)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return b64url(digest[: len(digest) // 2])


def build_id_token_claims(grant: CodeGrant, *, issuer: str, access_token: str, now: int) -> dict[str, Any]:
    """OIDC Core 2: iss, sub (the PSC sub), aud, exp, iat, auth_time, nonce, acr, amr, at_hash, sid.

    ``nonce`` only when the request had one (OIDC Core 3.1.2.1: optional in the code flow), ``amr``
    only when the authentication means are truly known (docs/design.md "Protocol rules").
    """
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": grant.identity.sub,
        "aud": grant.client_id,
        "exp": now + ID_TOKEN_TTL,
        "iat": now,
        "auth_time": grant.auth_time,
        "at_hash": at_hash(access_token),
        "sid": grant.sid,
    }
    if grant.acr:  # eidas1 only when the authentication met it (PSC's acr, or Entra's enforced acrs)
        claims["acr"] = grant.acr
    if grant.nonce:
        claims["nonce"] = grant.nonce
    if grant.amr:
        claims["amr"] = list(grant.amr)
    return claims
