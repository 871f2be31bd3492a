"""Log hygiene: no query string, token or full national identifier ever reaches a log record.

A query string of the broker's endpoints carries authorization codes, ``state``, ``id_token_hint``
and ``login_hint`` (which may be a national identifier); outbound libraries (urllib3, MSAL) log
URLs at debug level. :func:`install` makes every log record of the process pass through
:func:`scrub` when it is created, whichever logger or handler then exports it (the Functions
worker's, Application Insights').
"""

from __future__ import annotations

import logging
import re
from typing import Any

# A URL (absolute, or a path as in request lines) with its query: the query goes, the path stays.
_QUERY = re.compile(r"(?P<path>(?:https?://[^\s\"'?#]+|/[^\s\"'?#]*))\?[^\s\"'#]*")
# Three base64url segments: a JWT (ID token, access token, client assertion, id_token_hint).
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
# key=value pairs of the secrets' names, wherever they appear (form bodies, headers quoted in errors).
_SECRET_FIELDS = re.compile(
    r"(?i)\b(code|state|nonce|id_token_hint|login_hint|client_secret|client_assertion|code_verifier|"
    r"access_token|refresh_token|id_token|authorization|cookie)=([^\s&\"';,]+)"
)
# A full national identifier: idNat "8" + the 11-digit RPPS, the RPPS alone, or "0" + the 9-digit ADELI.
# (Epoch seconds, 10 digits starting with 1, are left alone.)
_NATIONAL_ID = re.compile(r"(?<![\d-])(?:8\d{11}|\d{11}|0\d{9})(?![\d-])")

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def scrub(text: str) -> str:
    """``text`` without query strings, tokens, secrets' values or full national identifiers."""
    text = _QUERY.sub(lambda match: f"{match.group('path')}?[query removed]", text)
    text = _JWT.sub("[token]", text)
    text = _SECRET_FIELDS.sub(lambda match: f"{match.group(1)}=[removed]", text)
    return _NATIONAL_ID.sub(lambda match: f"…{match.group(0)[-4:]}", text)


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """The record with its message rendered and scrubbed, and its string extras scrubbed."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed %-format must not lose the record
        message = str(record.msg)
    record.msg, record.args = scrub(message), ()
    for name, value in list(vars(record).items()):
        if name not in _STANDARD_ATTRIBUTES and isinstance(value, str):
            setattr(record, name, scrub(value))
    return record


_installed = False


def install() -> None:
    """Scrub every log record of the process once made, extras included (idempotent).

    ``Logger.makeRecord`` is where a record gets its ``extra`` fields (after the record factory
    ran), so that is the one place every record of every logger passes through before any handler
    or exporter sees it.
    """
    global _installed
    if _installed:
        return
    make_record = logging.Logger.makeRecord

    def scrubbed(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(make_record(self, *args, **kwargs))

    logging.Logger.makeRecord = scrubbed  # type: ignore[method-assign]
    _installed = True
