"""remove_pairing (sanscouture/pairings.py): conditional on the version read, audited with the
national identifier masked, and the account's grants (codes, refresh token families) revoked."""

from __future__ import annotations

import pytest

from sanscouture.bindings import BindingStore
from sanscouture.models import CodeGrant
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.pairings import remove_pairing
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeOutbox
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_identity

ACCOUNT = EntraAccount(tid="tenant", oid="object", auth_time=0)
OTHER = EntraAccount(tid="tenant", oid="someone-else", auth_time=0)


class Tables:
    def __init__(self, clock: FakeClock) -> None:
        self.stores = {name: FakeRowStore(name, clock) for name in ("bindings", "audit", "codes")}

    def __getitem__(self, name: str) -> FakeRowStore:
        return self.stores[name]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tables(clock: FakeClock) -> Tables:
    return Tables(clock)


def grant_row(tables: Tables, grant_id: str, account: EntraAccount, identity: PscIdentity, state: str) -> None:
    grant = CodeGrant(client_id="rp", redirect_uri="https://rp.example/cb", code_challenge=CHALLENGE,
                      scope=("openid",), identity=identity, auth_time=0, sid="sid", tid=account.tid, oid=account.oid)
    tables["codes"].save(grant_id, GRANT_ROW, {"state": state, **grant.to_dict()}, expires_in=1800)


def paired(tables: Tables, clock: FakeClock, account: EntraAccount = ACCOUNT) -> BindingStore:
    bindings = BindingStore(tables["bindings"], clock)
    bindings.create(account, make_identity())
    return bindings


def test_removes_the_pairing_it_read_and_audits_it_masked(tables: Tables, clock: FakeClock) -> None:
    bindings = paired(tables, clock)
    binding = bindings.find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    removed = remove_pairing(tables, binding, by="professional", clock=clock)
    assert removed is not None and bindings.find(ACCOUNT.tid, ACCOUNT.oid) is None
    identity = make_identity()
    assert removed.national_id == "*" * (len(identity.subject_name_id) - 4) + identity.subject_name_id[-4:]
    (audit,) = [row.data for row in tables["audit"].rows.values()]
    assert audit == {"event": "pairing_removed", "at": int(clock()), "tid": ACCOUNT.tid, "oid": ACCOUNT.oid,
                     "national_id": removed.national_id, "by": "professional"}
    assert identity.subject_name_id not in str(audit) and identity.sub not in str(audit)


def test_an_administrator_removal_keeps_its_reason(tables: Tables, clock: FakeClock) -> None:
    binding = paired(tables, clock).find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    assert remove_pairing(tables, binding, by="administrator", reason="départ", clock=clock) is not None
    (audit,) = [row.data for row in tables["audit"].rows.values()]
    assert (audit["by"], audit["reason"]) == ("administrator", "départ")


def test_a_pairing_changed_since_it_was_read_is_not_removed(tables: Tables, clock: FakeClock) -> None:
    bindings = paired(tables, clock)
    shown = bindings.find(ACCOUNT.tid, ACCOUNT.oid)
    assert shown is not None and shown.etag is not None
    # Removed and made again (another browser, the same person) between the page and the click.
    assert bindings.remove(ACCOUNT.tid, ACCOUNT.oid)
    bindings.create(ACCOUNT, make_identity())
    grant_row(tables, "a" * 32, ACCOUNT, make_identity(), "redeemed")
    assert remove_pairing(tables, shown, by="professional", clock=clock) is None
    assert bindings.find(ACCOUNT.tid, ACCOUNT.oid) is not None  # the new pairing is untouched
    assert tables["audit"].rows == {} and len(tables["codes"].rows) == 1  # nothing audited, nothing revoked


def test_a_pairing_already_removed_is_not_removed_twice(tables: Tables, clock: FakeClock) -> None:
    binding = paired(tables, clock).find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    assert remove_pairing(tables, binding, by="professional", clock=clock) is not None
    assert remove_pairing(tables, binding, by="administrator", clock=clock) is None
    assert [row.data["by"] for row in tables["audit"].rows.values()] == ["professional"]


def test_a_binding_without_its_version_is_refused(tables: Tables, clock: FakeClock) -> None:
    binding = paired(tables, clock).find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    with pytest.raises(ValueError, match="ETag"):
        remove_pairing(tables, type(binding)(binding.tid, binding.oid, binding.identity, 0, 0), by="professional")


def test_every_grant_of_the_account_is_revoked_and_no_other(tables: Tables, clock: FakeClock) -> None:
    bindings = paired(tables, clock)
    paired(tables, clock, OTHER)
    identity = make_identity()
    grant_row(tables, "1" * 32, ACCOUNT, identity, "redeemed")  # a refresh token family
    grant_row(tables, "2" * 32, ACCOUNT, identity, "code")  # a code not yet redeemed
    grant_row(tables, "3" * 32, OTHER, identity, "redeemed")  # another account's family
    binding = bindings.find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    removed = remove_pairing(tables, binding, by="professional", clock=clock)
    assert removed is not None and removed.grants_revoked == 2
    assert [key for key, _ in tables["codes"].rows] == ["3" * 32]
    assert bindings.find(OTHER.tid, OTHER.oid) is not None


