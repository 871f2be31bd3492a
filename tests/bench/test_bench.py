"""``make bench`` runs end to end and prints every figure it promises (shape only: a time is never asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d+\.\d+"
OPERATIONS = ("POST /token", "full sign-in", "prompt=none")


def test_the_quick_benchmark_prints_cold_start_round_trips_latency_and_throughput_with_ratios() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BROKER_", "SANDBOX_"))}
    run = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "Cold start (import function_app in a fresh interpreter)" in out
    # Issue 11: the cold start with telemetry on is printed too, beside the one with it off.
    assert re.search(r"^Cold start with telemetry on \(configure_azure_monitor, then import function_app\)\n"
                     r"  median \d+ ms, min \d+ ms over \d+ runs$", out, re.MULTILINE), out
    assert "Table Storage round trips" in out and "Latency of the second sign-in" in out
    # Beside the peer over https (like for like), then over plain http (as the first measurement).
    title = r"Throughput: the broker in the sandbox \(B\) beside oidc-provider 9\.13\.\d+ over (https?) \(P\)"
    titles = re.findall(title, out)
    assert titles == ["https", "http"], out

    line = re.compile(
        rf"^  (?P<operation>POST /token|full sign-in|prompt=none) +(?P<c>[14]) \| +{NUMBER} +{NUMBER} +{NUMBER} +"
        rf"{NUMBER} \| +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} \| +(?P<rate>{NUMBER})× +(?P<cpu>{NUMBER}|nan)×$",
        re.MULTILINE)
    rows = [(m["operation"], int(m["c"])) for m in line.finditer(out)]
    assert rows == [(operation, c) for operation in OPERATIONS for c in (1, 4)] * 2, out
    assert all(float(m["rate"]) > 0 for m in line.finditer(out))
