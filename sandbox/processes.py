"""Serve a sandbox application in a process of its own.

The identity-provider simulators and the demo service run in Azure (and in the world) on other
machines than the broker: in the broker's process they would share its interpreter, its GIL and its
CPU time, and every figure measured on the broker would include theirs. Each runs here in a child
process (``multiprocessing`` spawn: a fresh interpreter, nothing inherited but the arguments) that
builds its WSGI application with a factory named by module and function, serves it with
:func:`sandbox.servers.serve` and stops when the parent asks or when the parent goes away.

Tests reach the simulators only over HTTP (``/_sim`` endpoints, :mod:`sandbox.switches`), so they see
no difference.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
from dataclasses import dataclass
from dataclasses import field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sandbox.servers import serve
from sandbox.tls import LocalTls

START_TIMEOUT_S = 60.0


@dataclass
class ChildServer:
    """A server running in a child process; ``stop()`` ends it and waits for it."""

    name: str
    url: str
    process: multiprocessing.process.BaseProcess = field(repr=False)
    _control: Connection = field(repr=False)

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # BrokenPipeError: the child is already gone
            self._control.send("stop")
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        self._control.close()


@dataclass
class Starting:
    """A child process on its way up; :meth:`wait` returns it once it accepts connections."""

    name: str
    process: multiprocessing.process.BaseProcess = field(repr=False)
    _control: Connection = field(repr=False)

    def wait(self, timeout_s: float = START_TIMEOUT_S) -> ChildServer:
        if not self._control.poll(timeout_s):
            self.process.terminate()
            raise RuntimeError(f"sandbox {self.name}: not started after {timeout_s:.0f} s")
        try:
            url = self._control.recv()
        except EOFError:
            self.process.join(timeout=5)
            raise RuntimeError(
                f"sandbox {self.name}: the process exited during start-up ({self.process.exitcode})") from None
        return ChildServer(name=self.name, url=url, process=self.process, _control=self._control)


def start_async(name: str, factory: str, kwargs: dict[str, Any], port: int, tls_dir: Path | None) -> Starting:
    """Start serving ``factory(**kwargs)`` (``"module:function"`` returning a WSGI app) on
    127.0.0.1:``port`` in a child process, without waiting for it."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    process = context.Process(
        target=_child_main, args=(name, factory, kwargs, port, str(tls_dir) if tls_dir else None, child_end),
        name=f"sandbox-{name}", daemon=True,
    )
    process.start()
    child_end.close()
    return Starting(name, process, parent_end)


def start(name: str, factory: str, kwargs: dict[str, Any], port: int, tls_dir: Path | None) -> ChildServer:
    """:func:`start_async`, then wait until the child accepts connections."""
    return start_async(name, factory, kwargs, port, tls_dir).wait()


def _child_main(name: str, factory: str, kwargs: dict[str, Any], port: int, tls_dir: str | None,
                control: Connection) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tls = LocalTls(Path(tls_dir)) if tls_dir else None
    if tls is not None:
        tls.trust_in_this_process()
    module_name, _, function_name = factory.partition(":")
    app = getattr(importlib.import_module(module_name), function_name)(**kwargs)
    server = serve(name, app, port, tls)
    control.send(server.url)
    try:
        control.recv()  # "stop", or EOFError when the parent is gone
    except (EOFError, OSError):
        pass
    finally:
        server.stop()
        os._exit(0)  # daemon threads of kept-alive connections must not hold the exit
