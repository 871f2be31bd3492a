"""The Table Storage adapter against Azurite: expiry, single use, conditional insert, outages."""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import azurite
from sandbox.servers import free_port
from sanscouture.adapters.tables import TABLE_NAMES
from sanscouture.adapters.tables import TRANSIENT_TABLES
from sanscouture.adapters.tables import Tables
from sanscouture.adapters.tables import _LeanResponse
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import StorageUnavailableError
from tests.integration.conftest import Clock


def key() -> str:
    return uuid.uuid4().hex


def test_create_all_creates_every_table_of_the_design(tables: Tables) -> None:
    tables.create_all()  # idempotent
    for name in TABLE_NAMES:
        assert tables[name].partition("nothing-here") == []


def test_saved_row_round_trips_values_of_every_kind(tables: Tables) -> None:
    pk = key()
    data = {"text": "Médecin", "count": 2**40, "flag": True, "nested": {"a": [1, "b"]}, "items": ["x"]}
    tables["codes"].save(pk, "r", data, expires_in=60)
    row = tables["codes"].find(pk, "r")
    assert row is not None
    assert dict(row.data) == data
    assert row.expires_at == pytest.approx(1_800_000_060.0)


def test_row_past_expires_at_is_not_returned_by_find(tables: Tables, clock: Clock) -> None:
    pk = key()
    tables["codes"].save(pk, "r", {"v": 1}, expires_in=60)
    clock.now += 61
    try:
        assert tables["codes"].find(pk, "r") is None
        assert tables["codes"].consume(pk, "r") is None
    finally:
        clock.now -= 61


def test_lasting_row_has_no_expiry(tables: Tables, clock: Clock) -> None:
    pk = key()
    tables["bindings"].save(pk, "oid", {"sub": "f:x:1"}, expires_in=None)
    clock.now += 10**7
    try:
        row = tables["bindings"].find(pk, "oid")
        assert row is not None and row.expires_at is None
    finally:
        clock.now -= 10**7


def test_fifty_concurrent_consumes_of_one_row_let_exactly_one_succeed(tables: Tables) -> None:
    pk = key()
    tables["codes"].save(pk, "code", {"client_id": "demo"}, expires_in=60)
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda _: tables["codes"].consume(pk, "code"), range(50)))
    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert winners[0].data["client_id"] == "demo"
    assert tables["codes"].find(pk, "code") is None


def test_insert_refuses_to_overwrite_a_live_row(tables: Tables) -> None:
    pk = key()
    assert tables["bindings"].insert(pk, "oid", {"sub": "first"}, expires_in=None) is True
    assert tables["bindings"].insert(pk, "oid", {"sub": "second"}, expires_in=None) is False
    row = tables["bindings"].find(pk, "oid")
    assert row is not None and row.data["sub"] == "first"


def test_insert_replaces_an_expired_row(tables: Tables, clock: Clock) -> None:
    pk = key()
    tables["jti"].save(pk, "s", {"v": "old"}, expires_in=10)
    clock.now += 11
    try:
        assert tables["jti"].insert(pk, "s", {"v": "new"}, expires_in=10) is True
        row = tables["jti"].find(pk, "s")
        assert row is not None and row.data["v"] == "new"
    finally:
        clock.now -= 11


def test_replace_is_refused_when_the_row_changed_since_it_was_read(tables: Tables) -> None:
    pk = key()
    tables["codes"].save(pk, "j", {"step": "entra"}, expires_in=60)
    first = tables["codes"].find(pk, "j")
    assert first is not None
    assert tables["codes"].replace(first, {"step": "pairing"}, expires_in=60) is not None
    assert tables["codes"].replace(first, {"step": "stale"}, expires_in=60) is None
    row = tables["codes"].find(pk, "j")
    assert row is not None and row.data["step"] == "pairing"


def test_sweep_deletes_only_expired_rows(tables: Tables, clock: Clock) -> None:
    pk = key()
    tables["jti"].save(pk, "old", {}, expires_in=5)
    tables["jti"].save(pk, "new", {}, expires_in=500)
    tables["jti"].save(pk, "forever", {}, expires_in=None)
    clock.now += 6
    try:
        assert tables["jti"].sweep() >= 1
        assert {row.row for row in tables["jti"].partition(pk)} == {"new", "forever"}
    finally:
        clock.now -= 6


