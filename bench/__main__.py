"""``make bench``: the broker's performance figures, printed (never asserted in timed tests).

1. Cold start: wall time of ``import function_app`` in a fresh interpreter (median of several runs),
   and which heavy modules that import pulls in.
2. Storage round trips per sign-in: every HTTP request to Table Storage, counted by table, during a
   first sign-in (pairing), a second sign-in (confirmation only), a silent ``prompt=none`` sign-in,
   and the relying party's ``/token`` + ``/userinfo``.
3. Latency: median and p95 of each step of the second sign-in over repeated runs, through the whole
   sandbox (HTTPS, simulators, Azurite) on this machine.
4. Throughput beside node-oidc-provider (bench/throughput.py): requests/s, median and p95 latency and
   the provider process's CPU ms per operation for ``POST /token``, the full warm paired sign-in and
   ``prompt=none`` with a session, at concurrency 1 and 4, for both, with their ratios.

``--quick`` runs every part with a handful of iterations (tests/bench/test_bench.py): the output's shape,
not figures worth reading.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEAVY_MODULES = (
    "msal", "jinja2", "azure.identity", "azure.keyvault.secrets", "azure.monitor", "azure.data.tables", "requests",
    "cryptography", "jwt",
)


# What the first sign-in imports on first use (the wiring is lazy): a worker that has served one carries them.
FIRST_SIGN_IN_MODULES = (
    "sanscouture.adapters.tables", "sanscouture.adapters.http", "sanscouture.adapters.client_jwks",
    "sanscouture.adapters.entra", "sanscouture.adapters.psc", "sanscouture.pages.render", "jinja2",
)
_RSS = "int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"


def cold_start(runs: int = 7) -> None:
    """Wall time and resident memory of ``import function_app``, then of what a first sign-in adds."""
    code = ("import time, importlib; t=time.perf_counter(); import function_app; a=time.perf_counter()-t; "
            f"r={_RSS}; [importlib.import_module(m) for m in {FIRST_SIGN_IN_MODULES!r}]; "
            f"print(a, r, time.perf_counter()-t, {_RSS})")
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        samples.append([float(value) for value in out.stdout.split()])
    probe = f"import sys, function_app; print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    times = [sample[0] for sample in samples]
    print("Cold start (import function_app in a fresh interpreter)")
    print(f"  median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms over {runs} runs")
    print(f"  worker RSS after the import: {statistics.median(sample[1] for sample in samples) / 1024:.1f} MiB")
    print(f"  heavy modules imported at start-up: {loaded.stdout.strip() or 'none'}")
    print("  with what a first sign-in imports on first use (Table SDK, requests, MSAL, Jinja2):")
    print(f"    median {statistics.median(sample[2] for sample in samples) * 1000:.0f} ms in all, "
          f"worker RSS {statistics.median(sample[3] for sample in samples) / 1024:.1f} MiB")
    cold_start_with_telemetry(runs)


def cold_start_with_telemetry(runs: int) -> None:
    """The same, with telemetry on: the worker's ``configure_azure_monitor`` (as the sandbox does it), then
    the import. Exported to a port where nothing listens; ``os._exit`` skips the exporter's final flush."""
    from sandbox.servers import free_port
    from sandbox.telemetry_sink import exporter_environment

    code = ("import os, time; t=time.perf_counter(); from sanscouture.adapters import telemetry; "
            "telemetry.configure_like_the_worker(); import function_app; "
            "print(time.perf_counter()-t, flush=True); os._exit(0)")
    env = {**os.environ, **exporter_environment(f"https://127.0.0.1:{free_port()}")}
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                             env=env)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    print("Cold start with telemetry on (configure_azure_monitor, then import function_app)")
    print(f"  median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms over {runs} runs")


