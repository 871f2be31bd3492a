"""Pairings and their audit rows: the entry travels in the pairing's row, the sweep restores it."""

from __future__ import annotations

import base64

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


def store() -> tuple[BindingStore, FakeRowStore, FakeClock]:
    clock = FakeClock()
    rows = FakeRowStore("bindings", clock)
    return BindingStore(rows, clock), rows, clock


def test_a_pairing_row_keeps_the_identity_and_its_times() -> None:
    bindings, rows, clock = store()
    account = EntraAccount(tid="t", oid="o", auth_time=0, preferred_username="claire@chu.fr")
    identity = make_identity()
    binding, created = bindings.create(account, identity)
    assert created and (binding.tid, binding.oid, binding.identity) == ("t", "o", identity)
    assert (binding.paired_at, binding.last_used_at, binding.verified_at) == (int(clock()),) * 3
    row = rows.rows[("t", "o")]
    assert row.expires_at is None  # a pairing does not expire by itself
    assert row.data == {
        "psc_sub": identity.sub, "subject_name_id": identity.subject_name_id, "given_name": identity.given_name,
        "family_name": identity.family_name, "auth_mode": identity.auth_mode, "identity": identity.to_dict(),
        "entra_username": "claire@chu.fr", "paired_at": int(clock()), "last_used_at": int(clock()),
        "verified_at": int(clock()), "pairing_id": binding.pairing_id,
    }
    # 128 random bits (16 bytes, 22 base64url characters): the sessions opened through this pairing carry it.
    assert len(binding.pairing_id) == 22
    assert len(base64.urlsafe_b64decode(binding.pairing_id + "==")) == 16
    found = bindings.find("t", "o")
    assert found is not None and (found.identity, found.paired_at, found.etag) == (identity, int(clock()), row.etag)
    assert found.pairing_id == binding.pairing_id
    assert found.revoked_sessions == {}


def test_a_row_from_before_pairing_ids_has_none_and_admits_sessions_by_their_times() -> None:
    bindings, rows, clock = store()
    bindings.create(ACCOUNT, make_identity())
    row = rows.rows[("t", "o")]
    rows.save("t", "o", {k: v for k, v in row.data.items() if k != "pairing_id"}, None)
    found = bindings.find("t", "o")
    assert found is not None and found.pairing_id == ""
    now = clock()
    assert found.admits_session("sid", int(now), now, "a-session-s-pairing-id")  # opened since it was paired
    assert not found.admits_session("sid", int(now) - 1, now, "a-session-s-pairing-id")


def test_a_second_pairing_of_one_account_returns_the_first_untouched() -> None:
    bindings, _rows, clock = store()
    first, _ = bindings.create(ACCOUNT, make_identity())
    clock.now += 60
    other = PscIdentity.from_userinfo({**make_identity().claims, "sub": "f:other:2", "SubjectNameID": "2"})
    existing, created = bindings.create(ACCOUNT, other)
    assert not created and existing.identity == make_identity() and existing.paired_at == first.paired_at


def test_a_pairing_removed_between_the_insert_and_the_read_is_reported() -> None:
    bindings, rows, _ = store()
    bindings.create(ACCOUNT, make_identity())
    rows.insert = lambda *args, **kwargs: False  # type: ignore[method-assign]
    rows.rows.clear()
    try:
        bindings.create(ACCOUNT, make_identity())
    except LookupError as error:
        assert str(error) == "pairing vanished while being created"
    else:
        raise AssertionError("a vanished pairing must not pass for an existing one")


def test_a_use_is_recorded_only_on_the_version_read() -> None:
    bindings, rows, clock = store()
    bindings.create(ACCOUNT, make_identity())
    etag = rows.rows[("t", "o")].etag
    clock.now += 30
    assert bindings.use_if_unchanged("t", "o", etag)
    assert rows.rows[("t", "o")].data["last_used_at"] == int(clock())
    assert not bindings.use_if_unchanged("t", "o", etag)  # the row changed with that use


def test_an_ended_session_is_listed_until_its_time_and_old_entries_dropped() -> None:
    bindings, _rows, clock = store()
    bindings.create(ACCOUNT, make_identity())
    now = int(clock())
    bindings.revoke_session("t", "o", "sid-old", until=now + 10)
    bindings.revoke_session("t", "o", "sid-edge", until=now + 20)
    clock.now += 20
    bindings.revoke_session("t", "o", "sid-new", until=now + 3600)
    binding = bindings.find("t", "o")
    assert binding is not None
    assert binding.revoked_sessions == {"sid-new": now + 3600}  # past entries (up to now included) dropped
    assert binding.session_revoked("sid-new", clock()) and not binding.session_revoked("sid-old", clock())


