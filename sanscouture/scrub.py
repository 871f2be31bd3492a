"""Log hygiene: no query string, token, code, credential header or full national identifier ever
reaches a log record.

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
# The broker's opaque credentials (sanscouture/oidc/codes.py, refresh.py): an authorization code or a
# refresh token is ``<grant id: 32 hex>.<secret: 43 base64url>``. The grant id alone is no secret (a
# lookup key, kept to follow a grant); the secret goes.
_OPAQUE = re.compile(r"(?<![\w-])(?P<grant>[0-9a-f]{32})\.[A-Za-z0-9_-]{43}(?![\w-])")
# A sealed journey or session (sanscouture/sealing.py: "s1." + base64url), whatever cookie carries it,
# and a pushed authorization request's reference (sanscouture/oidc/par.py).
_SEALED = re.compile(r"(?<![\w.-])s1\.[A-Za-z0-9_-]{40,}(?![\w-])")
_REQUEST_URI = re.compile(r"(?P<prefix>urn:ietf:params:oauth:request_uri:)[A-Za-z0-9_-]+")
# A credential header as a line of text (an HTTP dump, an error quoting a request): all of the line goes.
_HEADER_LINE = re.compile(r"(?i)(?<![\w-])(?P<name>proxy-authorization|authorization|set-cookie|cookie)"
                          r"(?P<sep>[ \t]*:[ \t]*)[^\r\n]+")
# A bearer token outside a header line (RFC 6750 2.1 b64token); "Bearer error=..." challenges stay.
_BEARER = re.compile(r"\b(?P<scheme>Bearer)\s+[A-Za-z0-9._~+/-]+=*(?![\w\".~+/=-])")

# Names whose value is always a secret, and names ("code", "state", "nonce") also used for plain words
# or numbers ("status code: 500", Azure's error bodies {"code": "SecretNotFound"}, "state: pairing"):
# in the ``name: value`` and quoted forms those keep a plain word or a short number, nothing else.
_CREDENTIAL_NAMES = ("id_token_hint|login_hint|client_secret|client_assertion|code_verifier|access_token|"
                 "refresh_token|id_token|csrf_token|proxy-authorization|authorization|set-cookie|cookie")
_AMBIGUOUS_NAMES = ("code", "state", "nonce")
_PLAIN = re.compile(r"[A-Za-z]+(?:_[A-Za-z]+)*|\d{1,4}")
# key=value pairs of the secrets' names, wherever they appear (form bodies, headers quoted in errors).
_SECRET_FIELDS = re.compile(
    r"(?i)\b(code|state|nonce|id_token_hint|login_hint|client_secret|client_assertion|code_verifier|"
    r"access_token|refresh_token|id_token|csrf_token|authorization|cookie)=([^\s&\"';,]+)"
)
# The same names as JSON or Python keys: "code": "…", 'client_secret': '…' (escapes included).
_QUOTED_FIELDS = re.compile(
    rf"(?i)(?P<key>(?P<q>[\"'])(?P<name>{_CREDENTIAL_NAMES}|code|state|nonce)(?P=q)\s*:\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')"
)
# The same names as ``name: value`` (YAML-like, or a message quoting a header).
_COLON_FIELDS = re.compile(
    rf"(?i)(?<![\w-])(?P<key>(?P<name>{_CREDENTIAL_NAMES}|code|state|nonce)[ \t]*:[ \t]*)"
    r"(?P<value>(?!\[removed\])[^\s,;&\"'}\]]+)"
)
# Words one of which a text holds if the five patterns above can match (most records hold none; a
# substring test is much faster than a case-insensitive scan).
_NAMED = ("code", "state", "nonce", "hint", "secret", "assertion", "token", "authorization", "cookie", "bearer")
# A full national identifier: idNat "8" + the 11-digit RPPS, the RPPS alone, or "0" + the 9-digit ADELI.
# (Epoch seconds, 10 digits starting with 1, are left alone.)
_NATIONAL_ID = re.compile(r"(?<![\d-])(?:8\d{11}|\d{11}|0\d{9})(?![\d-])")

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def scrub(text: str) -> str:
    """``text`` without query strings, tokens, codes, secrets' values, credential headers or full
    national identifiers."""
    if "?" in text:
        text = _QUERY.sub(lambda match: f"{match.group('path')}?[query removed]", text)
    if "." in text or ":" in text:
        text = _JWT.sub("[token]", text)
        text = _OPAQUE.sub(lambda match: f"{match.group('grant')}.[removed]", text)
        text = _SEALED.sub("s1.[removed]", text)
        text = _REQUEST_URI.sub(lambda match: f"{match.group('prefix')}[removed]", text)
    lowered = text.lower()
    if any(word in lowered for word in _NAMED):
        text = _HEADER_LINE.sub(lambda match: f"{match.group('name')}{match.group('sep')}[removed]", text)
        text = _BEARER.sub(lambda match: f"{match.group('scheme')} [removed]", text)
        text = _SECRET_FIELDS.sub(lambda match: f"{match.group(1)}=[removed]", text)
        text = _QUOTED_FIELDS.sub(_quoted_field, text)
        text = _COLON_FIELDS.sub(_colon_field, text)
    return _NATIONAL_ID.sub(lambda match: f"…{match.group(0)[-4:]}", text)


def _kept(name: str, value: str) -> bool:
    """A plain word or short number under an ambiguous name: an error code, a step, not a credential."""
    return name.lower() in _AMBIGUOUS_NAMES and _PLAIN.fullmatch(value) is not None


def _quoted_field(match: re.Match[str]) -> str:
    value = match.group("value")
    if _kept(match.group("name"), value[1:-1]):
        return match.group(0)
    return f"{match.group('key')}{value[0]}[removed]{value[0]}"


def _colon_field(match: re.Match[str]) -> str:
    if _kept(match.group("name"), match.group("value")):
        return match.group(0)
    return f"{match.group('key')}[removed]"


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
