"""The Flex Consumption instance's concurrency model, for the sandbox's broker host.

On Flex Consumption an instance takes at most ``perInstanceConcurrency`` HTTP requests at once
(beyond that the platform holds them or scales out), and the Python worker runs the synchronous
handlers on a thread pool of ``PYTHON_THREADPOOL_THREAD_COUNT`` threads. Both come from the Bicep
deployment (``infra/bicep/main.bicepparam``, defaults in ``main.bicep``; the app settings module sets
the thread pool to ``min(perInstanceConcurrency, 32)``): this module reads them there, so the sandbox
serves the broker as the deployed instance would and cannot drift from it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BICEP_DIR = Path(__file__).resolve().parent.parent / "infra" / "bicep"
THREAD_POOL_CAP = 32  # main.bicep: threadPoolThreadCount: min(perInstanceConcurrency, 32)


@dataclass(frozen=True)
class FlexInstance:
    """The deployed instance's settings that shape how it serves requests."""

    per_instance_concurrency: int
    instance_memory_mb: int
    maximum_instance_count: int

    @property
    def thread_pool_threads(self) -> int:
        """PYTHON_THREADPOOL_THREAD_COUNT as the Bicep sets it."""
        return min(self.per_instance_concurrency, THREAD_POOL_CAP)

    @property
    def concurrent_invocations(self) -> int:
        """Requests one instance runs at once: its concurrency, bounded by the worker's threads."""
        return min(self.per_instance_concurrency, self.thread_pool_threads)

    @classmethod
    def from_bicep(cls, directory: Path = BICEP_DIR) -> FlexInstance:
        """The values of ``main.bicepparam``, or the defaults of ``main.bicep`` where it sets none."""
        defaults = _int_params(directory / "main.bicep", r"^param\s+(\w+)\s+int\s*=\s*(\d+)\s*$")
        chosen = _int_params(directory / "main.bicepparam", r"^param\s+(\w+)\s*=\s*(\d+)\s*$")
        values = {**defaults, **chosen}
        try:
            return cls(
                per_instance_concurrency=values["perInstanceConcurrency"],
                instance_memory_mb=values["instanceMemoryMB"],
                maximum_instance_count=values["maximumInstanceCount"],
            )
        except KeyError as missing:
            raise ValueError(f"{directory}: no integer value for {missing.args[0]}") from None


def _int_params(path: Path, pattern: str) -> dict[str, int]:
    text = path.read_text(encoding="utf-8")
    return {name: int(value) for name, value in re.findall(pattern, text, re.MULTILINE)}


class FlexHost:
    """A WSGI application run as one Flex instance runs it: at most ``concurrent_invocations`` at once,
    the others wait for a free worker thread (the platform holds them)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], instance: FlexInstance) -> None:
        self.app = app
        self.instance = instance
        self._slots = threading.BoundedSemaphore(instance.concurrent_invocations)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._slots:
            # The body is produced inside the slot: the handler's work is all done here.
            return list(self.app(environ, start_response))
