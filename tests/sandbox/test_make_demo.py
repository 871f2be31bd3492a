"""``make demo`` runs ``python -m sandbox``: it serves the demo page and a healthy broker, then stops on Ctrl-C."""

from __future__ import annotations

import html
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from sandbox.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_sandbox_starts_serves_the_demo_and_a_healthy_broker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("DEMO", "BROKER", "ENTRA", "PSC", "AZURITE")}
    env = {**os.environ, "SANDBOX_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    env.update({f"SANDBOX_{name}_PORT": str(port) for name, port in ports.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = _read_until(process, "Press Ctrl-C to stop.", timeout=60)
        assert f"https://127.0.0.1:{ports['DEMO']}/" in banner
        ca = tmp_path / "data" / "tls" / "ca.pem"
        assert ca.exists()
        bundle = str(tmp_path / "data" / "tls" / "bundle.pem")

        demo = requests.get(f"https://127.0.0.1:{ports['DEMO']}/", verify=bundle, timeout=10)
        assert demo.status_code == 200
        assert "S'identifier avec PRO SANTE CONNECT" in html.unescape(demo.text)

        health = requests.get(f"https://127.0.0.1:{ports['BROKER']}/health", verify=bundle, timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, output
    assert "Stopping the sandbox" in output


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise AssertionError(f"the sandbox exited early:\n{seen}")
            continue
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} within {timeout} s:\n{seen}")
