"""Timer: delete expired rows of the transient tables every 15 minutes.

Readers already treat an expired row as absent; the sweep only keeps the tables small. It runs in the
Functions host in Azure (the sandbox host serves HTTP functions only; tests call the sweep directly).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

from functions._wiring import services
from sanscouture.bindings import restore_missing_audit
from sanscouture.journey import Broker

if TYPE_CHECKING:  # the Table SDK is imported by the first request that needs it
    from sanscouture.adapters.tables import Tables

bp = func.Blueprint()
log = logging.getLogger("sanscouture.sweep")


# Pairings of the last two days are checked for their audit row: an outage of a few hours between a
# pairing's two writes is repaired at the next sweep after it.
AUDIT_CHECK_WINDOW = 2 * 24 * 3600


@bp.timer_trigger(schedule="0 */15 * * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
def sweep_expired_rows(timer: func.TimerRequest) -> None:
    wired = services()
    sweep(wired.tables, wired.broker)


def sweep(tables: Tables, broker: Broker) -> None:
    """Delete expired rows; restore the audit row of any pairing whose request failed after its insert."""
    removed = tables.sweep_expired()
    log.info("expired rows swept", extra={f"removed_{name}": count for name, count in removed.items()})
    restored = restore_missing_audit(broker.bindings, broker.audit, broker.clock() - AUDIT_CHECK_WINDOW)
    if restored:
        log.warning("pairing audit rows restored", extra={"restored": restored})
