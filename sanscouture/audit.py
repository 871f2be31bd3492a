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
        "login_succeeded",
        "login_refused",
        "logout",
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
        day = time.strftime("%Y%m%d", time.gmtime(now))
        rows: dict[str, dict[str, Any]] = {}
        for index, (event, fields) in enumerate(events):
            if event not in EVENTS:
                raise ValueError(f"unknown audit event {event!r}")
            log.info("audit %s", event, extra={"audit_event": event, **_safe(fields)})
            row_key = f"{int(now * 1_000_000):017d}-{index}-{secrets.token_hex(4)}"
            rows[row_key] = {"event": event, "at": int(now), **_safe(fields)}
        if len(rows) == 1:
            (row_key, data), = rows.items()
            self._store.save(day, row_key, data, expires_in=None)
        else:
            self._store.save_many(day, rows, expires_in=None)


def _safe(fields: Mapping[str, Any]) -> dict[str, Any]:
    # Only flat scalar values: the audit trail is for people reading a table, not a dump of objects.
    return {key: value for key, value in fields.items() if isinstance(value, (str, int, bool)) and value != ""}
