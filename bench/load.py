"""The load client of ``make bench``: a browser and a confidential relying party doing the authorization
code flow against an OpenID Provider, the broker or its peer, with the same code for both.

One flow is what a browser and a confidential relying party do together
(OpenID Connect Core 1.0, section 3.1):

1. GET the authorization endpoint with PKCE S256 (RFC 7636), nonce and state, in a fresh
   cookie jar, and follow the OP's redirects (its login and consent interactions) until it
   redirects to redirect_uri with a code; check state and iss (RFC 9207).
2. POST the code to the token endpoint with client_secret_basic (RFC 6749, 2.3.1).
3. Verify the ID token signature against the OP's JWKS and its claims (Core 3.1.3.7).
4. GET the userinfo endpoint with the access token (Core 5.3) and check sub.

It runs N flows with C concurrent workers (threads, one HTTP session each, keep-alive), and
measures the token endpoint alone: N codes are issued first, then redeemed while only the POST /token
round trips are timed (their ID tokens are verified afterwards). A silent flow (``prompt=none``) keeps
the browser's session of a first interactive sign-in. It reads the OP process's CPU time from /proc:
it runs in this process, never in the OP's, so its own CPU is not counted.

Adapted from the reference peer client of issue 9 (the figures of the issue come from it).
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
import re
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import quote
from urllib.parse import urljoin
from urllib.parse import urlsplit

import jwt
import requests

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
CLOCK_LEEWAY_S = 5


class FlowError(Exception):
    """A step of the flow got an answer a conforming OP would not give."""


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scope: str
    verify: bool | str
    timeout_s: float
    extra_params: tuple[tuple[str, str], ...] = ()
    press: tuple[str, ...] = ()
    hints: tuple[tuple[str, str], ...] = ()  # (netloc, login_hint) for upstream simulators


@dataclass(frozen=True)
class Code:
    """An authorization code with the PKCE verifier and nonce of its request."""

    code: str
    verifier: str
    nonce: str


@dataclass
class PhaseResult:
    phase: str
    concurrency: int
    attempted: int
    ok: int
    errors: int
    wall_s: float
    rate_per_s: float
    median_ms: float
    p95_ms: float
    op_cpu_ms_per_op: float | None
    client_cpu_ms_per_op: float
    error_samples: list[str] = field(default_factory=list)
    latencies_s: tuple[float, ...] = field(default=(), repr=False)


def combined(parts: Sequence[PhaseResult]) -> PhaseResult:
    """One result from the rounds of one phase: counts and times added, median and p95 over every call,
    CPU per operation over all of them."""
    first = parts[0]
    attempted = sum(part.attempted for part in parts)
    ok = sum(part.ok for part in parts)
    wall_s = sum(part.wall_s for part in parts)
    latencies = sorted(latency for part in parts for latency in part.latencies_s)
    op_cpu = None
    if all(part.op_cpu_ms_per_op is not None for part in parts):
        op_cpu = sum((part.op_cpu_ms_per_op or 0.0) * part.attempted for part in parts) / max(attempted, 1)
    return PhaseResult(
        phase=first.phase,
        concurrency=first.concurrency,
        attempted=attempted,
        ok=ok,
        errors=sum(part.errors for part in parts),
        wall_s=wall_s,
        rate_per_s=ok / wall_s if wall_s else 0.0,
        median_ms=1000 * statistics.median(latencies) if latencies else math.nan,
        p95_ms=1000 * percentile(latencies, 0.95) if latencies else math.nan,
        op_cpu_ms_per_op=op_cpu,
        client_cpu_ms_per_op=sum(part.client_cpu_ms_per_op * part.attempted for part in parts) / max(attempted, 1),
        error_samples=[sample for part in parts for sample in part.error_samples][:5],
        latencies_s=tuple(latencies),
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class ProcessProbe:
    """Reads CPU time and memory of the OP process from /proc (proc(5))."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def cpu_s(self) -> float | None:
        if self.pid is None:
            return None
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            # Fields after the parenthesised command name; utime and stime are 14 and 15.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def memory_kib(self) -> dict[str, int]:
        if self.pid is None:
            return {}
        found: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmHWM", "VmRSS"):
                    found[name] = int(value.split()[0])
        return found