def test_a_session_opened_before_the_pairing_was_made_is_not_admitted(tables: Tables, clock: FakeClock) -> None:
    bindings = paired(tables, clock)
    binding = bindings.find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    now = clock()
    assert binding.admits_session("sid", int(now), now)  # opened by the Confirmer after the pairing
    assert not binding.admits_session("sid", int(now) - 1, now)  # a session of a pairing removed before


def test_a_session_of_a_removed_pairing_is_not_admitted_by_the_next_one_made_in_the_same_second(
    tables: Tables, clock: FakeClock,
) -> None:
    """The same identity paired again within the second of the removal: the times cannot tell the two
    pairings apart, their ids do."""
    first = paired(tables, clock).find(ACCOUNT.tid, ACCOUNT.oid)
    assert first is not None and first.pairing_id
    now = clock()
    assert first.admits_session("old", int(now), now, first.pairing_id)
    assert remove_pairing(tables, first, by="professional", clock=clock) is not None
    second = paired(tables, clock).find(ACCOUNT.tid, ACCOUNT.oid)  # same clock: the same second
    assert second is not None and second.paired_at == first.paired_at and second.identity == first.identity
    assert second.pairing_id != first.pairing_id
    assert not second.admits_session("old", int(now), now, first.pairing_id)
    assert second.admits_session("new", int(now), now, second.pairing_id)


def test_a_session_or_a_pairing_from_before_pairing_ids_falls_back_on_the_times(
    tables: Tables, clock: FakeClock,
) -> None:
    binding = paired(tables, clock).find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None
    now = clock()
    assert binding.admits_session("legacy", int(now), now, "")
    assert not binding.admits_session("legacy", int(now) - 1, now, "")
    legacy_row = type(binding)(binding.tid, binding.oid, binding.identity, binding.paired_at, binding.paired_at)
    assert legacy_row.admits_session("sid", int(now), now, "any-id")
    assert not legacy_row.admits_session("sid", int(now) - 1, now, "any-id")


def test_a_removal_announces_the_live_sessions_relying_parties_once_each(tables: Tables, clock: FakeClock) -> None:
    """Back-Channel Logout: each (client, session) recorded in the row and not already ended."""
    from sanscouture.oidc.backchannel import LogoutNotice

    bindings = paired(tables, clock)
    until = int(clock()) + 3600
    assert bindings.record_rp_session(ACCOUNT.tid, ACCOUNT.oid, "live", ("rp-a", "rp-b"), until)
    assert bindings.record_rp_session(ACCOUNT.tid, ACCOUNT.oid, "old", ("rp-a",), int(clock()) - 1)  # past its 4 h
    assert bindings.record_rp_session(ACCOUNT.tid, ACCOUNT.oid, "ended", ("rp-a",), until)
    assert bindings.revoke_session(ACCOUNT.tid, ACCOUNT.oid, "ended", until) == ("rp-a",)  # told at its end
    binding = bindings.find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None and binding.rp_sessions == {"live": ("rp-a", "rp-b")}
    outbox = FakeOutbox()
    removed = remove_pairing(tables, binding, by="administrator", clock=clock, outbox=outbox)
    assert removed is not None and removed.backchannel_logouts == 2
    sub = make_identity().sub
    assert outbox.sent == [LogoutNotice("rp-a", sub, "live").to_message(),
                           LogoutNotice("rp-b", sub, "live").to_message()]


def test_recording_a_session_never_recreates_a_removed_pairing(tables: Tables, clock: FakeClock) -> None:
    bindings = paired(tables, clock)
    assert bindings.remove(ACCOUNT.tid, ACCOUNT.oid)
    assert not bindings.record_rp_session(ACCOUNT.tid, ACCOUNT.oid, "s", ("rp",), int(clock()) + 60)
    assert bindings.find(ACCOUNT.tid, ACCOUNT.oid) is None


def test_a_recorded_relying_party_session_ends_at_its_until_and_only_well_formed_entries_count(
    tables: Tables, clock: FakeClock
) -> None:
    """An entry is alive strictly before its ``until`` (the instant the session itself expires), read
    against the store's clock; a property with the prefix that is not an entry is ignored."""
    from sanscouture.bindings import RP_SESSION_PREFIX

    bindings = paired(tables, clock)
    now = int(clock())
    assert bindings.record_rp_session(ACCOUNT.tid, ACCOUNT.oid, "ends-now", ("rp-a",), now)
    assert bindings.record_rp_session(ACCOUNT.tid, ACCOUNT.oid, "ends-next", ("rp-b",), now + 1)
    tables["bindings"].merge(ACCOUNT.tid, ACCOUNT.oid, {f"{RP_SESSION_PREFIX}junk": "not an entry"})
    binding = bindings.find(ACCOUNT.tid, ACCOUNT.oid)
    assert binding is not None and binding.rp_sessions == {"ends-next": ("rp-b",)}
