"""Pairings and their audit rows: the entry travels in the pairing's row, the sweep restores it."""

from __future__ import annotations

from sanscouture.audit import AuditLog
from sanscouture.bindings import BindingStore
from sanscouture.bindings import restore_missing_audit
from sanscouture.models import EntraAccount
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_identity

ACCOUNT = EntraAccount(tid="t", oid="o", auth_time=0)


def test_a_pairing_whose_audit_write_was_lost_gets_it_back_once_and_marked() -> None:
    clock = FakeClock()
    bindings, audit_rows = BindingStore(FakeRowStore("bindings", clock), clock), FakeRowStore("audit", clock)
    audit = AuditLog(audit_rows, clock)
    entry = audit.entry("pairing_created", {"tid": "t", "oid": "o"})
    _, created = bindings.create(ACCOUNT, make_identity(), audit=entry)
    assert created and audit_rows.rows == {}  # the request failed before its audit write

    assert restore_missing_audit(bindings, audit, since=clock() - 60) == 1
    (row,) = audit_rows.rows.values()
    assert (row.partition, row.row) == (entry.day, entry.row)
    assert row.data == {**entry.data, "reconstructed": True}
    assert restore_missing_audit(bindings, audit, since=clock() - 60) == 0  # idempotent


def test_a_pairing_whose_audit_was_written_is_left_alone() -> None:
    clock = FakeClock()
    bindings, audit_rows = BindingStore(FakeRowStore("bindings", clock), clock), FakeRowStore("audit", clock)
    audit = AuditLog(audit_rows, clock)
    entry = audit.entry("pairing_created", {"tid": "t", "oid": "o"})
    bindings.create(ACCOUNT, make_identity(), audit=entry)
    audit.write(entry)
    assert restore_missing_audit(bindings, audit, since=clock() - 60) == 0
    assert [row.data.get("reconstructed") for row in audit_rows.rows.values()] == [None]
