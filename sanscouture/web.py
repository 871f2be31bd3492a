"""Framework-free HTTP request and response values used by the core.

``functions/_http.py`` converts Azure Functions' ``HttpRequest``/``HttpResponse`` to and from these,
so that the protocol code never imports ``azure.functions`` (as Authlib's core never imports Flask).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode

from sanscouture.errors import RequestTooLargeError

# OIDC pages are never framed or cached; scripts and styles come from the broker only.
PAGE_SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' https:; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

NO_STORE: dict[str, str] = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# What an OIDC request to the broker can need, with room to spare: the largest legitimate form is a
# client assertion or an id_token_hint (a few KiB); no endpoint takes more than about 20 fields.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 64
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADERS_BYTES = 32 * 1024


@dataclass(frozen=True)
class Request:
    """One HTTP request: lower-cased header names, query and form parameters (first value wins)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    route_params: Mapping[str, str] = field(default_factory=dict)
    repeated: frozenset[str] = frozenset()

    @property
    def params(self) -> Mapping[str, str]:
        """Query for GET, form for POST (OIDC Core 3.1.2.1 allows both at /authorize)."""
        return self.form if self.method == "POST" else self.query

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def cookies(self) -> dict[str, str]:
        return parse_cookie_header(self.headers.get("cookie", ""))


def parse_cookie_header(header: str) -> dict[str, str]:
    """The cookies of a Cookie header (RFC 6265 5.4), parsed tolerantly: a malformed pair is skipped,
    never the whole header. ``http.cookies.SimpleCookie`` drops every cookie when one is malformed
    (a consent banner's ``consent={"ads":false}`` on the parent domain is enough), which would lock
    the browser out of every sign-in. The first of two cookies with one name wins (the browser sends
    the most specific first, RFC 6265 5.4 step 2)."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, separator, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not name or name in cookies:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


def check_limits(headers: Mapping[str, str], body: bytes) -> None:
    """Refuse, before parsing anything, a request beyond the limits above (413)."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestTooLargeError(detail=f"body of {len(body)} bytes")
    sizes = [len(name) + len(value) for name, value in headers.items()]
    if sum(sizes) > MAX_HEADERS_BYTES or any(size > MAX_HEADER_BYTES for size in sizes):
        raise RequestTooLargeError(detail=f"headers of {sum(sizes)} bytes")


def parse_form(body: bytes, content_type: str | None) -> tuple[dict[str, str], frozenset[str]]:
    """Decode an application/x-www-form-urlencoded body; other types give an empty form.

    Returns the parameters (first value of each) and the names that were repeated, which
    RFC 6749 3.1 forbids for OAuth parameters. More than MAX_FIELDS fields is refused (413).
    """
    if not content_type or content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return {}, frozenset()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}, frozenset()
    if text.count("&") >= MAX_FIELDS:
        raise RequestTooLargeError(detail=f"{text.count('&') + 1} form fields")
    return first_values(parse_qsl(text, keep_blank_values=True, strict_parsing=False))


def first_values(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], frozenset[str]]:
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in pairs:
        if key in values:
            repeated.add(key)
            continue
        values[key] = value
    return values, frozenset(repeated)


@dataclass(frozen=True)
class Response:
    """One HTTP response; ``headers`` is a list so that several Set-Cookie headers survive."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, payload, tuple(merged.items()))

    @classmethod
    def html(
        cls, page: str, status: int = 200, cookies: tuple[str, ...] = (), headers: Mapping[str, str] | None = None
    ) -> Response:
        merged = {"Content-Type": "text/html; charset=utf-8", **PAGE_SECURITY_HEADERS, **(headers or {})}
        return cls(status, page.encode("utf-8"), tuple(merged.items()) + tuple(("Set-Cookie", c) for c in cookies))

    @classmethod
    def redirect(cls, location: str, cookies: tuple[str, ...] = (), status: int = 302) -> Response:
        headers = (("Location", location), ("Cache-Control", "no-store"))
        return cls(status, b"", headers + tuple(("Set-Cookie", c) for c in cookies))

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def add_query(url: str, params: Mapping[str, str]) -> str:
    """Append parameters to a URL that may already carry a query (RFC 6749 3.1.2: keep it)."""
    separator = "&" if "?" in url else "?"
    return url + separator + urlencode(params)