def storage_and_latency(latency_runs: int = 20) -> None:
    from functions import _wiring
    from sandbox import azurite
    from sandbox.counting import counting_tables
    from sandbox.run import Ports
    from sandbox.run import RegisteredClient
    from sandbox.run import Sandbox
    from sandbox.scripted import Browser
    from sandbox.scripted import Landing
    from sandbox.scripted import Page
    from sandbox.scripted import Pkce
    from sandbox.scripted import RelyingParty
    from sandbox.servers import free_port

    store = azurite.start(free_port())
    client = RegisteredClient(client_id="bench", secret="bench-secret-0123456789", redirect_uris=("https://rp.bench/cb",))
    sandbox = Sandbox(
        ports=Ports(free_port(), free_port(), free_port(), free_port(), 0),
        data_dir=Path(tempfile.mkdtemp(prefix="bench-")),
        azurite_connection=store.connection_string,
        clients=[client],
        # One benchmarking source signs in far faster than a person: the per-source limits would answer 429.
        broker_overrides={"BROKER_LIMIT_JOURNEYS_PER_MINUTE": "1000000",
                          "BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE": "1000000"},
    )
    try:
        sandbox.start()
        wired = _wiring.services()
        wired.__dict__["tables"], counter = counting_tables(store.connection_string)
        wired.__dict__.pop("broker", None)
        party = RelyingParty(sandbox, client)

        def sign_in(browser: Browser, entra: str, actions: list[str], **extra: str) -> tuple[str, Pkce]:
            pkce = Pkce()
            result = browser.go(party.authorization_url(pkce, login_hint=entra, **extra), stop_at=party.redirect_uri)
            for action in actions:
                assert isinstance(result, Page), result
                result = browser.submit(result, action, stop_at=party.redirect_uri)
            assert isinstance(result, Landing) and "code" in result.params, result
            return result.params["code"], pkce

        def rp_side(code: str, pkce: Pkce) -> None:
            tokens = party.redeem(code, pkce).json()
            party.userinfo(tokens["access_token"]).raise_for_status()

        # Warm up the upstream caches (discovery, JWKS, MSAL metadata) as a running worker has them.
        warm = Browser(sandbox, psc_persona="medecin2-cps")
        rp_side(*sign_in(warm, "fido2", ["pair", "confirm"]))
        counter.take()

        print("\nTable Storage round trips (HTTP requests to Azurite, by operation and table)")
        browser = Browser(sandbox, psc_persona="medecin-cps")
        rows: list[tuple[str, Counter[str]]] = []
        code, pkce = sign_in(browser, "cpx", ["pair", "confirm"])
        rows.append(("first sign-in (pairing), browser part", counter.take()))
        rp_side(code, pkce)
        rows.append(("  then /token + /userinfo", counter.take()))
        code, pkce = sign_in(Browser(sandbox), "cpx", ["confirm"])
        rows.append(("second sign-in (confirmation), browser part", counter.take()))
        rp_side(code, pkce)
        rows.append(("  then /token + /userinfo", counter.take()))
        code, pkce = sign_in(browser, "cpx", [], prompt="none")
        rows.append(("silent sign-in (prompt=none, broker session)", counter.take()))
        for label, counts in rows:
            detail = ", ".join(f"{key}×{value}" for key, value in sorted(counts.items()))
            print(f"  {label:<48} {sum(counts.values()):>3}   {detail}")

        print(f"\nLatency of the second sign-in over {latency_runs} runs (whole sandbox on this machine)")
        steps: dict[str, list[float]] = {"authorize → Entra → callback page": [], "confirm → code": [],
                                         "/token": [], "/userinfo": []}
        for _ in range(latency_runs):
            b = Browser(sandbox)
            pkce = Pkce()
            page = _timed(steps["authorize → Entra → callback page"], lambda b=b, pkce=pkce: b.go(
                party.authorization_url(pkce, login_hint="cpx"), stop_at=party.redirect_uri))
            landing = _timed(steps["confirm → code"], lambda b=b, page=page: b.submit(page, "confirm",
                                                                                     stop_at=party.redirect_uri))
            tokens = _timed(steps["/token"], lambda landing=landing, pkce=pkce: party.redeem(
                landing.params["code"], pkce)).json()
            _timed(steps["/userinfo"], lambda tokens=tokens: party.userinfo(tokens["access_token"]))
        for label, samples in steps.items():
            samples.sort()
            p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
            print(f"  {label:<40} median {statistics.median(samples) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms")
    finally:
        sandbox.stop()
        store.stop()


def _timed(samples: list[float], action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = action()
    samples.append(time.perf_counter() - started)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="The broker's performance figures.")
    parser.add_argument("--quick", action="store_true", help="a few iterations of everything (for the tests)")
    parser.add_argument("-n", "--flows", type=int, default=200, help="operations per throughput line (200)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up sign-ins before the throughput (50)")
    args = parser.parse_args(argv)
    from bench.throughput import throughput

    if args.quick:
        cold_start(runs=2)
        storage_and_latency(latency_runs=3)
        throughput(flows=4, warmup=2)
    else:
        cold_start()
        storage_and_latency()
        throughput(flows=args.flows, warmup=args.warmup)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
