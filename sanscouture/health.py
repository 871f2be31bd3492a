"""Liveness and dependency readiness for ``/health``."""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Mapping

from sanscouture.models import DependencyStatus
from sanscouture.web import NO_STORE
from sanscouture.web import Response

Probe = Callable[[], None]


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
    """200 when every dependency answers, else 503 naming the ones that do not."""
    failing = [status.name for status in statuses if not status.ok]
    body: dict[str, object] = {
        "status": "unavailable" if failing else "ok",
        "dependencies": {
            status.name: {"ok": status.ok, "detail": status.detail} for status in statuses
        },
    }
    if failing:
        body["failing"] = failing
    return Response.json(body, status=503 if failing else 200, headers=NO_STORE)


def _describe(error: Exception) -> str:
    # The class name and the logged-safe detail only: no connection string or URL with secrets.
    detail = getattr(error, "detail", "") or getattr(error, "setting", "")
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
