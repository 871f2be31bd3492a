"""Authorization codes: issued once, stored hashed, redeemed once (RFC 6749 4.1.2, 10.5).

The code itself is never stored: its row is keyed by the code's SHA-256, so a read of the ``codes``
table yields nothing that can be redeemed. ``grant_id_of(code)`` names the tokens issued from the
code (``tokens`` partition), so that a replayed code can revoke them (RFC 6749 4.1.2).
"""

from __future__ import annotations

import hashlib
import secrets

from sanscouture.models import CodeGrant
from sanscouture.models import Row
from sanscouture.ports import RowStore

CODE_TTL = 60  # seconds (docs/design.md "State"; RFC 6749 4.1.2 recommends at most 10 minutes)
CODE_ROW = "grant"
# token_urlsafe(32) gives 43 characters; anything much longer is not one of our codes.
_MAX_CODE_LENGTH = 128


def code_key(code: str) -> str:
    """The PartitionKey of a code's row: the hex SHA-256 of the code."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def grant_id_of(code: str) -> str:
    """The id of everything issued from ``code``: hex SHA-256 of ``"grant:" + code``."""
    return hashlib.sha256(("grant:" + code).encode("utf-8")).hexdigest()


def issue_code(codes: RowStore, grant: CodeGrant) -> str:
    """Store ``grant`` under a new code of 256 random bits, valid for :data:`CODE_TTL` seconds."""
    code = secrets.token_urlsafe(32)
    codes.save(code_key(code), CODE_ROW, grant.to_dict(), expires_in=CODE_TTL)
    return code


def find_code(codes: RowStore, code: str) -> Row | None:
    """The code's live row (not yet consumed); None if absent, expired or already used."""
    if not code or len(code) > _MAX_CODE_LENGTH:
        return None
    return codes.find(code_key(code), CODE_ROW)