def test_unreachable_storage_raises_storage_unavailable() -> None:
    dead = Tables.from_connection_string(azurite.connection_string(free_port()))
    with pytest.raises(StorageUnavailableError) as raised:
        dead["codes"].find("p", "r")
    assert raised.value.error == "temporarily_unavailable"
    assert raised.value.status == 503


def test_delete_says_whether_the_row_was_there(tables: Tables) -> None:
    pk = key()
    tables["bindings"].save(pk, "oid", {"sub": "x"}, expires_in=None)
    assert tables["bindings"].delete(pk, "oid") is True
    assert tables["bindings"].delete(pk, "oid") is False


def test_consume_row_lets_only_the_first_of_two_holders_of_the_same_read_delete_it(tables: Tables) -> None:
    pk = key()
    tables["codes"].save(pk, "j", {"step": "confirm"}, expires_in=60)
    read = tables["codes"].find(pk, "j")
    assert read is not None
    assert tables["codes"].consume_row(read) is True
    assert tables["codes"].consume_row(read) is False


def test_save_many_writes_several_rows_of_one_partition_in_one_transaction(tables: Tables) -> None:
    pk = key()
    tables["audit"].save_many(pk, {"a": {"event": "x"}, "b": {"event": "y"}}, expires_in=None)
    assert {row.row: row.data["event"] for row in tables["audit"].partition(pk)} == {"a": "x", "b": "y"}


def test_sweep_expired_cleans_every_transient_table_and_keeps_pairings(tables: Tables, clock: Clock) -> None:
    pk = key()
    for name in TRANSIENT_TABLES:
        tables[name].save(pk, "old", {}, expires_in=1)
    tables["bindings"].save(pk, "oid", {"sub": "x"}, expires_in=None)
    clock.now += 2
    try:
        removed = tables.sweep_expired()
    finally:
        clock.now -= 2
    assert set(removed) == set(TRANSIENT_TABLES)
    assert all(removed[name] >= 1 for name in TRANSIENT_TABLES)
    assert tables["bindings"].find(pk, "oid") is not None


def test_rows_where_filters_on_string_properties_server_side_and_skips_expired_rows(
    tables: Tables, clock: Clock
) -> None:
    tid, oid = key(), key()
    codes = tables["codes"]
    codes.save(key(), "grant", {"tid": tid, "oid": oid, "state": "redeemed"}, expires_in=600)
    codes.save(key(), "grant", {"tid": tid, "oid": oid, "state": "code"}, expires_in=600)
    codes.save(key(), "grant", {"tid": tid, "oid": key(), "state": "redeemed"}, expires_in=600)  # another account
    codes.save(key(), "grant", {"tid": tid, "oid": oid, "state": "redeemed"}, expires_in=-1)  # expired
    found = codes.rows_where({"tid": tid, "oid": oid})
    assert sorted(row.data["state"] for row in found) == ["code", "redeemed"]
    assert codes.rows_where({"tid": "it's-quoted", "oid": oid}) == []  # a value is a parameter, not OData text
    assert codes.rows_where({}) == []  # never the whole table by accident
    with pytest.raises(ValueError):
        codes.rows_where({"tid eq 'x' or oid": oid})


def test_save_many_round_trips_values_of_every_kind_and_replaces_rows(tables: Tables, clock: Clock) -> None:
    pk = key()
    data = {"text": "Médecin « é »", "count": 2**40, "flag": True, "nested": {"a": [1, "b"]}, "items": ["x"]}
    tables["audit"].save_many(pk, {"a": {"event": "old"}}, expires_in=None)
    tables["audit"].save_many(pk, {"a": data, "it's": {"event": "y"}}, expires_in=60)
    rows = {row.row: row for row in tables["audit"].partition(pk)}
    assert {name: dict(row.data) for name, row in rows.items()} == {"a": data, "it's": {"event": "y"}}
    assert rows["a"].expires_at == pytest.approx(clock.now + 60)


def test_save_many_is_all_or_nothing_and_a_refused_row_is_the_request_s_fault(tables: Tables) -> None:
    pk = key()
    with pytest.raises(InvalidRequestError):
        tables["audit"].save_many(pk, {"a": {"event": "x"}, "b": {"big": "x" * 70_000}}, expires_in=None)
    assert tables["audit"].partition(pk) == []


