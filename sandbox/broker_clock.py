"""The broker's clock in the sandbox, movable over HTTP, as the simulators' ``clock-offset`` switches.

Pairings age in days and refresh tokens end with the 4-hour re-authentication rule: a test moves time
instead of waiting. The broker's composition root takes a clock (``functions._wiring.use_clock``); the
sandbox gives it a :class:`MovableClock` and serves ``/_sandbox/clock`` beside the broker's functions,
in the sandbox's stand-in for the Functions host only: the app deployed to Azure has no such route.

``POST /_sandbox/clock`` with ``{"offset": seconds}`` sets the offset, ``DELETE`` puts it back to 0,
``GET`` shows it. :func:`time_travel` moves the broker, Entra and PSC together (each checks the
others' ``iat`` and ``auth_time``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from sandbox.switches import set_switch

PATH = "/_sandbox/clock"


class MovableClock:
    """``time.time()`` plus an offset that a test sets (thread-safe: the servers run in threads)."""

    def __init__(self) -> None:
        self._offset = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.time() + self._offset

    @property
    def offset(self) -> int:
        return self._offset

    def set(self, offset: int) -> None:
        with self._lock:
            self._offset = offset


def with_clock_control(app: Callable[..., Iterable[bytes]], clock: MovableClock) -> Callable[..., Iterable[bytes]]:
    """The broker's WSGI app, with ``/_sandbox/clock`` in front of it."""

    def control(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH:
            return app(environ, start_response)
        method = environ["REQUEST_METHOD"].upper()
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                value = json.loads(environ["wsgi.input"].read(length) or b"null")
                offset = value["offset"]
                if not isinstance(offset, int) or isinstance(offset, bool):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                return _json(start_response, 400, {"error": 'expected {"offset": <integer seconds>}'})
            clock.set(offset)
        elif method == "DELETE":
            clock.set(0)
        elif method != "GET":
            return _json(start_response, 405, {"error": "GET, POST or DELETE"})
        return _json(start_response, 200, {"offset": clock.offset, "now": int(clock())})

    return control


def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any]) -> list[bytes]:
    start_response(f"{status} {'OK' if status == 200 else 'Error'}", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


@contextmanager
def time_travel(broker_url: str, entra_url: str, psc_url: str, seconds: int) -> Iterator[None]:
    """Every clock of the sandbox ``seconds`` ahead for a block, then back to the machine's."""
    try:
        requests.post(f"{broker_url}{PATH}", json={"offset": seconds}, timeout=10).raise_for_status()
        set_switch(entra_url, "clock-offset", seconds)
        set_switch(psc_url, "clock-offset", seconds)
        yield
    finally:
        requests.delete(f"{broker_url}{PATH}", timeout=10)
        set_switch(entra_url, "clock-offset", 0)
        set_switch(psc_url, "clock-offset", 0)
