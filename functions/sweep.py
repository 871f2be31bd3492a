"""Timer: delete expired rows of the transient tables every 15 minutes.

Readers already treat an expired row as absent; the sweep only keeps the tables small. It runs in the
Functions host in Azure (the sandbox host serves HTTP functions only; tests call the sweep directly).
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions._wiring import services

bp = func.Blueprint()
log = logging.getLogger("sanscouture.sweep")


@bp.timer_trigger(schedule="0 */15 * * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
def sweep_expired_rows(timer: func.TimerRequest) -> None:
    removed = services().tables.sweep_expired()
    log.info("expired rows swept", extra={f"removed_{name}": count for name, count in removed.items()})