def test_save_many_on_unreachable_storage_raises_storage_unavailable() -> None:
    dead = Tables.from_connection_string(azurite.connection_string(free_port()))
    with pytest.raises(StorageUnavailableError):
        dead["audit"].save_many("p", {"a": {"event": "x"}, "b": {"event": "y"}}, expires_in=None)


def test_storage_calls_reuse_one_kept_alive_connection_and_replace_one_the_server_closed(
    azurite_server: azurite.Azurite,
) -> None:
    pk = key()
    tables = Tables.from_connection_string(azurite_server.connection_string)
    store = tables["codes"]
    store.save(pk, "r", {"n": 1}, expires_in=60)
    session = tables._service._client._client._pipeline._transport.session
    for _ in range(3):
        assert store.find(pk, "r") is not None
    (idle,) = [connection for connections in session._idle.values() for connection in connections]
    for _ in range(3):
        assert store.find(pk, "r") is not None
    assert [c for cs in session._idle.values() for c in cs] == [idle]  # the same connection, every time

    idle.sock.shutdown(socket.SHUT_RDWR)  # as a server closing an idle connection
    assert store.find(pk, "r") is not None
    (fresh,) = [connection for connections in session._idle.values() for connection in connections]
    assert fresh is not idle


def test_find_and_replace_round_trip_every_kind_of_value_and_key_like_the_sdk(tables: Tables) -> None:
    """find and replace send their REST requests themselves (not through the SDK's operations): keys with
    quotes and URL characters, Int64, doubles, booleans, JSON and text read back as the SDK reads them."""
    pk, row = f"{key()} it's 100% ok&=+", "r'ow é"
    data = {"text": "Médecin", "count": 2**40, "flag": True, "ratio": 0.5, "nested": {"a": [1, "b"]}}
    tables["codes"].save(pk, row, data, expires_in=60)
    found = tables["codes"].find(pk, row)
    assert found is not None and dict(found.data) == data and found.etag
    assert found.etag == tables["codes"]._client.get_entity(pk, row).metadata["etag"]  # the SDK's own read
    replaced = tables["codes"].replace(found, {**data, "count": -(2**40), "flag": False}, expires_in=120)
    assert replaced is not None and replaced.etag != found.etag
    again = tables["codes"].find(pk, row)
    assert again is not None and again.etag == replaced.etag
    assert dict(again.data) == {**data, "count": -(2**40), "flag": False}
    assert again.expires_at == pytest.approx(1_800_000_120.0)


def test_replace_of_a_row_deleted_since_it_was_read_is_refused(tables: Tables) -> None:
    pk = key()
    tables["codes"].save(pk, "g", {"state": "code"}, expires_in=60)
    read = tables["codes"].find(pk, "g")
    assert read is not None
    assert tables["codes"].delete(pk, "g")
    assert tables["codes"].replace(read, {"state": "redeemed"}, expires_in=60) is None
    assert tables["codes"].find(pk, "g") is None


def test_a_replace_the_service_refuses_is_the_request_s_fault(tables: Tables) -> None:
    pk = key()
    tables["codes"].save(pk, "g", {"state": "code"}, expires_in=60)
    read = tables["codes"].find(pk, "g")
    assert read is not None
    with pytest.raises(InvalidRequestError):
        tables["codes"].replace(read, {"big": "x" * 70_000}, expires_in=60)
    assert tables["codes"].find(pk, "g") == read


def test_find_and_replace_on_unreachable_storage_raise_storage_unavailable(tables: Tables) -> None:
    pk = key()
    tables["codes"].save(pk, "g", {"state": "code"}, expires_in=60)
    read = tables["codes"].find(pk, "g")
    assert read is not None
    dead = Tables.from_connection_string(azurite.connection_string(free_port()))
    with pytest.raises(StorageUnavailableError):
        dead["codes"].find(pk, "g")
    with pytest.raises(StorageUnavailableError):
        dead["codes"].replace(read, {"state": "redeemed"}, expires_in=60)


def test_storage_answers_are_read_by_the_lean_response(azurite_server: azurite.Azurite) -> None:
    """Every storage connection reads its answers' headers without the email package (_LeanResponse)."""
    tables = Tables.from_connection_string(azurite_server.connection_string)
    pk = key()
    tables["codes"].save(pk, "r", {"n": 1}, expires_in=60)
    assert tables["codes"].find(pk, "r") is not None
    session = tables._service._client._client._pipeline._transport.session
    (idle,) = [connection for connections in session._idle.values() for connection in connections]
    assert idle.response_class is _LeanResponse
