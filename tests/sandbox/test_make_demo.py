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

from sandbox.run import Ports
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Page
from sandbox.servers import free_port
from sandbox.tls import LocalTls

ROOT = Path(__file__).resolve().parents[2]


def test_the_sandbox_starts_serves_the_demo_and_a_healthy_broker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("DEMO", "BROKER", "ENTRA", "PSC", "AZURITE", "AZURITE_QUEUE", "TELEMETRY")}
    env = {**os.environ, "SANDBOX_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    env.update({f"SANDBOX_{name}_PORT": str(port) for name, port in ports.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = _read_until(process, "Press Ctrl-C to stop.", timeout=60)
        assert f"https://127.0.0.1:{ports['DEMO']}/" in banner
        assert f"Telemetry (App Insights): https://127.0.0.1:{ports['TELEMETRY']}/" in banner
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


def test_with_private_key_jwt_towards_psc_a_first_sign_in_pairs_through_the_demo(
    tmp_path: Path, local_tls: LocalTls
) -> None:
    """SANDBOX_PSC_TOKEN_AUTH_METHOD=private_key_jwt: the PSC simulator registers the broker with its
    /jwks, the broker signs its client assertion with its signing key file, and the pairing works."""
    ports = {name: free_port() for name in ("DEMO", "BROKER", "ENTRA", "PSC", "AZURITE", "AZURITE_QUEUE")}
    tls_dir = tmp_path / "data" / "tls"
    tls_dir.mkdir(parents=True)
    for name in ("ca.pem", "server.pem", "server-key.pem", "bundle.pem"):  # the CA this test process trusts
        (tls_dir / name).write_bytes((local_tls.directory / name).read_bytes())
    env = {**os.environ, "SANDBOX_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
           "SANDBOX_PSC_TOKEN_AUTH_METHOD": "private_key_jwt", "SANDBOX_TELEMETRY": "0"}
    env.update({f"SANDBOX_{name}_PORT": str(port) for name, port in ports.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _read_until(process, "Press Ctrl-C to stop.", timeout=60)
        where = Sandbox(ports=Ports(demo=ports["DEMO"], broker=ports["BROKER"], entra=ports["ENTRA"],
                                    psc=ports["PSC"], azurite=ports["AZURITE"]))
        browser = Browser(where, psc_persona="medecin-cps", entra_persona="cpx")
        home = browser.go(f"{where.demo_url}/")
        assert isinstance(home, Page)
        pairing = browser.submit(home, "standard")
        assert isinstance(pairing, Page) and pairing.h1 == "Appairage du compte", pairing.h1
        confirmation = browser.submit(pairing, "pair")
        assert isinstance(confirmation, Page) and confirmation.h1 == "Connexion", confirmation.h1
        signed_in = browser.submit(confirmation, "confirm")
        assert isinstance(signed_in, Page) and "identifiant national 810100000001" in html.unescape(signed_in.html)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert "BROKER_PSC" not in output  # no settings error
    assert '"GET /jwks" 200' in output  # the PSC simulator fetched the broker's keys
    assert '"POST /auth/realms/esante-wallet/protocol/openid-connect/token" 200' in output


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
