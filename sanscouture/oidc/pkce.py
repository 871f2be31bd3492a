"""Proof Key for Code Exchange at the token endpoint (RFC 7636 4.5, 4.6); S256 only.

Error codes follow node-oidc-provider (``lib/helpers/pkce.js``): a malformed ``code_verifier`` is
``invalid_request`` (RFC 7636 4.1 syntax), a missing or non-matching one is ``invalid_grant``: the
code is bound to a challenge, and a request that does not prove it presents a grant that is not
valid for it (RFC 7636 4.6, RFC 6749 5.2). Every code of the broker carries a challenge
(docs/design.md: PKCE S256 required for every client), so the verifier is always required.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from sanscouture.errors import InvalidGrantError
from sanscouture.errors import InvalidRequestError
from sanscouture.keys import b64url

# RFC 7636 4.1: code-verifier = 43*128unreserved; unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def s256(verifier: str) -> str:
    """RFC 7636 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def check_verifier_present(verifier: str | None) -> str:
    """RFC 7636 4.5: the code was bound to a challenge, so ``code_verifier`` is required."""
    if not verifier:
        raise InvalidGrantError("PKCE verification failed: code_verifier is required")
    return verifier


def check_verifier_syntax(verifier: str) -> None:
    """RFC 7636 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / - . _ ~."""
    if not _VERIFIER.match(verifier):
        raise InvalidRequestError("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")


def check_verifier_matches(verifier: str, challenge: str) -> None:
    """RFC 7636 4.6: S256(code_verifier) equals the stored challenge, compared in constant time."""
    if not hmac.compare_digest(s256(verifier).encode("ascii"), challenge.encode("utf-8")):
        raise InvalidGrantError("PKCE verification failed")


def check_pkce(verifier: str | None, challenge: str) -> None:
    """RFC 7636 4.6: the three checks above, in order."""
    present = check_verifier_present(verifier)
    check_verifier_syntax(present)
    check_verifier_matches(present, challenge)
