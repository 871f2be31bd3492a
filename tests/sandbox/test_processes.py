"""The simulators and the demo service run in processes of their own, never in the broker's."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import requests

from sandbox import processes
from sandbox.run import Sandbox
from sandbox.servers import free_port
from sandbox.tls import LocalTls


def pid_app(greeting: str) -> Callable[..., list[bytes]]:
    """A WSGI app that tells which process serves it (a factory for the child)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{greeting} {os.getpid()}".encode()]

    return app


def test_a_child_serves_the_factory_app_in_another_process_and_stops(local_tls: LocalTls) -> None:
    child = processes.start("pid", "tests.sandbox.test_processes:pid_app", {"greeting": "bonjour"}, free_port(),
                            local_tls.directory)
    try:
        answer = requests.get(f"{child.url}/", timeout=10).text
        assert answer == f"bonjour {child.pid}" and child.pid != os.getpid()
    finally:
        child.stop()
    assert child.process.poll() is not None


def test_the_sandbox_runs_the_simulators_and_the_demo_outside_the_broker_process(sandbox: Sandbox) -> None:
    children = {server.name: server for server in sandbox.servers if isinstance(server, processes.ChildServer)}
    assert set(children) == {"entra", "psc", "demo"}
    assert all(child.process.poll() is None and child.pid != os.getpid() for child in children.values())
    assert requests.get(f"{sandbox.entra_url}/personas", timeout=10).status_code == 200
    assert requests.get(f"{sandbox.psc_url}/personas", timeout=10).status_code == 200
