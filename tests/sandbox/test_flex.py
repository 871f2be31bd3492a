"""The sandbox serves the broker with the Flex instance's concurrency, read from the Bicep deployment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sandbox.flex import BICEP_DIR
from sandbox.flex import THREAD_POOL_CAP
from sandbox.flex import FlexHost
from sandbox.flex import FlexInstance


def bicep(tmp_path: Path, main: str, params: str) -> Path:
    (tmp_path / "main.bicep").write_text(main, encoding="utf-8")
    (tmp_path / "main.bicepparam").write_text(params, encoding="utf-8")
    return tmp_path


MAIN = """
@minValue(1)
param perInstanceConcurrency int = 16
param instanceMemoryMB int = 2048
param maximumInstanceCount int = 40
param location string = 'francecentral'
"""


def test_the_parameter_file_wins_over_the_defaults(tmp_path: Path) -> None:
    folder = bicep(tmp_path, MAIN, "using './main.bicep'\nparam perInstanceConcurrency = 4\nparam location = 'x'\n")
    assert FlexInstance.from_bicep(folder) == FlexInstance(4, 2048, 40)
    assert FlexInstance.from_bicep(folder).concurrent_invocations == 4


def test_the_worker_thread_pool_caps_the_concurrency_as_the_app_settings_do(tmp_path: Path) -> None:
    folder = bicep(tmp_path, MAIN, "param perInstanceConcurrency = 100\n")
    instance = FlexInstance.from_bicep(folder)
    assert (instance.per_instance_concurrency, instance.thread_pool_threads) == (100, 32)
    assert instance.concurrent_invocations == 32


def test_the_repository_bicep_is_read_and_sets_the_thread_pool_with_the_same_cap() -> None:
    instance = FlexInstance.from_bicep()
    assert instance.per_instance_concurrency > 1  # Python's Flex default (1) is not what is deployed
    main = (BICEP_DIR / "main.bicep").read_text(encoding="utf-8")
    assert f"threadPoolThreadCount: min(perInstanceConcurrency, {THREAD_POOL_CAP})" in main


def test_at_most_the_instance_concurrency_runs_at_once() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        start_response("200 OK", [])
        return [b"ok"]

    host = FlexHost(slow, FlexInstance(3, 2048, 40))
    with ThreadPoolExecutor(max_workers=10) as pool:
        bodies = list(pool.map(lambda _: host({}, lambda *a: None), range(12)))
    assert bodies == [[b"ok"]] * 12
    assert peak == 3
