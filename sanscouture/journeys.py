"""Journeys: one browser sign-in in progress, from /authorize to the code (15 minutes at most).

The journey row holds the validated RP request, the upstream flow state (MSAL's flow dict, PSC's
state/nonce/verifier), the CSRF secret and the current step. It is bound to the browser by the
``__Host-sc-browser`` cookie (the row keeps its SHA-256): a journey id seen in a URL is useless
without that cookie. Steps advance with ETag-conditional replaces, and the last step consumes the
row, so a double-submitted form cannot issue two codes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from sanscouture.cookies import BROWSER_COOKIE
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.cookies import set_cookie
from sanscouture.models import AuthorizationRequest
from sanscouture.models import EntraAccount
from sanscouture.models import Row
from sanscouture.ports import Clock
from sanscouture.ports import RowStore
from sanscouture.web import Request
from sanscouture.web import Response

JOURNEY_TTL = 15 * 60
# secrets.token_urlsafe(32): 43 base64url characters. Anything else is not one of our ids.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class Step:
    """Where a journey stands; each endpoint accepts only the steps it can continue."""

    MIRE = "mire"
    ENTRA = "entra"
    PAIRING = "pairing"
    CONFIRM = "confirm"
    PSC = "psc"
    LOGOUT = "logout"


class Purpose:
    """Why the journey went to PSC."""

    PAIR = "pair"  # first sign-in: link the Entra account to this identity
    OTHER = "other"  # shared workstation: this identity, this once, pairing untouched
    DIRECT = "direct"  # the "mire" choice: PSC without Entra, this once


@dataclass(frozen=True)
class Journey:
    id: str
    browser_hash: str
    csrf: str
    step: str
    request: AuthorizationRequest | None = None
    entra_flow: dict[str, Any] | None = None
    psc_flow: dict[str, Any] | None = None
    psc_purpose: str | None = None
    account: EntraAccount | None = None
    started_at: int = 0  # when /authorize was called: an authentication "during this journey" is later
    shown_sub: str | None = None  # the PSC sub the confirmation page showed: Confirmer signs in as it only
    entra_asked_at: int = 0  # when the broker last sent the person to Entra ID
    entra_fresh_asked: bool = False  # the broker asked Entra for a fresh authentication (before a pairing)
    row: Row | None = field(default=None, compare=False, repr=False)

    def advance(self, **changes: Any) -> Journey:
        return replace(self, **changes)

    def csrf_ok(self, token: str | None) -> bool:
        # Bytes: compare_digest raises TypeError on a str that is not ASCII (a hostile form field).
        return bool(token) and hmac.compare_digest(self.csrf.encode("utf-8"), (token or "").encode("utf-8"))

    def belongs_to(self, browser_cookie: str | None) -> bool:
        return bool(browser_cookie) and hmac.compare_digest(self.browser_hash, browser_hash(browser_cookie or ""))


def browser_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_browser_value() -> str:
    return secrets.token_urlsafe(32)


def browser_binding(cookies: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The browser's journey cookie value: reused when present, else a new one with its Set-Cookie."""
    value = cookies.get(BROWSER_COOKIE)
    if value and _TOKEN.fullmatch(value):
        return value, ()
    value = new_browser_value()
    return value, (set_cookie(BROWSER_COOKIE, value),)


def cookieless_post_as_get(request: Request, issuer: str, path: str) -> Response | None:
    """A cross-site form POST carries no SameSite=Lax cookie: answered as is, the broker would see
    neither the browser's session nor its binding, and a new ``__Host-sc-browser`` cookie would
    replace the one that journeys in progress in other tabs are bound to. Such a POST is answered
    with 303 to the same parameters as a GET, a top-level navigation that carries Lax cookies
    (RFC 6265bis 5.4.7.1). None when the request is not such a POST."""
    if request.method != "POST" or not request.form:
        return None
    if BROWSER_COOKIE in request.cookies or SESSION_COOKIE in request.cookies:
        return None
    return Response.redirect(f"{issuer}{path}?{request.body.decode('utf-8', 'replace')}", status=303)


class JourneyStore:
    """The ``journeys`` table: PartitionKey = journey id."""

    def __init__(self, store: RowStore, clock: Clock = time.time) -> None:
        self._store = store
        self._clock = clock

    def new(self, browser_value: str, step: str, request: AuthorizationRequest | None) -> Journey:
        """A journey not yet stored (its id can be handed upstream as ``state`` before the write)."""
        return Journey(
            id=secrets.token_urlsafe(32),
            browser_hash=browser_hash(browser_value),
            csrf=secrets.token_urlsafe(32),
            step=step,
            request=request,
            started_at=int(self._clock()),
        )

    def insert(self, journey: Journey) -> Journey:
        """Store a new journey for JOURNEY_TTL seconds (one round trip)."""
        row = self._store.save(journey.id, "j", _data(journey), expires_in=JOURNEY_TTL)
        return replace(journey, row=row)

    def load(self, journey_id: str | None) -> Journey | None:
        if not journey_id or not _TOKEN.fullmatch(journey_id):
            return None
        row = self._store.find(journey_id, "j")
        return _journey(row) if row else None

    def save(self, journey: Journey) -> Journey | None:
        """Store the next step, only if nobody else advanced the journey meanwhile (else None)."""
        if journey.row is None:
            raise ValueError("journey was not loaded from storage")
        # The remaining lifetime is kept, not renewed: a journey lasts 15 minutes from /authorize.
        remaining = (journey.row.expires_at or 0) - self._clock()
        updated = self._store.replace(journey.row, _data(journey), expires_in=remaining if remaining > 0 else 1)
        return replace(journey, row=updated) if updated else None

    def finish(self, journey: Journey) -> bool:
        """Consume the journey: True for exactly one caller (a double submit gets False).

        The row was read by this request, so its ETag is known: one conditional delete suffices.
        """
        if journey.row is None:
            return self._store.consume(journey.id, "j") is not None
        return self._store.consume_row(journey.row)


def _data(journey: Journey) -> dict[str, Any]:
    return {
        "browser_hash": journey.browser_hash,
        "csrf": journey.csrf,
        "step": journey.step,
        "request": journey.request.to_dict() if journey.request else None,
        "entra_flow": journey.entra_flow,
        "psc_flow": journey.psc_flow,
        "psc_purpose": journey.psc_purpose,
        "account": journey.account.to_dict() if journey.account else None,
        "started_at": journey.started_at,
        "shown_sub": journey.shown_sub,
        "entra_asked_at": journey.entra_asked_at,
        "entra_fresh_asked": journey.entra_fresh_asked,
    }


def _journey(row: Row) -> Journey:
    data = row.data
    return Journey(
        id=row.partition,
        browser_hash=data["browser_hash"],
        csrf=data["csrf"],
        step=data["step"],
        request=AuthorizationRequest.from_dict(data["request"]) if data.get("request") else None,
        entra_flow=data.get("entra_flow"),
        psc_flow=data.get("psc_flow"),
        psc_purpose=data.get("psc_purpose"),
        account=EntraAccount.from_dict(data["account"]) if data.get("account") else None,
        started_at=int(data.get("started_at") or 0),
        shown_sub=data.get("shown_sub"),
        entra_asked_at=int(data.get("entra_asked_at") or 0),
        entra_fresh_asked=bool(data.get("entra_fresh_asked")),
        row=row,
    )
