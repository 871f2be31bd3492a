"""Broker sessions: at most 4 hours, 30 minutes idle (like PSC's own SSO session).

A session lets ``prompt=none`` from another service succeed silently. The cookie holds a random
session id; the table holds only its SHA-256, so a leaked table does not leak live sessions.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.ports import Clock
from sanscouture.ports import RowStore


@dataclass(frozen=True)
class BrokerSession:
    """Who is signed in at the broker in this browser, and since when."""

    sid: str
    identity: PscIdentity
    account: EntraAccount | None
    auth_time: int
    created_at: int
    last_seen: int


_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def session_key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    """The ``sessions`` table: PartitionKey = SHA-256 of the session id."""

    def __init__(self, store: RowStore, max_age: int, idle_timeout: int, clock: Clock = time.time) -> None:
        self._store = store
        self._max_age = max_age
        self._idle = idle_timeout
        self._clock = clock

    def create(self, identity: PscIdentity, account: EntraAccount | None, auth_time: int) -> BrokerSession:
        now = int(self._clock())
        session = BrokerSession(secrets.token_urlsafe(32), identity, account, auth_time, now, now)
        self._write(session)
        return session

    def find(self, sid: str | None) -> BrokerSession | None:
        """The live session for this id, or None (unknown, over 4 h, or idle too long)."""
        if not sid or not _SESSION_ID.fullmatch(sid):
            return None
        row = self._store.find(session_key(sid), "s")
        if row is None:
            return None
        data = row.data
        now = int(self._clock())
        if now - int(data["created_at"]) > self._max_age or now - int(data["last_seen"]) > self._idle:
            return None
        return BrokerSession(
            sid=sid,
            identity=PscIdentity.from_dict(data["identity"]),
            account=EntraAccount.from_dict(data["account"]) if data.get("account") else None,
            auth_time=int(data["auth_time"]),
            created_at=int(data["created_at"]),
            last_seen=int(data["last_seen"]),
        )

    def touch(self, session: BrokerSession) -> BrokerSession:
        """Record activity (the idle clock restarts); never extends past the 4-hour limit."""
        refreshed = BrokerSession(
            session.sid, session.identity, session.account, session.auth_time, session.created_at,
            int(self._clock()),
        )
        self._write(refreshed)
        return refreshed

    def end(self, sid: str | None) -> None:
        if sid and _SESSION_ID.fullmatch(sid):
            self._store.delete(session_key(sid), "s")

    def _write(self, session: BrokerSession) -> None:
        data = {
            "identity": session.identity.to_dict(),
            "account": session.account.to_dict() if session.account else None,
            "auth_time": session.auth_time,
            "created_at": session.created_at,
            "last_seen": session.last_seen,
        }
        expires_in = min(self._idle, session.created_at + self._max_age - session.last_seen)
        self._store.save(session_key(session.sid), "s", data, expires_in=max(expires_in, 1))
