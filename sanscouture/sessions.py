"""Broker sessions: at most 4 hours, 30 minutes idle (like PSC's own SSO session).

A session lets ``prompt=none`` from another service succeed silently. It travels sealed
(:mod:`sanscouture.sealing`) in the ``__Host-sc-session`` cookie: who (the Entra account and the PSC
``sub`` of its pairing), since when (``created_at``, never extended), the Entra ``auth_time`` and the
last use (idle clock). No row is read or written to use it.

Ending one (logout, another person's sign-in, a newer sign-in) clears the cookie and lists its id in
the pairing's row until it would have expired anyway (:meth:`BindingStore.revoke_session`): every
use of a session reads that row to check the pairing, so a copy of the cookie kept elsewhere is
refused too. Removing the pairing ends every session of the account.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.cookies import clear_cookie
from sanscouture.cookies import set_cookie
from sanscouture.models import EntraAccount
from sanscouture.ports import Clock
from sanscouture.sealing import Sealer


@dataclass(frozen=True)
class BrokerSession:
    """Who is signed in at the broker in this browser, and since when."""

    sid: str
    account: EntraAccount
    sub: str  # the PSC sub of the pairing the session was opened with
    national_id: str  # its national identifier, masked (for the audit of a logout)
    auth_time: int
    created_at: int
    last_seen: int
    # The relying parties with a back-channel logout URI this session signed in to: told when it ends.
    bcl_clients: tuple[str, ...] = ()
    # The id of the pairing it was opened through (Binding.pairing_id): no other pairing admits it.
    pairing_id: str = ""

    @property
    def public_sid(self) -> str:
        """The ``sid`` claim of the broker's tokens: derived from the session id, useless to replay."""
        return hashlib.sha256(self.sid.encode()).hexdigest()[:32]


class SessionStore:
    """Sessions sealed in the browser's ``__Host-sc-session`` cookie."""

    def __init__(self, sealer: Sealer, max_age: int, idle_timeout: int, clock: Clock = time.time) -> None:
        self._sealer = sealer
        self._max_age = max_age
        self._idle = idle_timeout
        self._clock = clock

    def create(
        self, account: EntraAccount, sub: str, auth_time: int, national_id: str, pairing_id: str = "",
    ) -> BrokerSession:
        now = int(self._clock())
        return BrokerSession(secrets.token_urlsafe(32), account, sub, national_id, auth_time, now, now,
                             pairing_id=pairing_id)

    def find(self, value: str | None) -> BrokerSession | None:
        """The live session this cookie holds, or None (absent, forged, over 4 h, or idle too long)."""
        document = self._sealer.open(value)
        if document is None:
            return None
        try:
            session = _session(document)
        except (KeyError, TypeError, ValueError):
            return None
        now = int(self._clock())
        if now - session.created_at > self._max_age or now - session.last_seen > self._idle:
            return None
        return session

    def touch(self, session: BrokerSession) -> BrokerSession:
        """Record activity (the idle clock restarts); never extends past the 4-hour limit."""
        return replace(session, last_seen=int(self._clock()))

    def cookie(self, session: BrokerSession) -> str:
        """The Set-Cookie holding ``session`` until its idle or 4-hour limit, whichever comes first."""
        lifetime = max(min(session.last_seen + self._idle, session.created_at + self._max_age) - int(self._clock()), 1)
        return set_cookie(SESSION_COOKIE, self._sealer.seal(_data(session), ttl=lifetime), max_age=lifetime)

    def expires_at(self, session: BrokerSession) -> int:
        """The latest moment a copy of this session's cookie could still be used (its 4-hour limit)."""
        return session.created_at + self._max_age

    @staticmethod
    def cleared() -> str:
        return clear_cookie(SESSION_COOKIE)


def _data(session: BrokerSession) -> dict[str, Any]:
    return {
        "sid": session.sid,
        "account": session.account.to_dict(),
        "sub": session.sub,
        "national_id": session.national_id,
        "auth_time": session.auth_time,
        "created_at": session.created_at,
        "last_seen": session.last_seen,
        **({"bcl_clients": list(session.bcl_clients)} if session.bcl_clients else {}),
        **({"pairing_id": session.pairing_id} if session.pairing_id else {}),
    }


def _session(data: dict[str, Any]) -> BrokerSession:
    return BrokerSession(
        sid=str(data["sid"]),
        account=EntraAccount.from_dict(data["account"]),
        sub=str(data["sub"]),
        national_id=str(data.get("national_id", "")),
        auth_time=int(data["auth_time"]),
        created_at=int(data["created_at"]),
        last_seen=int(data["last_seen"]),
        bcl_clients=tuple(str(client) for client in data.get("bcl_clients") or ()),
        pairing_id=str(data.get("pairing_id") or ""),
    )
