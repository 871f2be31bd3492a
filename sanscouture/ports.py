"""The core's view of its collaborators, as ``typing.Protocol`` classes.

Adapters in ``sanscouture/adapters`` implement them against Azure (Table Storage, Key Vault), MSAL and
PSC; unit tests implement them with small fakes. The core imports this module, never an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import Protocol

from sanscouture.models import EntraAccount
from sanscouture.models import KeyVersion
from sanscouture.models import PscAuthentication
from sanscouture.models import Row
from sanscouture.models import UpstreamStart

Clock = Callable[[], float]


class RowStore(Protocol):
    """One table: expiry-aware rows with single-use consumption (see adapters/tables.py)."""

    name: str

    def save(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> Row: ...

    def insert(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> bool: ...

    def find(self, partition: str, row: str) -> Row | None: ...

    def replace(self, current: Row, data: Mapping[str, Any], expires_in: float | None) -> Row | None: ...

    def merge_if_unchanged(self, partition: str, row: str, etag: str, changes: Mapping[str, Any]) -> str | None:
        """Set ``changes`` on the row only if it is still at ``etag``: its new etag, or None (changed or gone)."""
        ...

    def merge(self, partition: str, row: str, changes: Mapping[str, Any]) -> bool:
        """Set ``changes`` on the row whatever its version (other properties untouched); False if gone."""
        ...

    def consume(self, partition: str, row: str) -> Row | None: ...

    def consume_row(self, current: Row) -> bool: ...

    def save_many(self, partition: str, rows: Mapping[str, Mapping[str, Any]], expires_in: float | None) -> None: ...

    def delete(self, partition: str, row: str) -> bool: ...

    def partition(self, partition: str) -> list[Row]: ...

    def rows_since(self, field: str, since: float) -> list[Row]:
        """Live rows whose numeric ``field`` is at least ``since`` (a scan: for the timer, never a sign-in)."""
        ...

    def rows_where(self, equals: Mapping[str, str]) -> list[Row]:
        """Live rows whose string properties have these values (a filtered scan: for a pairing's
        removal, never a sign-in)."""
        ...


class TableSet(Protocol):
    """The broker's tables by name (``journeys``, ``codes``, ``sessions``, ``bindings``, ...)."""

    def __getitem__(self, name: str) -> RowStore: ...


class MessageQueue(Protocol):
    """One Azure Storage queue (``backchannel-logout``, its poison queue), as the core writes to it."""

    name: str

    def send(self, body: str, *, delay: int = 0) -> None:
        """Enqueue ``body``, invisible for ``delay`` seconds (a retry's backoff)."""
        ...


class KeySource(Protocol):
    """Where the broker's private signing keys live (Key Vault in Azure, a file in the sandbox).

    ``load`` returns the enabled private JWKs (dicts with ``kid``, ``kty``, ``alg``), newest first.
    It is called rarely: the key ring caches its result per worker.
    """

    def load(self) -> list[dict[str, Any]]: ...


class KeyStore(KeySource, Protocol):
    """A key source that a rotation can also write (sanscouture/rotation.py).

    ``versions`` lists every version, disabled ones too, in the order ``load`` uses (newest first);
    ``add`` stores a new private JWK that signs from ``not_before``; ``disable`` stops a version from
    being loaded (Key Vault: the version's ``enabled`` attribute; it can be enabled again).
    """

    def versions(self) -> list[KeyVersion]: ...

    def add(self, jwk: Mapping[str, Any], not_before: float) -> KeyVersion: ...

    def disable(self, version: KeyVersion) -> None: ...


class EntraSignIn(Protocol):
    """Entra ID as the upstream provider (MSAL's auth code flow + our own ID token verification)."""

    def begin(
        self,
        *,
        redirect_uri: str,
        state: str,
        prompt: str | None,
        login_hint: str | None,
        max_age: int | None,
    ) -> UpstreamStart: ...

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> EntraAccount:
        """Redeem the code and verify the ID token; raise UpstreamError on any failure."""
        ...


class PscSignIn(Protocol):
    """Pro Santé Connect as the upstream provider for pairing and one-off sign-ins."""

    def begin(
        self, *, redirect_uri: str, state: str, prompt: str | None = None, max_age: int | None = None
    ) -> UpstreamStart: ...

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> PscAuthentication: ...

    def end_session_url(self) -> str | None:
        """PSC's end_session_endpoint, where a person closes their PSC (wallet) session; None if unknown."""
        ...
