"""Serve a sandbox application in a process of its own.

The identity-provider simulators and the demo service run in Azure (and in the world) on other
machines than the broker: in the broker's process they would share its interpreter, its GIL and its
CPU time, and every figure measured on the broker would include theirs. Each runs here in a child
process (``python -m sandbox.processes``: a fresh interpreter, nothing shared but the arguments) that
builds its WSGI application with a factory named by module and function, serves it with
:func:`sandbox.servers.serve` and stops when the parent asks or when the parent goes away.

Tests reach the simulators only over HTTP (``/_sim`` endpoints, :mod:`sandbox.switches`), so they see
no difference.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import select
import subprocess
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from sandbox.servers import serve
from sandbox.tls import LocalTls

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0


@dataclass
class ChildServer:
    """A server running in a child process; ``stop()`` ends it and waits for it."""

    name: str
    url: str
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # BrokenPipeError: the child is already gone
                self.process.stdin.close()  # end of input: the child stops
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class Starting:
    """A child process on its way up; :meth:`wait` returns it once it accepts connections."""

    name: str
    process: subprocess.Popen[bytes] = field(repr=False)

    def wait(self, timeout_s: float = START_TIMEOUT_S) -> ChildServer:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else b""
        if not line.startswith(_READY):
            self.process.kill()
            code = self.process.wait(timeout=5)
            raise RuntimeError(f"sandbox {self.name}: not started (exit code {code}, see its stderr)")
        return ChildServer(name=self.name, url=line[len(_READY):].decode().strip(), process=self.process)


_READY = b"serving "


def start_async(name: str, factory: str, kwargs: dict[str, Any], port: int, tls_dir: Path | None) -> Starting:
    """Start serving ``factory(**kwargs)`` (``"module:function"`` returning a WSGI app) on
    127.0.0.1:``port`` in a child process, without waiting for it.

    The child is ``python -m sandbox.processes``: its arguments come pickled on its standard input (a
    pipe between this process and its own child), it answers ``serving <url>`` on its standard output
    and stops at the end of its input, that is when this process closes it or exits.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.processes"], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        start_new_session=True,  # Ctrl-C in a terminal reaches the parent only: it decides when children stop
    )
    assert process.stdin is not None
    process.stdin.write(pickle.dumps((name, factory, kwargs, port, str(tls_dir) if tls_dir else None)))
    process.stdin.flush()
    return Starting(name, process)


def start(name: str, factory: str, kwargs: dict[str, Any], port: int, tls_dir: Path | None) -> ChildServer:
    """:func:`start_async`, then wait until the child accepts connections."""
    return start_async(name, factory, kwargs, port, tls_dir).wait()


def _child_main() -> None:
    name, factory, kwargs, port, tls_dir = pickle.load(sys.stdin.buffer)  # noqa: S301 (from our parent)
    tls = LocalTls(Path(tls_dir)) if tls_dir else None
    if tls is not None:
        tls.trust_in_this_process()
    module_name, _, function_name = factory.partition(":")
    app = getattr(importlib.import_module(module_name), function_name)(**kwargs)
    server = serve(name, app, port, tls)
    sys.stdout.buffer.write(_READY + server.url.encode() + b"\n")
    sys.stdout.buffer.flush()
    try:
        sys.stdin.buffer.read()  # until the parent closes it or is gone
    finally:
        server.stop()
        os._exit(0)  # daemon threads of kept-alive connections must not hold the exit


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _child_main()
