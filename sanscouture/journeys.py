"""Journeys: one browser sign-in in progress, from /authorize to the code (15 minutes at most).

A journey is the validated RP request, the upstream flow state (MSAL's flow, PSC's state, nonce and
verifier), the CSRF secret and the current step. It travels sealed (:mod:`sanscouture.sealing`) in a
``__Host-`` cookie of its own (``__Host-sc-j-<first 16 characters of its id>``), never in Table
Storage: an unauthenticated ``/authorize`` writes nothing, and each step costs no round trip.

What the design keeps (docs/design.md "State"):

* browser binding: only the browser that started the journey holds its cookie; the journey id seen in
  a URL (``state`` upstream, ``j`` in forms) is useless without it;
* CSRF: every form carries the journey's CSRF token, compared with the sealed one;
* single use: the code a journey ends with is inserted under a key derived from the journey id
  (:func:`grant_id_for`), so a replayed or double-submitted Confirmer finds it taken;
* lifetime: 15 minutes from /authorize, whatever the steps (the sealed expiry and the cookie's
  Max-Age both count down from the start);
* parallel tabs: each journey has its own cookie; at most :data:`MAX_JOURNEYS` live in a browser,
  the oldest being dropped when a new one starts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.cookies import clear_cookie
from sanscouture.cookies import set_cookie
from sanscouture.errors import RequestTooLargeError
from sanscouture.models import AuthorizationRequest
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.ports import Clock
from sanscouture.sealing import SealedTooLargeError
from sanscouture.sealing import Sealer
from sanscouture.web import Request
from sanscouture.web import Response

JOURNEY_TTL = 15 * 60
# The cookie outlives the journey a little: a form sent just too late says "too late" (400), not CSRF.
EXPIRED_GRACE = 15 * 60
JOURNEY_COOKIE_PREFIX = "__Host-sc-j-"
# The largest query a cross-site POST is turned into: room for the largest legitimate authorization
# request (an id_token_hint of 16 KiB, a state of 2 KiB, sanscouture/oidc/authorize.py MAX_BYTES).
MAX_REDIRECT_QUERY_BYTES = 24 * 1024
MAX_JOURNEYS = 5  # sign-ins in progress in one browser (tabs); a sealed journey is about 1.5 KiB
# secrets.token_urlsafe(32): 43 base64url characters. Anything else is not one of our ids.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class Step:
    """Where a journey stands; each endpoint accepts only the steps it can continue."""

    MIRE = "mire"
    ENTRA = "entra"
    PAIRING = "pairing"
    CONFIRM = "confirm"
    REVERIFY = "reverify"  # the "Vérification périodique" page: the pairing must be proven again
    PSC = "psc"
    LOGOUT = "logout"
    # « Mes appairages » (/compte, sanscouture/account.py): no relying party's request.
    ACCOUNT_ENTRA = "account_entra"  # sent to Entra for a fresh authentication
    ACCOUNT = "account"  # authenticated: the page, the removal's confirmation and form
    ACCOUNT_REMOVED = "account_removed"  # the pairing was removed: only the result page remains


class Purpose:
    """Why the journey went to PSC."""

    PAIR = "pair"  # first sign-in: link the Entra account to this identity
    OTHER = "other"  # shared workstation: this identity, this once, pairing untouched
    DIRECT = "direct"  # the "mire" choice: PSC without Entra, this once
    REVERIFY = "reverify"  # periodic re-verification: the pairing's own identity, proven again


@dataclass(frozen=True)
class Journey:
    id: str
    csrf: str
    step: str
    request: AuthorizationRequest | None = None
    entra_flow: dict[str, Any] | None = None
    psc_flow: dict[str, Any] | None = None
    psc_purpose: str | None = None
    account: EntraAccount | None = None
    started_at: int = 0  # when /authorize was called: an authentication "during this journey" is later
    shown_sub: str | None = None  # the PSC sub the confirmation page showed: Confirmer signs in as it only
    shown_etag: str | None = None  # the version of the pairing row that page was read from
    shown_pairing_id: str = ""  # that pairing's id: the session a Confirmer opens is bound to it
    shown_identity: PscIdentity | None = None  # the identity that page showed, as that row held it
    shown_due_at: int = 0  # when that pairing's re-verification falls due (0: not known, just paired)
    entra_asked_at: int = 0  # when the broker last sent the person to Entra ID
    entra_fresh_asked: bool = False  # the broker asked Entra for a fresh authentication (before a pairing)

    def advance(self, **changes: Any) -> Journey:
        return replace(self, **changes)

    def csrf_ok(self, token: str | None) -> bool:
        # Bytes: compare_digest raises TypeError on a str that is not ASCII (a hostile form field).
        return bool(token) and hmac.compare_digest(self.csrf.encode("utf-8"), (token or "").encode("utf-8"))

    def expired(self, now: float) -> bool:
        """Older than 15 minutes from /authorize, whatever its steps."""
        return now >= self.started_at + JOURNEY_TTL

    @property
    def cookie_name(self) -> str:
        return journey_cookie_name(self.id)

    @property
    def grant_id(self) -> str:
        return grant_id_for(self.id)


def journey_cookie_name(journey_id: str) -> str:
    return JOURNEY_COOKIE_PREFIX + journey_id[:16]


def grant_id_for(journey_id: str) -> str:
    """The key of the code a journey ends with: one journey, one code (the insert fails the second time)."""
    return hashlib.sha256(f"journey:{journey_id}".encode()).hexdigest()[:32]


def cookieless_post_as_get(request: Request, issuer: str, path: str) -> Response | None:
    """A cross-site form POST carries no SameSite=Lax cookie: answered as is, the broker would see
    neither the browser's session nor its journeys. Such a POST is answered with 303 to the same
    parameters as a GET, a top-level navigation that carries Lax cookies (RFC 6265bis 5.4.7.1).
    None when the request is not such a POST."""
    if request.method != "POST" or not request.form:
        return None
    cookies = request.cookies
    if SESSION_COOKIE in cookies or any(name.startswith(JOURNEY_COOKIE_PREFIX) for name in cookies):
        return None
    # A body may hold what a query may not (raw CR/LF, spaces, non-ASCII): percent-encode every octet
    # but the separators and existing escapes, so that the GET parses to exactly the POST's fields and
    # no header can be split (RFC 9110 5.5).
    query = quote(request.body.decode("utf-8", "replace"), safe="%&=+")
    if len(query) > MAX_REDIRECT_QUERY_BYTES:
        # A body of up to 64 KiB would make a Location header no client reads (http.client stops at 64
        # KiB, proxies far sooner): refused as too large, as the GET it would become.
        raise RequestTooLargeError(detail=f"cross-site POST of {len(query)} bytes as a query")
    return Response.redirect(f"{issuer}{path}?{query}", status=303)


class JourneyStore:
    """Journeys sealed in their own cookies (no storage round trip)."""

    def __init__(self, sealer: Sealer, clock: Clock = time.time) -> None:
        self._sealer = sealer
        self._clock = clock

    def new(self, step: str, request: AuthorizationRequest | None) -> Journey:
        return Journey(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            step=step,
            request=request,
            started_at=int(self._clock()),
        )

    def load(self, cookies: Mapping[str, str], journey_id: str | None) -> Journey | None:
        """The journey named ``journey_id`` if this browser holds it, unexpired and untampered."""
        if not journey_id or not _TOKEN.fullmatch(journey_id):
            return None
        document = self._sealer.open(cookies.get(journey_cookie_name(journey_id)))
        if document is None or document.get("id") != journey_id:
            return None
        try:
            return _journey(document)
        except (KeyError, TypeError, ValueError):
            return None

    def cookie(self, journey: Journey) -> str:
        """The Set-Cookie that stores ``journey`` as it now is; its lifetime still counts from the start.

        A shown identity too large for a cookie (many activities) is left out: Confirmer then reads
        the pairing again instead of trusting the page's copy.
        """
        remaining = max(int(journey.started_at + JOURNEY_TTL + EXPIRED_GRACE - self._clock()), 1)
        try:
            value = self._sealer.seal(_data(journey), ttl=remaining)
        except SealedTooLargeError:
            if journey.shown_identity is None:
                raise
            value = self._sealer.seal(_data(replace(journey, shown_identity=None, shown_etag=None)), ttl=remaining)
        return set_cookie(journey.cookie_name, value, max_age=remaining)

    def started(self, cookies: Mapping[str, str], journey: Journey) -> tuple[str, ...]:
        """The Set-Cookies of a new journey: its own, and the removal of the oldest ones beyond
        :data:`MAX_JOURNEYS` (a site that opens many sign-ins must not swell every request)."""
        live: list[tuple[int, str]] = []
        for name, value in cookies.items():
            if name.startswith(JOURNEY_COOKIE_PREFIX):
                document = self._sealer.open(value)
                live.append((int(document.get("started_at", 0)) if document else 0, name))
        live.sort()
        dropped = live[: max(len(live) - (MAX_JOURNEYS - 1), 0)]
        return (self.cookie(journey), *(clear_cookie(name) for _, name in dropped))

    def ended(self, journey: Journey) -> str:
        """The Set-Cookie that removes a finished, cancelled or refused journey from the browser."""
        return clear_cookie(journey.cookie_name)


def _data(journey: Journey) -> dict[str, Any]:
    data = {
        "id": journey.id,
        "csrf": journey.csrf,
        "step": journey.step,
        "request": journey.request.to_dict() if journey.request else None,
        "entra_flow": journey.entra_flow,
        "psc_flow": journey.psc_flow,
        "psc_purpose": journey.psc_purpose,
        "account": journey.account.to_dict() if journey.account else None,
        "started_at": journey.started_at,
        "shown_sub": journey.shown_sub,
        "shown_etag": journey.shown_etag,
        "shown_pairing_id": journey.shown_pairing_id or None,
        "shown_identity": journey.shown_identity.to_dict() if journey.shown_identity else None,
        "shown_due_at": journey.shown_due_at,
        "entra_asked_at": journey.entra_asked_at,
        "entra_fresh_asked": journey.entra_fresh_asked,
    }
    return {key: value for key, value in data.items() if value not in (None, False, 0)}


def _journey(data: Mapping[str, Any]) -> Journey:
    return Journey(
        id=data["id"],
        csrf=data["csrf"],
        step=data["step"],
        request=AuthorizationRequest.from_dict(data["request"]) if data.get("request") else None,
        entra_flow=data.get("entra_flow"),
        psc_flow=data.get("psc_flow"),
        psc_purpose=data.get("psc_purpose"),
        account=EntraAccount.from_dict(data["account"]) if data.get("account") else None,
        started_at=int(data.get("started_at") or 0),
        shown_sub=data.get("shown_sub"),
        shown_etag=data.get("shown_etag"),
        shown_pairing_id=str(data.get("shown_pairing_id") or ""),
        shown_identity=PscIdentity.from_dict(data["shown_identity"]) if data.get("shown_identity") else None,
        shown_due_at=int(data.get("shown_due_at") or 0),
        entra_asked_at=int(data.get("entra_asked_at") or 0),
        entra_fresh_asked=bool(data.get("entra_fresh_asked")),
    )
