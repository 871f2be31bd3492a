"""Pairings against Azurite: two pairings of one Entra account released at the same instant make one.

docs/architecture.md "State without transactions": a pairing is inserted, never upserted, so that of two
browsers pairing one account, exactly one pairing is stored and both are shown it. The threads are
released by a barrier and their inserts timed, so that the test shows the inserts really overlapped.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sanscouture.adapters.tables import Tables
from sanscouture.adapters.tables import TableStore
from sanscouture.bindings import BindingStore
from sanscouture.models import Binding
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.models import Row
from tests.integration.conftest import Clock

DOCTOR = PscIdentity("f:x:810100000001", "810100000001", "CLAIRE", "MARTIN", "CARD", {"sub": "f:x:810100000001"})
NURSE = PscIdentity("f:x:810100000002", "810100000002", "THOMAS", "BERNARD", "MOBILE", {"sub": "f:x:810100000002"})
ROUNDS = 50


class TimedInserts:
    """The bindings table, recording when each insert started and ended (to see that two overlapped)."""

    def __init__(self, store: TableStore) -> None:
        self._store = store
        self.spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def insert(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> bool:
        started = time.perf_counter()
        try:
            return self._store.insert(partition, row, data, expires_in)
        finally:
            with self._lock:
                self.spans.append((started, time.perf_counter()))

    def find(self, partition: str, row: str) -> Row | None:
        return self._store.find(partition, row)


def account() -> EntraAccount:
    return EntraAccount(tid=str(uuid.uuid4()), oid=str(uuid.uuid4()), auth_time=1_800_000_000)


def race(store: BindingStore, who: EntraAccount) -> list[tuple[Binding, bool]]:
    """Two pairings of ``who``, one per identity, released together."""
    barrier = threading.Barrier(2)

    def pair(identity: PscIdentity) -> tuple[Binding, bool]:
        barrier.wait()
        return store.create(who, identity)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(pair, (DOCTOR, NURSE)))


def test_two_pairings_of_one_account_released_together_store_one_that_both_get_back(
    tables: Tables, clock: Clock
) -> None:
    timed = TimedInserts(tables["bindings"])
    store = BindingStore(timed, clock)  # type: ignore[arg-type]  # the two methods create() uses
    overlapped = 0
    for _ in range(ROUNDS):
        who = account()
        timed.spans.clear()
        results = race(store, who)

        winners = [binding for binding, created in results if created]
        assert len(winners) == 1, results
        (winner,) = winners
        assert [binding for binding, _ in results] == [winner, winner]  # the loser is shown the winner's
        rows = tables["bindings"].partition(who.tid)
        assert [(row.row, row.data["psc_sub"]) for row in rows] == [(who.oid, winner.identity.sub)]

        (a_start, a_end), (b_start, b_end) = timed.spans
        overlapped += max(a_start, b_start) < min(a_end, b_end)
    # Otherwise the rounds ran one after the other and showed nothing about concurrency.
    assert overlapped > 0, "no round had its two inserts in flight at once"


def test_a_pairing_is_never_overwritten_by_a_later_one(tables: Tables, clock: Clock) -> None:
    store, who = BindingStore(tables["bindings"], clock), account()
    first, created = store.create(who, DOCTOR)
    clock.now += 3600
    again, created_again = store.create(who, NURSE)
    assert (created, created_again) == (True, False)
    assert again == first and again.identity == DOCTOR
    assert store.find(who.tid, who.oid) == first
