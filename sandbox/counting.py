"""Counting Table Storage round trips: the broker's own transport, counting every HTTP request its session
sends (through the SDK's pipeline or directly: sanscouture/adapters/tables.py ``LeanSession.exchange``).

Used by ``make bench`` (printed figures) and by tests/e2e/test_round_trips.py (pinned counts: a
count is deterministic, unlike a time).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from azure.core.pipeline.transport import RequestsTransport

from sanscouture.adapters import tables as tables_module


class CountingSession(tables_module.LeanSession):
    """The broker's session, counting the requests it sends by operation and table (``GET codes``...)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                 timeout: Any) -> tables_module.Answer:
        path = url.split("?")[0].rsplit("/", 1)[-1]
        table = path.split("(")[0] or "?"
        self.counts[f"{method} {table}"] += 1
        return super().exchange(method, url, headers, body, timeout)


class RequestCounter(RequestsTransport):
    """The broker's transport (sanscouture/adapters/tables.py: ``lean_transport``) on a :class:`CountingSession`."""

    def __init__(self) -> None:
        self.counting = CountingSession()
        super().__init__(session=self.counting, use_env_settings=False,
                         connection_timeout=tables_module._CLIENT_OPTIONS["connection_timeout"],
                         read_timeout=tables_module._CLIENT_OPTIONS["read_timeout"])

    @property
    def counts(self) -> Counter[str]:
        return self.counting.counts

    def take(self) -> Counter[str]:
        """The counts since the last take, and start again from zero."""
        counts, self.counting.counts = self.counting.counts, Counter()
        return counts


def counting_tables(connection_string: str) -> tuple[tables_module.Tables, RequestCounter]:
    """The broker's tables over ``connection_string``, every request counted."""
    counter = RequestCounter()
    service = tables_module.LeanTableServiceClient.from_connection_string(
        connection_string, transport=counter, **tables_module._CLIENT_OPTIONS
    )
    return tables_module.Tables(service), counter
