"""Broker sessions sealed in their cookie, with a controlled clock: 30 minutes idle, 4 hours at most.

docs/design.md "Sessions": a session lasts at most BROKER_SESSION_MAX_AGE (4 h) from its creation and
BROKER_SESSION_IDLE_TIMEOUT (30 min) without use; using it never extends the 4-hour limit. The cookie
expires with the session, and the rule in SessionStore.find holds on its own too, for a cookie sealed
while a longer setting was in force.
"""

from __future__ import annotations

import re

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.keys import KeyRing
from sanscouture.models import EntraAccount
from sanscouture.sealing import Sealer
from sanscouture.sessions import BrokerSession
from sanscouture.sessions import SessionStore
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeKeySource

IDLE = 30 * 60
MAX_AGE = 4 * 3600
MINUTE = 60
ACCOUNT = EntraAccount(tid="11111111-2222-3333-4444-555555555555", oid="5b2f8c1e-3a47-4d90-8e6b-1c2d3e4f5a61",
                       auth_time=1_800_000_000)
KEYS = FakeKeySource()


def sessions(clock: FakeClock, *, idle: int = IDLE, max_age: int = MAX_AGE) -> SessionStore:
    keys = KeyRing(KEYS, clock=clock)
    return SessionStore(Sealer(keys, "session", clock), max_age=max_age, idle_timeout=idle, clock=clock)


def opened(store: SessionStore, clock: FakeClock) -> BrokerSession:
    return store.create(ACCOUNT, "f:x:810100000001", int(clock()), "********0001")


def cookie_value(set_cookie: str) -> str:
    assert set_cookie.startswith(f"{SESSION_COOKIE}=")
    return set_cookie.split(";")[0].split("=", 1)[1]


def max_age(set_cookie: str) -> int:
    match = re.search(r"Max-Age=(\d+)", set_cookie)
    assert match
    return int(match.group(1))


def test_a_session_used_at_t_is_usable_at_t_plus_29_59_and_not_at_t_plus_30_01() -> None:
    clock = FakeClock()
    store = sessions(clock)
    session = opened(store, clock)
    clock.now += 10 * MINUTE
    used_at = clock.now
    cookie = store.cookie(store.touch(session))
    assert max_age(cookie) == IDLE  # the browser drops it with the session

    clock.now = used_at + 29 * MINUTE + 59
    found = store.find(cookie_value(cookie))
    assert found is not None and found.last_seen == int(used_at)  # finding is not using
    clock.now = used_at + 30 * MINUTE + 1
    assert store.find(cookie_value(cookie)) is None


def test_a_session_used_all_along_still_ends_4_hours_after_it_was_opened() -> None:
    clock = FakeClock()
    store = sessions(clock)
    session = opened(store, clock)
    created = clock.now
    cookie = store.cookie(session)
    for minutes in range(20, 240, 20):  # used every 20 minutes, never 30 minutes idle
        clock.now = created + minutes * MINUTE
        current = store.find(cookie_value(cookie))
        assert current is not None, f"ended after {minutes} minutes"
        cookie = store.cookie(store.touch(current))
    assert max_age(cookie) == 20 * MINUTE  # touched at 3 h 40: 20 min left, not 30
    clock.now = created + MAX_AGE - 1
    assert store.find(cookie_value(cookie)) is not None
    clock.now = created + MAX_AGE + 1  # last used 1 min 1 s ago
    assert store.find(cookie_value(cookie)) is None


def test_a_shorter_idle_timeout_applies_at_once_to_sessions_opened_under_a_longer_one() -> None:
    clock = FakeClock()
    before = sessions(clock, idle=60 * MINUTE)  # the setting when the session was opened
    cookie = before.cookie(opened(before, clock))
    clock.now += 30 * MINUTE + 1
    assert before.find(cookie_value(cookie)) is not None  # the cookie is still valid...
    assert sessions(clock).find(cookie_value(cookie)) is None  # ...and the current rule refuses it


def test_a_shorter_maximum_age_applies_at_once_to_sessions_opened_under_a_longer_one() -> None:
    clock = FakeClock()
    before = sessions(clock, max_age=8 * 3600)
    session = opened(before, clock)
    created = clock.now
    for minutes in range(20, 260, 20):
        clock.now = created + minutes * MINUTE
        session = before.touch(session)
    cookie = before.cookie(session)
    clock.now = created + MAX_AGE + 1
    assert before.find(cookie_value(cookie)) is not None
    assert sessions(clock).find(cookie_value(cookie)) is None


def test_a_forged_or_journey_cookie_is_no_session() -> None:
    clock = FakeClock()
    store = sessions(clock)
    journey_sealed = Sealer(KeyRing(KEYS, clock=clock), "journey", clock).seal({"sid": "x"}, ttl=60)
    for value in (None, "", "forged", journey_sealed):
        assert store.find(value) is None
