"""Timer: rotate the signing key once a month, when BROKER_KEY_ROTATION_ENABLED is true (off by default).

The same rotation as ``python -m tools.keys rotate`` (sanscouture/rotation.py): at 03:00 UTC on the 1st
(NCRONTAB schedules are in UTC: MicrosoftDocs/azure-docs, articles/azure-functions/functions-bindings-timer.md,
"NCRONTAB time zones"), a new version that signs 24 hours later, and the versions retired long enough
disabled. In Azure the app's identity then needs *Key Vault Secrets Officer* on the signing-key secret
(docs/deploy.md §6). Logs ``kid``s and dates only.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import azure.functions as func

from functions._wiring import Services
from functions._wiring import services
from sanscouture.errors import OAuthError
from sanscouture.ports import Clock

if TYPE_CHECKING:  # the rotation is imported when the timer fires, not on every worker's cold start
    from sanscouture.rotation import RotationResult

bp = func.Blueprint()
log = logging.getLogger("sanscouture.keys.rotation")

ROTATION_SCHEDULE = "0 0 3 1 * *"  # {second} {minute} {hour} {day} {month} {day-of-week}


@bp.timer_trigger(schedule=ROTATION_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
def rotate_signing_key(timer: func.TimerRequest) -> None:
    run_rotation(services())


def run_rotation(wired: Services, clock: Clock = time.time) -> RotationResult | None:
    """Rotate if the setting says so; log what was done. A failure is logged, then raised (a failed run)."""
    from sanscouture.rotation import Durations
    from sanscouture.rotation import rotate

    settings = wired.settings
    if not settings.key_rotation_enabled:
        log.info("signing key rotation is off (BROKER_KEY_ROTATION_ENABLED=false)")
        return None
    durations = Durations.from_settings(
        session_max_age=settings.session_max_age, access_token_ttl=settings.access_token_ttl
    )
    try:
        result = rotate(wired.key_source, durations.policy(), clock)
    except (OAuthError, ValueError) as error:  # the store is unreachable or refuses; RotationError
        log.error("signing key rotation failed", extra={"error_detail": getattr(error, "detail", "") or str(error)})
        raise
    log.info("signing key rotation done", extra=result.summary())
    return result
