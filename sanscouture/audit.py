"""Audit events: pairing created, confirmed, removed; sign-in succeeded or refused (and why).

Each event is a row of the ``audit`` table (PartitionKey = UTC day, RowKey = time-ordered id, so a
day reads in order) and a structured log record, which Application Insights stores as a trace with
the fields as custom dimensions. Neither ever holds a token, a code, a secret or a full national
identifier: identities appear as the masked national id and the PSC ``sub`` is not logged.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sanscouture.ports import Clock
from sanscouture.ports import RowStore

log = logging.getLogger("sanscouture.audit")

EVENTS = frozenset(
    {
        "pairing_created",
        "pairing_confirmed",
        "pairing_existing",
        "pairing_removed",
        "pairing_reverified",
        "pairing_reverification_refused",
        "login_succeeded",
        "login_refused",
        "logout",
        "backchannel_logout_delivered",
        "backchannel_logout_dead_lettered",
    }
)


class AuditLog:
    """Writes audit rows and the matching log records."""

    def __init__(self, store: RowStore, clock: Clock = time.time) -> None:
        self._store = store
        self._clock = clock

    def record(self, event: str, **fields: Any) -> None:
        self.record_all([(event, fields)])

    def record_all(self, events: list[tuple[str, Mapping[str, Any]]]) -> None:
        """Several events of one step in one request (same day partition: an entity group transaction)."""
        now = self._clock()
        rows: dict[str, Mapping[str, Any]] = {}
        day = ""
        for index, (event, fields) in enumerate(events):
            entry = self.entry(event, fields, now, index)
            day = entry.day
            rows[entry.row] = entry.data
            _log(entry)
        if len(rows) == 1:
            (row_key, data), = rows.items()
            self._store.save(day, row_key, data, expires_in=None)
        else:
            self._store.save_many(day, rows, expires_in=None)

    def entry(self, event: str, fields: Mapping[str, Any], now: float | None = None, index: int = 0) -> AuditEntry:
        """An event and the key its row will have, before it is written (a pairing stores it first)."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        now = self._clock() if now is None else now
        day = time.strftime("%Y%m%d", time.gmtime(now))
        row = f"{int(now * 1_000_000):017d}-{index}-{secrets.token_hex(4)}"
        return AuditEntry(day, row, {"event": event, "at": int(now), **_safe(fields)})

    def write(self, entry: AuditEntry, *, reconstructed: bool = False) -> None:
        """Write a prepared entry at its own key: writing it twice leaves one row (idempotent)."""
        data = {**entry.data, "reconstructed": True} if reconstructed else entry.data
        self._store.save(entry.day, entry.row, data, expires_in=None)
        _log(AuditEntry(entry.day, entry.row, data))

    def exists(self, entry: AuditEntry) -> bool:
        return self._store.find(entry.day, entry.row) is not None


@dataclass(frozen=True)
class AuditEntry:
    """One audit row: partition (UTC day), time-ordered row key, fields."""

    day: str
    row: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day, "row": self.row, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> AuditEntry:
        return cls(str(value["day"]), str(value["row"]), dict(value["data"]))


def _log(entry: AuditEntry) -> None:
    fields = {key: value for key, value in entry.data.items() if key not in ("event", "at")}
    log.info("audit %s", entry.data["event"], extra={"audit_event": entry.data["event"], **fields})


def _safe(fields: Mapping[str, Any]) -> dict[str, Any]:
    # Only flat scalar values: the audit trail is for people reading a table, not a dump of objects.
    return {key: value for key, value in fields.items() if isinstance(value, (str, int, bool)) and value != ""}
