"""Counting Table Storage round trips: the SDK's own transport, counting every HTTP request it sends.

Used by ``make bench`` (printed figures) and by tests/e2e/test_round_trips.py (pinned counts: a
count is deterministic, unlike a time).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from azure.core.pipeline.transport import RequestsTransport

from sanscouture.adapters import tables as tables_module


class RequestCounter(RequestsTransport):
    """Counts Table Storage HTTP requests by operation and table (``GET codes``, ``PUT bindings``...)."""

    def __init__(self) -> None:
        # As the broker's own transport (sanscouture/adapters/tables.py: lean_transport).
        super().__init__(session=tables_module.LeanSession(), use_env_settings=False,
                         connection_timeout=tables_module._CLIENT_OPTIONS["connection_timeout"],
                         read_timeout=tables_module._CLIENT_OPTIONS["read_timeout"])
        self.counts: Counter[str] = Counter()

    def send(self, request: Any, **kwargs: Any) -> Any:
        path = request.url.split("?")[0].rsplit("/", 1)[-1]
        table = path.split("(")[0] or "?"
        self.counts[f"{request.method} {table}"] += 1
        return super().send(request, **kwargs)

    def take(self) -> Counter[str]:
        """The counts since the last take, and start again from zero."""
        counts, self.counts = self.counts, Counter()
        return counts


def counting_tables(connection_string: str) -> tuple[tables_module.Tables, RequestCounter]:
    """The broker's tables over ``connection_string``, every request counted."""
    counter = RequestCounter()
    service = tables_module.LeanTableServiceClient.from_connection_string(
        connection_string, transport=counter, **tables_module._CLIENT_OPTIONS
    )
    return tables_module.Tables(service), counter
