"""Hypothesis strategies of hostile HTTP requests to the broker (issue 8, point 15).

A request is built from parts an attacker controls: parameters (generated, oversized, repeated,
mis-encoded, injection-laden), headers (``Authorization`` Basic/Bearer with junk, ``Content-Type``
oddities, ``X-Forwarded-For``…) and cookies (the broker's own names with junk values, malformed
``Cookie`` headers). Plausible values are mixed in, so that requests get past the first checks and reach
deep code, and a hostile part is then one change away from a valid request.

Requests are bytes on the wire (:class:`HostileRequest`), sent by :class:`RawClient` over one kept-alive
TLS connection: ``requests`` would re-encode the URL and refuse some headers, a browser or a script
would not.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import urlsplit

from hypothesis import strategies as st

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX

# -- injection markers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    """An injection payload, and what in a response would show it reflected unescaped (or evaluated).

    ``forbidden`` are the payload's dangerous forms: the raw markup, the evaluated template, the split
    header. A payload whose characters need no escaping in a context (``{{7*7}}`` in HTML text) is
    checked for its effect instead (``49``)."""

    payload: str
    forbidden: tuple[str, ...]


MARKERS: tuple[Marker, ...] = (
    Marker("<script>alert(7331)</script>", ("<script>alert(7331)",)),
    Marker('"><img src=x onerror=alert(7332)>', ('"><img src=x', "<img src=x onerror=alert(7332)")),
    Marker("' OR 1=1 --7333", ("' OR 1=1 --7333",)),
    Marker("{{7*7}}7334${7*7}7334", ("497334",)),
    Marker("../../../../etc/passwd7335", ("root:x:0:0",)),
    Marker("x\r\nSet-Cookie: injected7336=1\r\nX-Injected: 7336", ("X-Injected: 7336",)),
    Marker("javascript:alert(7337)//", ("javascript:alert(7337)",)),
)
# Checked in header values (raw) and bodies. The percent-encoded forms are harmless by construction.
FORBIDDEN: tuple[str, ...] = tuple(form for marker in MARKERS for form in marker.forbidden)
# A header the response must never carry: one injected through a parameter (a split response).
INJECTED_HEADERS = ("x-injected",)
INJECTED_COOKIE = "injected7336"

# -- text ------------------------------------------------------------------------------------------------

# Percent-encodings a decoder chokes on: lone or truncated %, non-hex digits, invalid UTF-8 (a lone
# continuation byte, an overlong form, a surrogate, a truncated sequence), NUL, CR/LF, latin-1 é.
MISENCODED: tuple[str, ...] = (
    "%", "%%", "%2", "%G1", "%zz", "%%41", "%FF", "%FF%FE", "%C3%28", "%C0%AF", "%ED%A0%80", "%E2%82",
    "%F4%90%80%80", "%00", "%0D%0A", "%0A", "%0D", "%E9", "%u00e9", "+%2B+", "%25", "%26%3D", "&&", "==",
    ";", "%3B", "%23frag", "#frag",
)
# Control characters, separators, quotes, odd Unicode (bidi overrides, zero-width, non-BMP, combining).
SPECIAL_CHARS = (
    "\x00", "\r", "\n", "\t", "\x0b", "\x1b", "\x7f", "\x85", " ", "&", "=", ";", ",", "+", "%", "#", "?", "/",
    "\\", '"', "'", "<", ">", "`", "{", "}", "é", "ß", "\u202e", "\u200b", "\ufeff", "\uffff", "\U0001f600",
    "\u0301", "İ", "ﬀ",
)

# Any Unicode scalar but surrogates (which no encoder writes).
any_char = st.characters(exclude_categories=("Cs",))
generated_text = st.text(any_char, max_size=40)
special_text = st.lists(st.sampled_from(SPECIAL_CHARS), min_size=1, max_size=8).map("".join)
marker_text = st.sampled_from(MARKERS).map(lambda marker: marker.payload)


@st.composite
def oversized_text(draw: st.DrawFn, max_size: int = 12_000) -> str:
    """A long value: one character repeated, or a marker repeated (bounded: a URL stays under the
    host's 64 KiB request line)."""
    unit = draw(st.one_of(st.sampled_from(["A", "é", "%", "\x00", "<", "\U0001f600"]), marker_text))
    size = draw(st.integers(min_value=min(300, max_size), max_value=max_size))
    return (unit * (size // len(unit) + 1))[:size]


def hostile_text(max_size: int = 12_000) -> st.SearchStrategy[str]:
    """A hostile value: generated, special, injection-laden or oversized."""
    return st.one_of(generated_text, special_text, marker_text, oversized_text(max_size),
                     st.tuples(generated_text, marker_text).map("".join))


# -- parameters ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One ``name=value`` pair and how it is written: ``quote`` (UTF-8, percent-encoded as a browser
    does), ``latin1`` (percent-encoded latin-1, as an old client would), ``raw`` (as is: raw CR/LF,
    NUL, non-ASCII… in a body, latin-1 octets in a URL) or ``bad`` (a mis-encoded value)."""

    name: str
    value: str
    how: str = "quote"

    def encode(self, *, in_url: bool) -> bytes:
        if self.how == "bad":
            return _quote(self.name) + b"=" + self.value.encode("ascii")
        if self.how == "latin1":
            return _quote(self.name, "latin-1") + b"=" + _quote(self.value, "latin-1")
        if self.how == "raw":
            text = f"{self.name}={self.value}"
            if in_url:  # a request line holds no CR/LF/space/controls (nor NBSP, a space to the host's parser)
                text = "".join(c if 0x20 < ord(c) < 0x7F or 0xA0 < ord(c) <= 0xFF else quote_plus(c) for c in text)
                return text.encode("latin-1")
            return text.encode("utf-8")
        return _quote(self.name) + b"=" + _quote(self.value)


def _quote(text: str, encoding: str = "utf-8") -> bytes:
    return quote_plus(text, encoding=encoding, errors="replace").encode("ascii")


def encode_params(params: Sequence[Param], *, in_url: bool) -> bytes:
    return b"&".join(param.encode(in_url=in_url) for param in params)


HOSTILE_NAMES = st.one_of(
    st.sampled_from(["", "=", "&", "%", "%FF", "é", "<script>", "a" * 300, "__proto__", "constructor",
                     "client_id[]", "redirect_uri.", "Client_ID", "CLIENT_ID", "client_id ", " state"]),
    generated_text,
    marker_text,
)


def params(plausible: Mapping[str, Sequence[str]], *, max_value: int = 12_000,
           rare: frozenset[str] = frozenset()) -> st.SearchStrategy[list[Param]]:
    """Parameters of one request: a subset of the endpoint's parameters with plausible or hostile values
    (the ``rare`` ones seldom: they switch the endpoint to another branch), some repeated, plus hostile
    extra names, once or twice, in any order, each encoded one way or another. (Every strategy is built
    once here: building them per example costs more than drawing from them.)"""
    hostile = hostile_text(max_value)
    values = {name: st.one_of(st.sampled_from(list(known)), st.sampled_from(list(known)), hostile) if known
              else hostile for name, known in plausible.items()}
    names = list(plausible)

    @st.composite
    def build(draw: st.DrawFn) -> list[Param]:
        chosen: list[Param] = []
        for name in names:
            if draw(st.integers(0, 9)) < (1 if name in rare else 7):  # most of them, mostly plausible
                chosen.append(_param(draw, name, values[name]))
        for _ in range(draw(st.integers(0, 3))):  # repeated names (RFC 6749 3.1 forbids them)
            if names:
                name = draw(st.sampled_from(names))
                chosen.append(_param(draw, name, values[name]))
        for _ in range(draw(st.integers(0, 3))):  # names the endpoint does not know, sometimes twice
            extra = _param(draw, draw(HOSTILE_NAMES), hostile)
            chosen.extend([extra, extra] if draw(st.integers(0, 3)) == 0 else [extra])
        if draw(st.integers(0, 19)) == 0:  # more fields than the broker takes (413)
            chosen.extend(Param(f"f{i}", "x") for i in range(draw(st.integers(60, 120))))
        return draw(st.permutations(chosen))

    return build()


HOW = st.sampled_from(["quote", "quote", "quote", "latin1", "raw", "bad"])
BAD_VALUE = st.lists(st.sampled_from(MISENCODED), min_size=1, max_size=3).map("".join)


def _param(draw: st.DrawFn, name: str, value: st.SearchStrategy[str]) -> Param:
    written = draw(HOW)
    if written == "bad":
        return Param(name, draw(BAD_VALUE), "bad")
    text = draw(value)
    if written == "latin1" and any(ord(char) > 0xFF for char in text):
        written = "quote"
    return Param(name, text, written)


# -- headers and cookies ---------------------------------------------------------------------------------


def _latin1(text: str) -> bytes:
    """A header value as a client puts it on the wire: latin-1 octets, no bare CR/LF (http.client refuses
    them; a front end would too)."""
    cleaned = text.replace("\r", " ").replace("\n", " ")
    return cleaned.encode("latin-1", errors="replace")


JUNK_B64 = st.one_of(
    st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode("ascii")),
    st.sampled_from(["", "=", "====", "!!!", "Zm9v", "Zm9vOg==", "OmJhcg==", "w6k6w6k=", "rp-basic:secret",
                     "cnAtYmFzaWM6", "cnAtYmFzaWM6JTNDc2NyaXB0JTNF"]),
    hostile_text(9000),
)
JUNK_JWT = st.one_of(
    st.sampled_from(["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.x", "...", ".", "a..b",
                     "eyJ" + "A" * 4000 + ".e30.x"]),
    st.lists(st.text("ABCDEFabcdef0123456789-_~+/=", max_size=40), min_size=1, max_size=4).map(".".join),
    hostile_text(9000),
)


SCHEMES = st.sampled_from(["Basic", "basic", "BASIC", "Bearer", "bearer", "Digest", "", "Basic  ", "Bearer\t",
                           "Negotiate", "Basic Basic"])


def authorization_header(valid: Sequence[str] = ()) -> st.SearchStrategy[bytes | None]:
    """``Authorization``: absent, one of ``valid``, Basic or Bearer with junk, another or no scheme."""
    known = st.sampled_from([value.encode("latin-1") for value in valid]) if valid else st.nothing()

    @st.composite
    def build(draw: st.DrawFn) -> bytes | None:
        choice = draw(st.integers(0, 7))
        if choice == 0:
            return None
        if choice == 1 and valid:
            return draw(known)
        scheme = draw(SCHEMES)
        credentials = draw(JUNK_B64 if scheme.lower().startswith("basic") else JUNK_JWT)
        return _latin1(f"{scheme} {credentials}" if scheme else credentials)

    return build()


CONTENT_TYPES = st.one_of(
    st.sampled_from([
        None, "application/x-www-form-urlencoded", "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8", "application/x-www-form-urlencoded; charset=latin-1",
        "APPLICATION/X-WWW-FORM-URLENCODED", "application/x-www-form-urlencoded;;;",
        " application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded, text/plain", "application/json", "application/jwt", "text/plain",
        "multipart/form-data; boundary=x", "multipart/form-data", "application/xml", "*/*", "", ";", "%",
        "application/x-www-form-urlencoded\x00", "application/x-www-form-urlencodedé",
    ]),
    hostile_text(200),
)


JOURNEY_IDS = st.one_of(st.just("A" * 43), st.text("ABCxyz019-_", max_size=50), generated_text)
MALFORMED_COOKIES = st.sampled_from([
    'consent={"ads":false}', "a", "=", "=x", ";", ";;;", '"', 'x="unterminated', SESSION_COOKIE,
    f"{SESSION_COOKIE}=", f'{SESSION_COOKIE}=""', "$Version=1", f"{JOURNEY_COOKIE_PREFIX}=x",
    f"{JOURNEY_COOKIE_PREFIX}{'A' * 16}",
])
SEPARATORS = st.sampled_from(["; ", ";", " ; ", ", ", ";\t"])


def cookie_header(valid: Sequence[str] = ()) -> st.SearchStrategy[bytes | None]:
    """``Cookie``: absent, the broker's own names with junk values (a session, journeys with made-up or
    well-formed ids), a consent banner's malformed cookie, empty pairs, duplicates, huge values."""
    pair = st.one_of(
        hostile_text(5000).map(lambda value: f"{SESSION_COOKIE}={value}"),
        st.tuples(JOURNEY_IDS, hostile_text(5000)).map(lambda pair: f"{JOURNEY_COOKIE_PREFIX}{pair[0][:16]}={pair[1]}"),
        st.tuples(HOSTILE_NAMES, hostile_text(2000)).map(lambda pair: f"{pair[0]}={pair[1]}"),
        MALFORMED_COOKIES,
        st.sampled_from(list(valid)) if valid else st.nothing(),
    )
    header = st.tuples(st.lists(pair, min_size=1, max_size=6), SEPARATORS).map(
        lambda parts: _latin1(parts[1].join(parts[0])))
    return st.one_of(st.none(), header, header, header)


EXTRA_HEADERS: tuple[tuple[str, st.SearchStrategy[str]], ...] = (
    ("X-Forwarded-For", st.one_of(st.sampled_from(["", ",", "1.2.3.4, ", "[::1]:80", "::1", "1.2.3.4:5:6",
                                                   "unknown", "999.1.1.1", "[", "]", "1.2.3.4%eth0"]),
                                  hostile_text(3000))),
    ("Origin", st.one_of(st.sampled_from(["null", "https://evil.example"]), hostile_text(500))),
    ("Referer", hostile_text(2000)),
    ("Accept-Language", st.one_of(st.just("fr-FR,fr;q=0.9"), hostile_text(500))),
    ("User-Agent", hostile_text(2000)),
    ("Accept", st.sampled_from(["*/*", "application/json", "text/html", "", "é", "<script>"])),
)


@st.composite
def extra_headers(draw: st.DrawFn) -> dict[str, bytes]:
    """Headers a proxy or a browser adds, with junk: X-Forwarded-For (read for the rate limits), Origin,
    Referer, Accept-Language, User-Agent, Accept."""
    headers: dict[str, bytes] = {}
    for name, values in EXTRA_HEADERS:
        if draw(st.integers(0, 5)) == 0:
            headers[name] = _latin1(draw(values))
    return headers


MAX_QUERY_BYTES = 32 * 1024

# -- requests --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileRequest:
    """One request as bytes on the wire; ``valid_token`` says it carries a real access token."""

    method: str
    path: str
    query: bytes = b""
    body: bytes | None = None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    carries_valid_token: bool = False

    @property
    def target(self) -> bytes:
        return self.path.encode("ascii") + (b"?" + self.query if self.query else b"")

    def __repr__(self) -> str:  # what hypothesis prints for a failing example: bounded
        headers = {name: value[:300] for name, value in self.headers.items()}
        body = None if self.body is None else self.body[:600]
        return (f"HostileRequest({self.method} {self.target[:600]!r} ({len(self.target)} bytes), "
                f"headers={headers!r}, body={body!r} ({len(self.body or b'')} bytes))")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def body_of(plausible: Mapping[str, Sequence[str]], rare: frozenset[str]) -> st.SearchStrategy[bytes]:
    """A POST body: form fields (mostly), or junk bytes, JSON, or more than 64 KiB."""
    form = params(plausible, rare=rare).map(lambda fields: encode_params(fields, in_url=False))
    return st.one_of(
        form, form, form, form, form, form,
        st.binary(max_size=2000),
        st.just(b'{"client_id": "rp-basic", "<script>": "\\u0000"}'),
        st.integers(64 * 1024 - 10, 70_000).map(lambda size: b"a=" + b"x" * size),
    )


def hostile_request(
    method: str | Sequence[str],
    path: str,
    plausible: Mapping[str, Sequence[str]],
    *,
    authorizations: Sequence[str] = (),
    cookies: Sequence[str] = (),
    valid_token: str | None = None,
    rare: frozenset[str] = frozenset(),
) -> st.SearchStrategy[HostileRequest]:
    """Requests to ``path``: hostile query (and body for POST), headers and cookies."""
    methods = st.just(method) if isinstance(method, str) else st.sampled_from(list(method))
    query_of = params(plausible, rare=rare).map(
        lambda fields: encode_params(fields, in_url=True)[:MAX_QUERY_BYTES])
    bodies = body_of(plausible, rare)
    authorization_of = authorization_header(authorizations)
    cookie_of = cookie_header(cookies)
    token = valid_token.encode() if valid_token else None
    extras = extra_headers()

    @st.composite
    def build(draw: st.DrawFn) -> HostileRequest:
        chosen = draw(methods)
        # The host refuses a request line beyond 64 KiB before the broker sees it (a front end, sooner).
        query = draw(query_of) if draw(st.integers(0, 4)) else b""
        if chosen == "POST" and draw(st.integers(0, 3)):
            query = b""  # a form post mostly has no query
        headers: dict[str, bytes] = dict(draw(extras))
        authorization = draw(authorization_of)
        if authorization is not None:
            headers["Authorization"] = authorization
        cookie = draw(cookie_of)
        if cookie is not None:
            headers["Cookie"] = cookie
        body = None
        if chosen == "POST":
            body = draw(bodies)
            content_type = draw(CONTENT_TYPES)
            if content_type is not None:
                headers["Content-Type"] = _latin1(content_type)
        carries = token is not None and token in (authorization or b"") + (body or b"")
        return HostileRequest(chosen, path, query, body, headers, carries_valid_token=carries)

    return build()


# -- the client ------------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Latin1Connection(http.client.HTTPSConnection):
    """Writes the request line as latin-1, as a raw client may (http.client insists on ASCII)."""

    def _encode_request(self, request: str) -> bytes:  # type: ignore[override]
        return request.encode("latin-1")


class RawClient:
    """Sends :class:`HostileRequest` values over one TLS connection, kept alive when the server allows
    it, opened again when the server closed it. ``sent`` counts the requests that got an answer."""

    def __init__(self, base_url: str) -> None:
        self._host = urlsplit(base_url).netloc
        self._context = ssl.create_default_context()
        self._connection: _Latin1Connection | None = None
        self.sent = 0
        self.connections = 0

    def send(self, request: HostileRequest) -> Answer:
        for attempt in range(2):
            connection = self._connect()
            try:
                connection.putrequest(request.method, request.target.decode("latin-1"), skip_host=False,
                                      skip_accept_encoding=True)
                for name, value in request.headers.items():
                    connection.putheader(name, value)
                body = request.body
                if body is not None:
                    connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                answer = Answer(response.status, response.getheaders(), response.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady, ssl.SSLEOFError):
                # The server closed a kept-alive connection between two requests: open another. A request
                # that gets no answer twice is a failure (and a timeout is never retried).
                self.close()
                if attempt:
                    raise
                continue
            if response.will_close:
                self.close()
            self.sent += 1
            return answer
        raise AssertionError("unreachable")

    def _connect(self) -> _Latin1Connection:
        if self._connection is None:
            self._connection = _Latin1Connection(self._host, timeout=30, context=self._context)
            self.connections += 1
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
