"""The core's view of its collaborators, as ``typing.Protocol`` classes.

Adapters in ``sanscouture/adapters`` implement them against Azure (Table Storage, Key Vault), MSAL and
PSC; unit tests implement them with small fakes. The core imports this module, never an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import Protocol

from sanscouture.models import Row

Clock = Callable[[], float]


class RowStore(Protocol):
    """One table: expiry-aware rows with single-use consumption (see adapters/tables.py)."""

    name: str

    def save(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> None: ...

    def insert(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> bool: ...

    def find(self, partition: str, row: str) -> Row | None: ...

    def replace(self, current: Row, data: Mapping[str, Any], expires_in: float | None) -> Row | None: ...

    def consume(self, partition: str, row: str) -> Row | None: ...

    def delete(self, partition: str, row: str) -> bool: ...

    def partition(self, partition: str) -> list[Row]: ...


class TableSet(Protocol):
    """The broker's tables by name (``journeys``, ``codes``, ``sessions``, ``bindings``, ...)."""

    def __getitem__(self, name: str) -> RowStore: ...


class KeySource(Protocol):
    """Where the broker's private signing keys live (Key Vault in Azure, a file in the sandbox).

    ``load`` returns the enabled private JWKs (dicts with ``kid``, ``kty``, ``alg``), newest first.
    It is called rarely: the key ring caches its result per worker.
    """

    def load(self) -> list[dict[str, Any]]: ...
