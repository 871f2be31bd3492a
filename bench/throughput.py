"""Throughput of the broker beside node-oidc-provider, measured with the same client on the same machine.

The broker runs as ``make demo`` runs it (``python -m sandbox`` in a child process: the broker host with
the Flex instance's concurrency; the simulators and the demo in processes of their own; Azurite in
memory); the peer is oidc-provider pinned in package.json (``bench/peer/provider.mjs``). The load client
(:mod:`bench.load`) runs in this process, so that the CPU time read from ``/proc/<pid>/stat`` is the
provider's alone. For each operation and concurrency it prints requests/s, median and p95 latency, the
provider's CPU ms per operation, for both, and their ratios.

The providers run side by side but are loaded in turn, in alternating rounds: each line is measured in
:data:`ROUNDS` parts, the broker's and the peer's one after the other, their order swapped every round.
A shared machine's speed drifts by tens of percent within a minute (other jobs on the same CPUs); measured
one after the other, a minute apart, the broker and the peer met different machines and their ratio
moved with the drift. Interleaved, both see the same drift, and the ratio holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench import load

ROOT = Path(__file__).resolve().parent.parent
PEER_PROVIDER = ROOT / "bench" / "peer" / "provider.mjs"
REDIRECT_URI = "https://127.0.0.1:7172/cb"  # nothing listens: the client stops at the redirect
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-" + "0" * 20
ENTRA_PERSONA = "cpx"
PSC_PERSONA = "medecin-cps"
START_TIMEOUT_S = 120.0
ROUNDS = 4
"""Parts of each line, alternated between the providers."""


@dataclass(frozen=True)
class Provider:
    """A running OpenID Provider: its issuer, the process whose CPU is read, and the client's settings."""

    name: str
    pid: int
    settings: load.Settings


@dataclass(frozen=True)
class Figures:
    """One operation at one concurrency, for one provider."""

    operation: str
    concurrency: int
    result: load.PhaseResult


def peer_version() -> str:
    package = ROOT / "node_modules" / "oidc-provider" / "package.json"
    return str(json.loads(package.read_text(encoding="utf-8"))["version"])


