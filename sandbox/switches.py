"""Simulator switches: documented behaviours of the real service that a test selects at run time.

A switch is one function registered on a :class:`Switchboard` with :meth:`Switchboard.switch`. It
receives the simulator's mutable state and the JSON value posted to ``/_sim/switches/<name>``,
checks the value (``ValueError`` for one it does not take: the request answers 400 with the
message) and applies it. Its docstring is what ``GET /_sim/switches`` shows. ``DELETE
/_sim/switches`` puts every switch back to its default, which is also applied when the simulator
starts. Adding a behaviour found later in the real service is one switch function and one test.

Tests drive switches over HTTP (the simulators may run in another process) with :func:`switched`.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from typing import Generic
from typing import TypeVar

import requests
from flask import Flask
from flask import Response
from flask import request

State = TypeVar("State")
Apply = Callable[[State, Any], None]


@dataclass(frozen=True)
class _Switch(Generic[State]):
    name: str
    doc: str
    default: Any
    apply: Apply[State]


class Switchboard(Generic[State]):
    """The switches of one simulator, applied to one state object (thread-safe)."""

    def __init__(self) -> None:
        self._switches: dict[str, _Switch[State]] = {}

    def switch(self, name: str, default: Any) -> Callable[[Apply[State]], Apply[State]]:
        """Register ``function(state, value)`` as the switch ``name`` with its ``default`` value."""

        def register(function: Apply[State]) -> Apply[State]:
            if name in self._switches:
                raise ValueError(f"switch {name!r} registered twice")
            self._switches[name] = _Switch(name, inspect.getdoc(function) or "", default, function)
            return function

        return register

    def bind(self, state: State) -> BoundSwitches[State]:
        """The switches of one running simulator, every one at its default."""
        bound = BoundSwitches(self._switches, state)
        bound.reset()
        return bound


class BoundSwitches(Generic[State]):
    """A switchboard applied to one simulator's state; serves ``/_sim/switches``."""

    def __init__(self, switches: dict[str, _Switch[State]], state: State) -> None:
        self._switches = switches
        self._state = state
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def set(self, name: str, value: Any) -> None:
        switch = self._switches.get(name)
        if switch is None:
            raise KeyError(name)
        with self._lock:
            switch.apply(self._state, value)
            self._values[name] = value

    def reset(self) -> None:
        for name, switch in self._switches.items():
            self.set(name, switch.default)

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            name: {"value": self._values.get(name), "default": switch.default, "doc": switch.doc}
            for name, switch in sorted(self._switches.items())
        }

    def register_routes(self, app: Flask) -> None:
        app.add_url_rule("/_sim/switches", "sim_switches", self._list_or_reset, methods=["GET", "DELETE"])
        app.add_url_rule("/_sim/switches/<name>", "sim_switch", self._set, methods=["GET", "POST", "PUT"])

    def _list_or_reset(self) -> Response:
        if request.method == "DELETE":
            self.reset()
        return _json(self.describe())

    def _set(self, name: str) -> Response:
        if name not in self._switches:
            return _json({"error": f"unknown switch {name!r}", "switches": sorted(self._switches)}, 404)
        if request.method == "GET":
            return _json(self.describe()[name])
        try:
            value = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            return _json({"error": "the body must be the switch's JSON value"}, 400)
        try:
            self.set(name, value)
        except (ValueError, TypeError) as error:
            return _json({"error": str(error), "doc": self._switches[name].doc}, 400)
        return _json(self.describe()[name])


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, content_type="application/json")


def set_switch(base_url: str, name: str, value: Any, *, timeout: float = 10) -> None:
    """POST one switch's value to a running simulator; raises with the simulator's message if refused."""
    response = requests.post(f"{base_url}/_sim/switches/{name}", data=json.dumps(value), timeout=timeout)
    if response.status_code != 200:
        raise ValueError(f"switch {name}={value!r} refused: {response.text}")


@contextmanager
def switched(base_url: str, **values: Any) -> Iterator[None]:
    """Set switches (``conditional_access={...}`` names ``conditional-access``) for a block, then reset all."""
    try:
        for name, value in values.items():
            set_switch(base_url, name.replace("_", "-"), value)
        yield
    finally:
        requests.delete(f"{base_url}/_sim/switches", timeout=10)
