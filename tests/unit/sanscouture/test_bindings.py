"""Pairings and their audit rows: the entry travels in the pairing's row, the sweep restores it."""

from __future__ import annotations

from sanscouture.audit import AuditLog
from sanscouture.bindings import BindingStore
from sanscouture.bindings import restore_missing_audit
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
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


def other_identity() -> PscIdentity:
    return PscIdentity.from_userinfo({**make_identity().claims, "sub": "f:other:810100000004",
                                      "SubjectNameID": "810100000004"})


def test_a_re_verification_renews_the_row_it_was_read_from() -> None:
    clock = FakeClock()
    bindings = BindingStore(FakeRowStore("bindings", clock), clock)
    bindings.create(ACCOUNT, make_identity())
    read = bindings.find("t", "o")
    assert read is not None
    clock.now += 400 * 86_400
    assert bindings.renew("t", "o", read.etag, make_identity())
    renewed = bindings.find("t", "o")
    assert renewed is not None
    assert (renewed.paired_at, renewed.verified_at, renewed.last_used_at) == (read.paired_at, clock.now, clock.now)


def test_a_re_verification_reads_a_concurrently_changed_row_again() -> None:
    clock = FakeClock()
    bindings = BindingStore(FakeRowStore("bindings", clock), clock)
    bindings.create(ACCOUNT, make_identity())
    read = bindings.find("t", "o")
    assert read is not None
    bindings.revoke_session("t", "o", "sid", until=int(clock.now) + 60)  # the row changed meanwhile
    assert bindings.renew("t", "o", read.etag, make_identity())
    renewed = bindings.find("t", "o")
    assert renewed is not None and renewed.revoked_sessions == {"sid": int(clock.now) + 60}


def test_a_re_verification_never_writes_a_row_removed_or_naming_someone_else() -> None:
    clock = FakeClock()
    store = FakeRowStore("bindings", clock)
    bindings = BindingStore(store, clock)
    bindings.create(ACCOUNT, other_identity())  # replaced by an administrator and a new pairing meanwhile
    before = dict(store.rows[("t", "o")].data)
    assert not bindings.renew("t", "o", "an-old-etag", make_identity())
    assert store.rows[("t", "o")].data == before
    bindings.remove("t", "o")
    assert not bindings.renew("t", "o", None, make_identity())
    assert store.rows == {}