@contextmanager
def running_peer(workdir: Path, tls: Path | None = None) -> Iterator[Provider]:
    """oidc-provider on a free port, with the benchmark's client (``client_secret_basic``, PKCE required);
    over HTTPS with the sandbox's certificate when ``tls`` names its folder (the broker's run made it)."""
    from sandbox.servers import free_port

    port = free_port()
    env = {**os.environ, "PORT": str(port), "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET,
           "REDIRECT_URI": REDIRECT_URI, "NODE_ENV": "production"}
    verify: bool | Path = True
    if tls is not None:
        env.update(TLS_CERT=str(tls / "server.pem"), TLS_KEY=str(tls / "server-key.pem"))
        verify = tls / "bundle.pem"
    issuer = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    log_path = workdir / f"peer-{'https' if tls else 'http'}.log"
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(["node", str(PEER_PROVIDER)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(f"{issuer}/.well-known/openid-configuration", process, log_path, verify=verify)
        yield Provider(f"oidc-provider {peer_version()} over {'https' if tls else 'http'}", process.pid,
                       load.Settings(issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                     redirect_uri=REDIRECT_URI, scope="openid",
                                     verify=str(verify) if isinstance(verify, Path) else verify, timeout_s=30.0))
    finally:
        _stop(process)
        log.close()


@contextmanager
def running_broker(workdir: Path) -> Iterator[Provider]:
    """``python -m sandbox`` with the benchmark's client registered, Azurite in memory, telemetry off."""
    from sandbox import azurite
    from sandbox.run import RegisteredClient
    from sandbox.servers import free_port

    client = RegisteredClient(client_id=CLIENT_ID, redirect_uris=(REDIRECT_URI,), secret=CLIENT_SECRET)
    clients_file = workdir / "clients.json"
    clients_file.write_text(json.dumps([client.metadata()]), encoding="utf-8")
    store = azurite.start(free_port())
    ports = {name: free_port() for name in ("DEMO", "BROKER", "ENTRA", "PSC")}
    env = {**os.environ, "SANDBOX_DATA_DIR": str(workdir / "sandbox"), "SANDBOX_CLIENTS": str(clients_file),
           "SANDBOX_AZURITE_CONNECTION": store.connection_string, "SANDBOX_TELEMETRY": "0",
           "PYTHONUNBUFFERED": "1",
           # One benchmarking source signs in far faster than a person: the per-source limits would answer 429.
           "BROKER_LIMIT_JOURNEYS_PER_MINUTE": "1000000", "BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE": "1000000",
           **{f"SANDBOX_{name}_PORT": str(port) for name, port in ports.items()}}
    log_path = workdir / "sandbox.log"
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        issuer = f"https://127.0.0.1:{ports['BROKER']}"
        ca = workdir / "sandbox" / "tls" / "bundle.pem"
        _wait_for(f"{issuer}/.well-known/openid-configuration", process, log_path, verify=ca)
        while "Press Ctrl-C to stop." not in log_path.read_text(encoding="utf-8"):  # every server is up
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited ({process.returncode})")
            time.sleep(0.1)
        # requests takes REQUESTS_CA_BUNDLE over a session's own ``verify``: the sandbox CA is named there.
        os.environ["REQUESTS_CA_BUNDLE"] = str(ca)
        yield Provider("broker (sandbox)", process.pid, load.Settings(
            issuer=issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI,
            scope="openid scope_all", verify=str(ca), timeout_s=30.0,
            extra_params=(("login_hint", ENTRA_PERSONA),),  # Entra SSO: the persona without a page
            press=("pair", "confirm"),  # "Appairer" on the first sign-in only, then "Confirmer"
            hints=((f"127.0.0.1:{ports['PSC']}", PSC_PERSONA),),
        ))
    finally:
        _stop(process)
        log.close()
        store.stop()


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, verify: bool | Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if not isinstance(verify, Path) or verify.exists():
            try:
                if requests.get(url, timeout=2, verify=str(verify) if isinstance(verify, Path) else verify).ok:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}: not answering after {START_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class Subject:
    """A provider ready to be loaded: its CPU probe and a factory of warmed-up relying parties."""

    provider: Provider
    probe: load.ProcessProbe
    new_party: Callable[[], load.RelyingParty]


def prepare(provider: Provider, warmup: int, concurrency: int) -> Subject:
    """Discovery, the provider's keys, then warm-up sign-ins (first calls, caches, the pairing)."""
    probe = load.ProcessProbe(provider.pid)
    metadata = load.discover(provider.settings)
    keys = load.SigningKeys(metadata["jwks_uri"], provider.settings)

    def new_party() -> load.RelyingParty:
        party = load.RelyingParty(provider.settings, metadata, keys)
        party.connect()  # each round makes new parties: none times a handshake with the provider
        return party

    warm, _ = load.run_phase("warm-up", concurrency, range(warmup), load.RelyingParty.full_flow, new_party, probe)
    if warm.errors:
        raise RuntimeError(f"{provider.name}: warm-up failed: {warm.error_samples[0]}")
    return Subject(provider, probe, new_party)


def run_operation(operation: str, subject: Subject, level: int, flows: int) -> load.PhaseResult:
    """``flows`` operations at concurrency ``level``: only the operation itself is timed."""
    if operation == "POST /token":
        return load.token_phase(level, flows, subject.new_party, subject.probe)[1]
    if operation == "full sign-in":
        return load.run_phase(operation, level, range(flows), load.RelyingParty.full_flow, subject.new_party,
                              subject.probe)[0]
    return load.silent_phase(level, flows, subject.new_party, subject.probe)


OPERATIONS = ("POST /token", "full sign-in", "prompt=none")


def measure(subjects: list[Subject], flows: int, levels: tuple[int, ...], rounds: int = ROUNDS) -> list[list[Figures]]:
    """Each operation at each concurrency for every subject, in alternating rounds (module docstring);
    one list of figures per subject, in the order of ``subjects``."""
    rounds = max(1, min(rounds, flows))
    shares = [flows // rounds + (1 if part < flows % rounds else 0) for part in range(rounds)]
    figures: list[list[Figures]] = [[] for _ in subjects]
    for operation in OPERATIONS:
        for level in levels:
            parts: list[list[load.PhaseResult]] = [[] for _ in subjects]
            for part, share in enumerate(shares):
                order = range(len(subjects)) if part % 2 == 0 else reversed(range(len(subjects)))
                for index in order:
                    parts[index].append(run_operation(operation, subjects[index], level, share))
            for index, subject in enumerate(subjects):
                result = load.combined(parts[index])
                if result.errors:
                    raise RuntimeError(f"{subject.provider.name} {operation} C={level}: {result.errors} errors, "
                                       f"e.g. {result.error_samples[:2]}")
                figures[index].append(Figures(operation, level, result))
    return figures


def report(broker: list[Figures], peer: list[Figures], peer_name: str, out: Callable[[str], None] = print) -> None:
    """One line per operation and concurrency; ratios are broker / peer (requests/s and CPU ms per op)."""
    out(f"\nThroughput: the broker in the sandbox (B) beside {peer_name} (P), same client, same machine")
    out("  (req/s and latency seen by the client; CPU: the provider process's ms per operation)")
    header = (f"  {'operation':<14} {'C':>2} | {'B req/s':>8} {'med ms':>7} {'p95 ms':>7} {'CPU ms':>7} | "
              f"{'P req/s':>8} {'med ms':>7} {'p95 ms':>7} {'CPU ms':>7} | {'ratio req/s':>11} {'ratio CPU':>9}")
    out(header)
    out("  " + "-" * (len(header) - 2))
    for ours, theirs in zip(broker, peer, strict=True):
        b, p = ours.result, theirs.result
        rate_ratio = b.rate_per_s / p.rate_per_s if p.rate_per_s else float("nan")
        cpu_ratio = (b.op_cpu_ms_per_op / p.op_cpu_ms_per_op
                     if b.op_cpu_ms_per_op is not None and p.op_cpu_ms_per_op else float("nan"))
        out(f"  {ours.operation:<14} {ours.concurrency:>2} | {b.rate_per_s:>8.1f} {b.median_ms:>7.2f} {b.p95_ms:>7.2f} "
            f"{_cpu(b):>7} | {p.rate_per_s:>8.1f} {p.median_ms:>7.2f} {p.p95_ms:>7.2f} {_cpu(p):>7} | "
            f"{rate_ratio:>10.3f}× {cpu_ratio:>8.2f}×")


def _cpu(result: load.PhaseResult) -> str:
    return f"{result.op_cpu_ms_per_op:.2f}" if result.op_cpu_ms_per_op is not None else "-"


def throughput(flows: int = 100, warmup: int = 30, levels: tuple[int, ...] = (1, 4)) -> None:
    """Start the broker and the peer (over HTTPS with the broker's certificate, like for like, and over
    plain HTTP as in the issue's first measurement), measure them in alternating rounds, print both tables."""
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as folder:
        workdir = Path(folder)
        try:
            with (running_broker(workdir) as broker,
                  running_peer(workdir, tls=workdir / "sandbox" / "tls") as peer_tls,
                  running_peer(workdir) as peer):
                subjects = [prepare(provider, warmup, max(levels)) for provider in (broker, peer_tls, peer)]
                ours, theirs_tls, theirs = measure(subjects, flows, levels)
        except Exception:
            for log in ("sandbox.log", "peer-https.log", "peer-http.log"):
                if (workdir / log).exists():
                    print(f"--- {log} (last lines) ---\n" + "\n".join(
                        (workdir / log).read_text(encoding="utf-8").splitlines()[-40:]), file=sys.stderr)
            raise
    report(ours, theirs_tls, peer_tls.name)
    print(f"  {flows} operations per line after {warmup} warm-up sign-ins, in {min(ROUNDS, flows)} rounds alternated "
          "between the providers; all over https (keep-alive)")
    report(ours, theirs, peer.name)
    print("  the same broker figures beside the peer over plain http (the broker over https: it sets Secure "
          "cookies; in Azure, TLS ends at the platform's front end, not in the worker)")
