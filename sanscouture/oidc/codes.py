"""Grants: one row per authorization, from the code to the access token it gave (RFC 6749 4.1.2, 10.5).

The row (``codes`` table, PartitionKey = the grant id, RowKey ``grant``) first holds the code's grant:
who, for which client, redirect_uri, PKCE challenge and nonce, for 60 seconds. ``/token`` turns it,
with one ETag-conditional replace, into the record of the access token it issues, which ``/userinfo``
reads. A replayed code finds that record and deletes it: the tokens of the code are revoked.

The code is ``<grant id>.<secret>``: the grant id is random (or derived from the journey, so that one
journey ends with at most one code), the 256-bit secret is stored only as its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sanscouture.models import CodeGrant
from sanscouture.models import Row
from sanscouture.ports import RowStore

CODE_TTL = 60  # seconds (docs/design.md "State"; RFC 6749 4.1.2 recommends at most 10 minutes)
GRANT_ROW = "grant"
CODE_STATE = "code"
REDEEMED_STATE = "redeemed"
_CODE = re.compile(r"^(?P<grant>[0-9a-f]{32})\.(?P<secret>[A-Za-z0-9_-]{43})$")


def new_grant_id() -> str:
    return secrets.token_hex(16)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def issue_code(codes: RowStore, grant: CodeGrant, grant_id: str) -> str | None:
    """A new code for ``grant`` under ``grant_id`` (one insert); None when that grant id already
    gave a code (a replayed or double-submitted confirmation of one journey)."""
    secret = secrets.token_urlsafe(32)
    data = {"state": CODE_STATE, "secret_sha256": _secret_hash(secret), **grant.to_dict()}
    if not codes.insert(grant_id, GRANT_ROW, data, expires_in=CODE_TTL):
        return None
    return f"{grant_id}.{secret}"


@dataclass(frozen=True)
class FoundGrant:
    """The live row of a presented code, and whether that code was already redeemed."""

    grant_id: str
    row: Row

    @property
    def redeemed(self) -> bool:
        return self.row.data.get("state") == REDEEMED_STATE


def find_grant(codes: RowStore, code: str) -> FoundGrant | None:
    """The grant row of ``code`` (one read), whether still a code or already its tokens' record; None
    for a malformed code, a wrong secret, or a grant expired or revoked."""
    match = _CODE.fullmatch(code or "")
    if match is None:
        return None
    row = codes.find(match.group("grant"), GRANT_ROW)
    if row is None:
        return None
    stored = str(row.data.get("secret_sha256", ""))
    if not hmac.compare_digest(stored.encode(), _secret_hash(match.group("secret")).encode()):
        return None
    return FoundGrant(match.group("grant"), row)
