"""Broker sessions against Azurite with a controlled clock: 30 minutes idle, 4 hours at most.

docs/design.md "Sessions": a session lasts at most BROKER_SESSION_MAX_AGE (4 h) from its creation and
BROKER_SESSION_IDLE_TIMEOUT (30 min) without use; using it never extends the 4-hour limit. The row expires
with the session (design.md "State": ``min(last_seen + idle timeout, created_at + max age)``), so that
the sweep removes it; the rule in SessionStore.find holds on its own too, for a row written while a
longer setting was in force.
"""

from __future__ import annotations

from sanscouture.adapters.tables import Tables
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.sessions import BrokerSession
from sanscouture.sessions import SessionStore
from sanscouture.sessions import session_key
from tests.integration.conftest import Clock

IDLE = 30 * 60
MAX_AGE = 4 * 3600
MINUTE = 60

DOCTOR = PscIdentity("f:x:810100000001", "810100000001", "CLAIRE", "MARTIN", "CARD", {"sub": "f:x:810100000001"})
ACCOUNT = EntraAccount(tid="11111111-2222-3333-4444-555555555555", oid="5b2f8c1e-3a47-4d90-8e6b-1c2d3e4f5a61",
                       auth_time=1_800_000_000)


def sessions(tables: Tables, clock: Clock, *, idle: int = IDLE, max_age: int = MAX_AGE) -> SessionStore:
    return SessionStore(tables["sessions"], max_age=max_age, idle_timeout=idle, clock=clock)


def opened(store: SessionStore, clock: Clock) -> BrokerSession:
    return store.create(DOCTOR, ACCOUNT, auth_time=int(clock()))


def row_expiry(tables: Tables, session: BrokerSession) -> float | None:
    row = tables["sessions"].find(session_key(session.sid), "s")
    assert row is not None
    return row.expires_at


def test_a_session_used_at_t_is_usable_at_t_plus_29_59_and_not_at_t_plus_30_01(tables: Tables, clock: Clock) -> None:
    store = sessions(tables, clock)
    session = opened(store, clock)
    clock.now += 10 * MINUTE
    store.touch(session)
    used_at = clock.now
    assert row_expiry(tables, session) == used_at + IDLE

    clock.now = used_at + 29 * MINUTE + 59
    found = store.find(session.sid)
    assert found is not None and found.last_seen == int(used_at)  # finding is not using
    clock.now = used_at + 30 * MINUTE + 1
    assert store.find(session.sid) is None


def test_a_session_used_all_along_still_ends_4_hours_after_it_was_opened(tables: Tables, clock: Clock) -> None:
    store = sessions(tables, clock)
    session = opened(store, clock)
    created = clock.now
    for minutes in range(20, 240, 20):  # used every 20 minutes, never 30 minutes idle
        clock.now = created + minutes * MINUTE
        current = store.find(session.sid)
        assert current is not None, f"ended after {minutes} minutes"
        store.touch(current)
    assert row_expiry(tables, session) == created + MAX_AGE  # touched at 3 h 40: 20 min left, not 30
    clock.now = created + MAX_AGE - 1
    assert store.find(session.sid) is not None
    clock.now = created + MAX_AGE + 1  # last used 1 min 1 s ago
    assert store.find(session.sid) is None


def test_a_shorter_idle_timeout_applies_at_once_to_sessions_opened_under_a_longer_one(
    tables: Tables, clock: Clock
) -> None:
    before = sessions(tables, clock, idle=60 * MINUTE)  # the setting when the session was opened
    session = opened(before, clock)
    clock.now += 30 * MINUTE + 1
    assert before.find(session.sid) is not None  # the row is still there...
    assert sessions(tables, clock).find(session.sid) is None  # ...and the current rule refuses it


def test_a_shorter_maximum_age_applies_at_once_to_sessions_opened_under_a_longer_one(
    tables: Tables, clock: Clock
) -> None:
    before = sessions(tables, clock, max_age=8 * 3600)
    session = opened(before, clock)
    created = clock.now
    for minutes in range(20, 260, 20):
        clock.now = created + minutes * MINUTE
        before.touch(session)
    clock.now = created + MAX_AGE + 1
    assert before.find(session.sid) is not None
    assert sessions(tables, clock).find(session.sid) is None
