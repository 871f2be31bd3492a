"""Start and stop Azurite's Table service and, when asked, its Queue service (npm package ``azurite``,
installed by ``npm ci``; ``azurite-table`` and ``azurite-queue`` are its single-service commands)."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_QUEUE = ROOT / "node_modules" / ".bin" / "azurite-queue"

# Azurite's fixed development account (documented publicly; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite:
    """A running Azurite Table service, and its Queue service when started with one."""

    port: int
    process: subprocess.Popen[bytes]
    queue_port: int | None = None
    queue_process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    @property
    def queue_connection_string(self) -> str | None:
        """The Queue service's connection string (``BROKER_QUEUES``), None when it was not started."""
        return queue_connection_string(self.queue_port) if self.queue_port is not None else None

    def stop(self) -> None:
        for process in (self.process, self.queue_process):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def queue_connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def start(port: int, location: Path | None = None, log_file: Path | None = None,
          queue_port: int | None = None) -> Azurite:
    """Start Azurite on 127.0.0.1:port, on disk under ``location`` or in memory when None; with
    ``queue_port``, its Queue service too (the back-channel logout queues)."""
    process = _start_service(AZURITE_TABLE, "table", port, location, log_file)
    azurite = Azurite(port, process)
    if queue_port is not None:
        try:
            azurite.queue_process = _start_service(AZURITE_QUEUE, "queue", queue_port,
                                                   location / "queue" if location else None, log_file)
        except RuntimeError:
            azurite.stop()
            raise
        azurite.queue_port = queue_port
    return azurite


def _start_service(command: Path, service: str, port: int, location: Path | None,
                   log_file: Path | None) -> subprocess.Popen[bytes]:
    if not command.exists():
        raise RuntimeError(f"{command} is missing: run 'npm ci' (make does it)")
    args = [
        str(command),
        f"--{service}Host", "127.0.0.1",
        f"--{service}Port", str(port),
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode} (port {port} in use?)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait(timeout=5)
    raise RuntimeError(f"Azurite's {service} service did not listen on port {port} within 30 s")
