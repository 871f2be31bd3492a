"""``python -m sandbox`` (``make demo``): start everything, print the URL to open, stop on Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path

from sandbox.run import DATA_DIR
from sandbox.run import Ports
from sandbox.run import Sandbox
from sandbox.run import load_extra_clients


def main() -> None:
    ports = Ports.from_env(os.environ)
    extra = os.environ.get("SANDBOX_CLIENTS")
    data_dir = Path(os.environ.get("SANDBOX_DATA_DIR") or DATA_DIR)
    sandbox = Sandbox(
        ports=ports,
        data_dir=data_dir,
        extra_clients=load_extra_clients(Path(extra)) if extra else [],
        psc_token_auth_method=os.environ.get("SANDBOX_PSC_TOKEN_AUTH_METHOD") or "client_secret_basic",
        # An Azurite the caller runs (a test that stops it to see an outage); else the sandbox starts one.
        azurite_connection=os.environ.get("SANDBOX_AZURITE_CONNECTION") or None,
        telemetry_port=_telemetry_port(os.environ),
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sandbox.start()
        _print_banner(sandbox)
        stop.wait()
    finally:
        print("\nStopping the sandbox…", flush=True)
        sandbox.stop()


def _telemetry_port(env: Mapping[str, str]) -> int | None:
    """SANDBOX_TELEMETRY=0 turns the telemetry sink off; SANDBOX_TELEMETRY_PORT moves it (default 7074)."""
    if env.get("SANDBOX_TELEMETRY", "1").strip() == "0":
        return None
    value = env.get("SANDBOX_TELEMETRY_PORT", "").strip() or "7074"
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"SANDBOX_TELEMETRY_PORT: {value!r} is not a TCP port")
    return int(value)


def _queues(sandbox: Sandbox) -> str:
    if not sandbox.queues_connection:
        return "off (an Azurite of yours: no back-channel logout)"
    return f"127.0.0.1:{sandbox.ports.azurite_queue} (back-channel logout)"


def _print_banner(sandbox: Sandbox) -> None:
    print(
        f"""
Sans-couture sandbox is running.

  Open the demo service:   {sandbox.demo_url}/
  Broker (issuer):         {sandbox.broker_url}   (health: {sandbox.broker_url}/health)
  Entra ID simulator:      {sandbox.entra_url}/personas
  PSC simulator:           {sandbox.psc_url}/personas
  Table Storage (Azurite): 127.0.0.1:{sandbox.ports.azurite}
  Queues (Azurite):        {_queues(sandbox)}
  Telemetry (App Insights): {sandbox.telemetry_url or "off (SANDBOX_TELEMETRY=0)"}/

Your browser must trust the sandbox CA: {sandbox.tls.ca}
Relying parties registered: {", ".join(c["client_id"] for c in sandbox.registered_metadata())}
Press Ctrl-C to stop.
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
