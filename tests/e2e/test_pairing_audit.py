"""A pairing and its audit record: under any single failure, both exist in the end (issue 8, point 10).

The fault is injected between the two writes: Table Storage refuses the audit write of the pairing
request, as an outage starting at that instant would. The person sees the French "try again" page;
the pairing exists with its audit entry in its row; the next sweep writes the audit row from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions import _wiring
from functions.sweep import sweep
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sanscouture.adapters.tables import Tables
from sanscouture.errors import StorageUnavailableError
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tests.e2e.test_journey import PAIRING
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start


class AuditOutage:
    """The worker's tables, with every write to ``audit`` failing as during a storage outage."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def __getitem__(self, name: str) -> Any:
        store = self._tables[name]
        return _FailingWrites(store) if name == "audit" else store


class _FailingWrites:
    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in ("save", "save_many", "insert"):
            def refuse(*args: Any, **kwargs: Any) -> Any:
                raise StorageUnavailableError(detail="audit: injected outage")
            return refuse
        return getattr(self._store, name)


@pytest.fixture
def audit_outage(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    wired = _wiring.services()
    real = wired.tables
    monkeypatch.setitem(vars(wired), "tables", AuditOutage(real))
    monkeypatch.delitem(vars(wired), "broker", raising=False)
    yield
    vars(wired).pop("broker", None)


def audit_rows_of(oid: str) -> list[dict[str, Any]]:
    tables = _wiring.services().tables
    return [row.data for row in tables["audit"].all_rows() if row.data.get("oid") == oid]  # type: ignore[attr-defined]


def test_an_audit_write_failing_after_the_pairing_insert_is_restored_by_the_sweep(
    sandbox: Sandbox, request: pytest.FixtureRequest
) -> None:
    unpair(sandbox, "cpx-interne")
    oid = persona_oid(sandbox, "cpx-interne")
    before = [row for row in audit_rows_of(oid) if row["event"] == "pairing_created"]

    request.getfixturevalue("audit_outage")
    browser, party = Browser(sandbox, psc_persona="pharmacien-cps"), rp(sandbox)
    page = start(browser, party, Pkce(), login_hint="cpx-interne")
    assert isinstance(page, Page) and page.h1 == PAIRING
    failed = browser.submit(page, "pair", stop_at=party.redirect_uri)
    assert isinstance(failed, Page) and failed.status == 503  # « Service momentanément indisponible »
    stored = binding_row(sandbox, oid)
    assert stored is not None and stored["audit"]["data"]["event"] == "pairing_created"
    assert [row for row in audit_rows_of(oid) if row["event"] == "pairing_created"] == before  # half-written

    vars(_wiring.services()).pop("tables")  # the outage is over
    vars(_wiring.services()).pop("broker", None)
    wired = _wiring.services()
    sweep(wired.tables, wired.broker)
    restored = [row for row in audit_rows_of(oid) if row["event"] == "pairing_created"]
    assert len(restored) == len(before) + 1
    new = next(row for row in restored if row not in before)
    assert new["reconstructed"] is True and new["national_id"] == "********0003"
    sweep(wired.tables, wired.broker)  # idempotent: no second row
    assert len([row for row in audit_rows_of(oid) if row["event"] == "pairing_created"]) == len(restored)
    unpair(sandbox, "cpx-interne")
