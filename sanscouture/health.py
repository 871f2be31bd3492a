"""Liveness and dependency readiness for ``/health``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Mapping

from sanscouture.models import DependencyStatus
from sanscouture.web import NO_STORE
from sanscouture.web import Response

Probe = Callable[[], None]

log = logging.getLogger("sanscouture.health")


def probe_all(probes: Mapping[str, Probe]) -> list[DependencyStatus]:
    """Run every probe; a probe fails by raising, and the exception's class names the cause."""
    statuses = []
    for name, probe in probes.items():
        started = time.perf_counter()
        try:
            probe()
        except Exception as error:
            statuses.append(DependencyStatus(name, False, _describe(error)))
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        statuses.append(DependencyStatus(name, True, f"{elapsed_ms:.0f} ms"))
    return statuses


def health_response(statuses: list[DependencyStatus]) -> Response:
    """200 ``{"status": "ok"}`` when every dependency answers, else 503 ``{"status": "unavailable"}``.

    The public answer is the status only: which dependency fails, and why, helps an attacker more
    than a load balancer. The details go to the log (Application Insights traces), where
    administrators read them.
    """
    failing = [status for status in statuses if not status.ok]
    if failing:
        log.warning(
            "health: dependency unavailable",
            extra={"failing": ",".join(s.name for s in failing),
                   "error_detail": "; ".join(f"{s.name}: {s.detail}" for s in failing)},
        )
    return Response.json({"status": "unavailable" if failing else "ok"}, status=503 if failing else 200,
                         headers=NO_STORE)


def _describe(error: Exception) -> str:
    # The class name and the logged-safe detail only: no connection string or URL with secrets.
    detail = getattr(error, "detail", "") or getattr(error, "setting", "")
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
