"""Start and stop Azurite's Table service (npm package ``azurite``, installed by ``npm ci``)."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"

# Azurite's fixed development account (documented publicly; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    """A running Azurite Table service."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def start(port: int, location: Path | None = None, log_file: Path | None = None) -> Azurite:
    """Start Azurite on 127.0.0.1:port, on disk under ``location`` or in memory when None."""
    if not AZURITE_TABLE.exists():
        raise RuntimeError(f"{AZURITE_TABLE} is missing: run 'npm ci' (make does it)")
    args = [
        str(AZURITE_TABLE),
        "--tableHost", "127.0.0.1",
        "--tablePort", str(port),
        "--skipApiVersionCheck",
        "--disableProductStyleUrl",
        "--disableTelemetry",
    ]
    if location is None:
        args.append("--inMemoryPersistence")
    else:
        location.mkdir(parents=True, exist_ok=True)
        args += ["--location", str(location)]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
    azurite = Azurite(port, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode} (port {port} in use?)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return azurite
        except OSError:
            time.sleep(0.1)
    azurite.stop()
    raise RuntimeError(f"Azurite did not listen on port {port} within 30 s")