def test_ending_a_session_reads_a_concurrently_changed_row_again_and_ignores_a_removed_pairing() -> None:
    bindings, rows, clock = store()
    bindings.create(ACCOUNT, make_identity())
    real_replace = rows.replace
    attempts: list[int] = []

    def conflicting(current, data, expires_in):  # type: ignore[no-untyped-def]
        attempts.append(1)
        return None if len(attempts) < 3 else real_replace(current, data, expires_in)

    rows.replace = conflicting  # type: ignore[method-assign]
    bindings.revoke_session("t", "o", "sid", until=int(clock()) + 60)
    assert len(attempts) == 3
    assert rows.rows[("t", "o")].data["revoked_sessions"] == {"sid": int(clock()) + 60}
    bindings.remove("t", "o")
    bindings.revoke_session("t", "o", "sid", until=int(clock()) + 60)  # nothing to do, no error
    assert bindings.find("t", "o") is None and not bindings.remove("t", "o")


def test_ending_a_session_gives_up_after_three_conflicts() -> None:
    bindings, rows, clock = store()
    bindings.create(ACCOUNT, make_identity())
    attempts: list[int] = []
    rows.replace = lambda current, data, expires_in: attempts.append(1)  # type: ignore[method-assign,func-returns-value]
    bindings.revoke_session("t", "o", "sid", until=int(clock()) + 60)
    assert len(attempts) == 3


def test_only_pairings_made_since_the_date_with_an_audit_entry_are_swept() -> None:
    bindings, _rows, clock = store()
    audit = AuditLog(FakeRowStore("audit", clock), clock)
    bindings.create(EntraAccount(tid="t", oid="old", auth_time=0), make_identity(),
                    audit=audit.entry("pairing_created", {"tid": "t", "oid": "old"}))
    clock.now += 100
    entry = audit.entry("pairing_created", {"tid": "t", "oid": "new"})
    bindings.create(EntraAccount(tid="t", oid="new", auth_time=0), make_identity(), audit=entry)
    bindings.create(EntraAccount(tid="t", oid="bare", auth_time=0), make_identity())
    assert bindings.audits_since(clock() - 50) == [entry]


def test_a_row_from_before_the_times_were_kept_reads_them_as_zero() -> None:
    bindings, rows, _ = store()
    rows.save("t", "o", {"identity": make_identity().to_dict()}, expires_in=None)
    binding = bindings.find("t", "o")
    assert binding is not None
    assert (binding.paired_at, binding.last_used_at, binding.verified_at) == (0, 0, 0)


def test_a_renewal_gives_up_after_three_concurrent_changes() -> None:
    bindings, rows, _ = store()
    bindings.create(ACCOUNT, make_identity())
    merges: list[int] = []
    rows.merge_if_unchanged = lambda *args: merges.append(1)  # type: ignore[method-assign,func-returns-value]
    assert bindings.renew("t", "o", "stale-etag", make_identity()) is False
    assert len(merges) == 3


def test_ending_a_session_keeps_the_others_still_ended() -> None:
    bindings, _, clock = store()
    bindings.create(ACCOUNT, make_identity())
    bindings.revoke_session("t", "o", "sid-a", until=int(clock()) + 600)
    bindings.revoke_session("t", "o", "sid-b", until=int(clock()) + 900)
    binding = bindings.find("t", "o")
    assert binding is not None and binding.revoked_sessions == {"sid-a": int(clock()) + 600,
                                                                "sid-b": int(clock()) + 900}


def test_the_sweep_counts_every_audit_row_it_restores() -> None:
    clock = FakeClock()
    bindings, audit_rows = BindingStore(FakeRowStore("bindings", clock), clock), FakeRowStore("audit", clock)
    audit = AuditLog(audit_rows, clock)
    for oid in ("o1", "o2"):
        bindings.create(EntraAccount(tid="t", oid=oid, auth_time=0), make_identity(),
                        audit=audit.entry("pairing_created", {"tid": "t", "oid": oid}))
    assert restore_missing_audit(bindings, audit, since=clock() - 60) == 2