class SigningKeys:
    """The OP's JWKS, fetched once and refetched when an unknown kid shows up (rotation)."""

    def __init__(self, jwks_uri: str, settings: Settings) -> None:
        self._uri = jwks_uri
        self._settings = settings
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self.refresh()

    def refresh(self) -> None:
        response = requests.get(self._uri, timeout=self._settings.timeout_s, verify=self._settings.verify)
        response.raise_for_status()
        keys = [key for key in jwt.PyJWKSet.from_dict(response.json()).keys if key.public_key_use in (None, "sig")]
        by_kid: dict[str | None, jwt.PyJWK] = {key.key_id: key for key in keys}
        if len(keys) == 1:
            by_kid[None] = keys[0]  # a lone key may be used by ID tokens without kid
        with self._lock:
            self._keys = by_kid

    def get(self, kid: str | None) -> jwt.PyJWK:
        key = self._keys.get(kid)
        if key is None:
            self.refresh()
            key = self._keys.get(kid)
        if key is None:
            raise FlowError(f"no signing key with kid {kid!r} in the JWKS")
        return key


class RelyingParty:
    """One user agent plus one confidential client: a worker's own HTTP session."""

    def __init__(self, settings: Settings, metadata: dict[str, Any], keys: SigningKeys) -> None:
        self.settings = settings
        self.metadata = metadata
        self.keys = keys
        self.http = requests.Session()
        self.http.verify = settings.verify
        # client_secret_basic: form-encode id and secret before Basic (RFC 6749, 2.3.1).
        self.basic_auth = (quote(settings.client_id, safe=""), quote(settings.client_secret, safe=""))
        target = urlsplit(settings.redirect_uri)
        self._redirect_target = (target.scheme, target.netloc, target.path)

    def close(self) -> None:
        self.http.close()

    def connect(self) -> None:
        """Open this party's kept-alive connection to the provider (its JWK Set, untimed), as a service
        already connected does: a phase's timing then holds no TCP or TLS set-up to the provider."""
        self.http.get(self.metadata["jwks_uri"], timeout=self.settings.timeout_s).raise_for_status()

    def authorize(self, *, silent: bool = False) -> Code:
        """Front channel: authorization request to code, as a new browser session; ``silent``: with
        ``prompt=none`` in this browser's session (OpenID Connect Core 3.1.2.1)."""
        if not silent:
            self.http.cookies.clear()
        verifier = secrets.token_urlsafe(48)
        state = secrets.token_urlsafe(16)
        nonce = secrets.token_urlsafe(16)
        params = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": self.settings.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": b64url(hashlib.sha256(verifier.encode("ascii")).digest()),
            "code_challenge_method": "S256",
            **dict(self.settings.extra_params),
        }
        if silent:
            params["prompt"] = "none"
        response = self.http.get(
            self.metadata["authorization_endpoint"], params=params,
            allow_redirects=False, timeout=self.settings.timeout_s,
        )
        for _ in range(MAX_REDIRECTS):
            if response.status_code == 200 and self.settings.press:
                response = self._press(response)
                continue
            if response.status_code not in REDIRECT_STATUSES:
                raise FlowError(f"{urlsplit(response.url).path} answered {response.status_code}, not a redirect")
            location = urljoin(response.url, response.headers["Location"])
            parts = urlsplit(location)
            if (parts.scheme, parts.netloc, parts.path) == self._redirect_target:
                return Code(self._code_from(parts.query, state), verifier, nonce)
            for netloc, hint in self.settings.hints:
                if parts.netloc == netloc and "login_hint=" not in parts.query:
                    location += ("&" if parts.query else "?") + "login_hint=" + quote(hint, safe="")
            response = self.http.get(location, allow_redirects=False, timeout=self.settings.timeout_s)
        raise FlowError(f"more than {MAX_REDIRECTS} redirects before reaching redirect_uri")

    def _press(self, response: requests.Response) -> requests.Response:
        """The user's click: submit the page's form whose button value is one of --press."""
        for form in re.finditer(r"<form\b([^>]*)>(.*?)</form>", response.text, re.S | re.I):
            attrs, body = form.group(1), form.group(2)
            fields: dict[str, str] = {}
            button: tuple[str, str] | None = None
            for tag in re.finditer(r"<(input|button)\b([^>]*)>", body, re.I):
                a = {k.lower(): html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', tag.group(2))}
                if tag.group(1).lower() == "input" and a.get("type", "text") == "hidden" and "name" in a:
                    fields[a["name"]] = a.get("value", "")
                elif a.get("value") in self.settings.press and "name" in a and button is None:
                    button = (a["name"], a["value"])
            if button is not None:
                action = re.search(r'action="([^"]*)"', attrs)
                target = urljoin(response.url, html.unescape(action.group(1))) if action else response.url
                fields[button[0]] = button[1]
                return self.http.post(target, data=fields, allow_redirects=False, timeout=self.settings.timeout_s)
        raise FlowError(f"{urlsplit(response.url).path}: page without a button among {self.settings.press}")

    def _code_from(self, query: str, state: str) -> str:
        answer = {name: values[0] for name, values in parse_qs(query).items()}
        if "error" in answer:
            raise FlowError(f"authorization error {answer['error']}: {answer.get('error_description', '')}")
        if answer.get("state") != state:
            raise FlowError("state in the authorization response does not match the request")
        iss_expected = self.metadata.get("authorization_response_iss_parameter_supported", False)
        if (iss_expected or "iss" in answer) and answer.get("iss") != self.settings.issuer:
            raise FlowError("iss in the authorization response is not the issuer (RFC 9207)")
        if not answer.get("code"):
            raise FlowError("authorization response without code")
        return answer["code"]

    def redeem(self, code: Code) -> dict[str, Any]:
        """Back channel: POST /token with client_secret_basic and the PKCE verifier."""
        response = self.http.post(
            self.metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code.code,
                "redirect_uri": self.settings.redirect_uri,
                "code_verifier": code.verifier,
            },
            auth=self.basic_auth,
            timeout=self.settings.timeout_s,
        )
        if response.status_code != 200:
            raise FlowError(f"token endpoint answered {response.status_code}: {response.text[:200]}")
        tokens = response.json()
        if str(tokens.get("token_type", "")).lower() != "bearer" or not tokens.get("access_token"):
            raise FlowError("token response without a Bearer access_token")
        if not tokens.get("id_token"):
            raise FlowError("token response without id_token")
        return tokens

    def check_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """Signature against the JWKS, then iss, aud, exp, iat, nonce (Core 3.1.3.7)."""
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") != "RS256":
                raise FlowError(f"ID token signed with {header.get('alg')!r}, expected RS256")
            claims = jwt.decode(
                id_token,
                key=self.keys.get(header.get("kid")).key,
                algorithms=["RS256"],
                audience=self.settings.client_id,
                issuer=self.settings.issuer,
                leeway=CLOCK_LEEWAY_S,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise FlowError(f"ID token rejected: {exc}") from exc
        if claims.get("nonce") != nonce:
            raise FlowError("ID token nonce does not match the request")
        if "azp" in claims and claims["azp"] != self.settings.client_id:
            raise FlowError("ID token azp is not this client")
        return claims

    def userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        response = self.http.get(
            self.metadata["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=self.settings.timeout_s,
        )
        if response.status_code != 200:
            raise FlowError(f"userinfo endpoint answered {response.status_code}")
        info = response.json()
        if info.get("sub") != subject:
            raise FlowError("userinfo sub differs from the ID token sub")
        return info

    def full_flow(self, _item: object = None, *, silent: bool = False) -> str:
        code = self.authorize(silent=silent)
        tokens = self.redeem(code)
        claims = self.check_id_token(tokens["id_token"], code.nonce)
        self.userinfo(tokens["access_token"], claims["sub"])
        return claims["sub"]


def discover(settings: Settings) -> dict[str, Any]:
    """OpenID Provider metadata; its issuer must equal the configured one (Discovery 4.3)."""
    url = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
    response = requests.get(url, timeout=settings.timeout_s, verify=settings.verify)
    response.raise_for_status()
    metadata = response.json()
    if metadata.get("issuer") != settings.issuer:
        raise FlowError(f"discovery issuer {metadata.get('issuer')!r} is not {settings.issuer!r}")
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        if not metadata.get(endpoint):
            raise FlowError(f"discovery document has no {endpoint}")
    return metadata


def run_phase(
    phase: str,
    concurrency: int,
    items: Sequence[Any],
    work: Callable[[RelyingParty, Any], Any],
    new_party: Callable[[], RelyingParty],
    probe: ProcessProbe,
) -> tuple[PhaseResult, list[Any]]:
    """Runs work(party, item) over items on `concurrency` threads, timing each call."""
    lock = threading.Lock()
    pending = iter(enumerate(items))
    outputs: list[Any] = [None] * len(items)
    latencies: list[float] = []
    errors: list[str] = []
    start_gate = threading.Barrier(concurrency + 1)

    def worker() -> None:
        party = new_party()
        start_gate.wait()
        try:
            while True:
                with lock:
                    next_item = next(pending, None)
                if next_item is None:
                    return
                index, item = next_item
                began = time.perf_counter()
                try:
                    outputs[index] = work(party, item)
                except Exception as exc:  # any failure counts against the phase, with its cause
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append(time.perf_counter() - began)
        finally:
            party.close()

    threads = [threading.Thread(target=worker, name=f"{phase}-{n}") for n in range(concurrency)]
    for thread in threads:
        thread.start()
    start_gate.wait()  # every worker's party is ready (a silent one has signed in): the timed part begins
    op_cpu_before, client_cpu_before = probe.cpu_s(), time.process_time()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - began
    op_cpu_after, client_cpu_after = probe.cpu_s(), time.process_time()

    ordered = sorted(latencies)
    done = max(len(items), 1)
    op_cpu = None
    if op_cpu_before is not None and op_cpu_after is not None:
        op_cpu = 1000 * (op_cpu_after - op_cpu_before) / done
    result = PhaseResult(
        phase=phase,
        concurrency=concurrency,
        attempted=len(items),
        ok=len(latencies),
        errors=len(errors),
        wall_s=wall_s,
        rate_per_s=len(latencies) / wall_s if wall_s else 0.0,
        median_ms=1000 * statistics.median(ordered) if ordered else math.nan,
        p95_ms=1000 * percentile(ordered, 0.95) if ordered else math.nan,
        op_cpu_ms_per_op=op_cpu,
        client_cpu_ms_per_op=1000 * (client_cpu_after - client_cpu_before) / done,
        error_samples=errors[:5],
        latencies_s=tuple(ordered),
    )
    return result, outputs


def token_phase(
    concurrency: int, flows: int, new_party: Callable[[], RelyingParty], probe: ProcessProbe,
) -> list[PhaseResult]:
    """Issues `flows` codes, then times only their redemption at the token endpoint."""
    issued, codes = run_phase(
        "authorize->code", concurrency, range(flows), lambda party, _: party.authorize(), new_party, probe,
    )
    codes = [code for code in codes if code is not None]
    redeemed, responses = run_phase("POST /token", concurrency, codes, RelyingParty.redeem, new_party, probe)
    checker = new_party()
    try:
        for code, tokens in zip(codes, responses, strict=True):
            if tokens is None:
                continue
            try:
                checker.check_id_token(tokens["id_token"], code.nonce)
            except FlowError as exc:
                redeemed.errors += 1
                redeemed.ok -= 1
                redeemed.error_samples.append(f"after timing: {exc}")
    finally:
        checker.close()
    redeemed.rate_per_s = redeemed.ok / redeemed.wall_s if redeemed.wall_s else 0.0
    return [issued, redeemed]




def silent_phase(
    concurrency: int, flows: int, new_party: Callable[[], RelyingParty], probe: ProcessProbe,
) -> PhaseResult:
    """``flows`` silent sign-ins (``prompt=none`` with the session of one interactive sign-in per worker),
    each to the ID token verified and userinfo."""

    def signed_in_party() -> RelyingParty:
        party = new_party()
        party.full_flow()  # untimed: before the phase's gate
        return party

    result, _ = run_phase("prompt=none", concurrency, range(flows),
                          lambda party, _: party.full_flow(silent=True), signed_in_party, probe)
    return result
