"""Composition root: builds the adapters once per worker from the settings, lazily.

Nothing is built at import time (cold start stays short and a bad setting surfaces as a clear 503
naming it, not as a worker that fails to index its functions). Any number of instances can serve any
request: nothing here holds state beyond caches.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from sanscouture.backchannel import QUEUE
from sanscouture.journey import Broker
from sanscouture.keys import KeyRing
from sanscouture.limits import Limits
from sanscouture.ports import Clock
from sanscouture.ports import KeyStore
from sanscouture.ports import MessageQueue
from sanscouture.settings import Settings

if TYPE_CHECKING:  # imported lazily at run time: MSAL, the Table SDK and requests are heavy for a cold start
    from sanscouture.adapters.client_jwks import ClientJwksFetcher
    from sanscouture.adapters.entra import EntraAdapter
    from sanscouture.adapters.http import UpstreamSession
    from sanscouture.adapters.psc import PscAdapter
    from sanscouture.adapters.queues import Queues
    from sanscouture.adapters.tables import Tables


@dataclass
class Services:
    """The collaborators of the core for one worker."""

    settings: Settings
    clock: Clock = time.time  # the sandbox moves it (sandbox/broker_clock.py); Azure never does

    @cached_property
    def http(self) -> UpstreamSession:
        """One outbound HTTP session per worker (connection reuse towards Entra and PSC)."""
        from sanscouture.adapters.http import UpstreamSession  # requests, on first use

        return UpstreamSession(self.settings.ca_bundle)

    @cached_property
    def tables(self) -> Tables:
        """The Table Storage tables; the SDK is imported by the first request that needs a row (an
        unauthenticated ``/authorize``, the discovery and the JWKS need none)."""
        from sanscouture.adapters.tables import Tables

        if self.settings.tables_connection_string:
            return Tables.from_connection_string(self.settings.tables_connection_string)
        from azure.identity import ManagedIdentityCredential  # only in Azure

        credential = ManagedIdentityCredential(client_id=self.settings.entra_managed_identity_client_id)
        assert self.settings.tables_endpoint  # enforced by Settings.from_env
        return Tables.from_endpoint(self.settings.tables_endpoint, credential)

    @cached_property
    def key_source(self) -> KeyStore:
        """Where the signing keys live: Key Vault in Azure, a file in the sandbox."""
        if self.settings.signing_key_file:
            from sanscouture.adapters.keyfile import FileKeySource

            return FileKeySource(self.settings.signing_key_file)
        from azure.identity import ManagedIdentityCredential  # only in Azure

        from sanscouture.adapters import keyvault

        assert self.settings.keyvault_url and self.settings.signing_key_name  # enforced by Settings.from_env
        credential = ManagedIdentityCredential(client_id=self.settings.entra_managed_identity_client_id)
        return keyvault.from_settings(self.settings.keyvault_url, self.settings.signing_key_name, credential)

    @cached_property
    def key_ring(self) -> KeyRing:
        """The signing keys, cached per worker."""
        return KeyRing(self.key_source, clock=self.clock)

    @cached_property
    def limits(self) -> Limits:
        """Per-source abuse limits of this worker (sanscouture/limits.py)."""
        return Limits.per_minute(
            self.settings.limit_journeys_per_minute, self.settings.limit_failed_client_auth_per_minute
        )

    @cached_property
    def client_jwks(self) -> ClientJwksFetcher:
        """Relying parties' JWK Sets (``private_key_jwt`` with ``jwks_uri``), cached per worker."""
        from sanscouture.adapters.client_jwks import ClientJwksFetcher

        return ClientJwksFetcher(self.http)

    @cached_property
    def entra(self) -> EntraAdapter:
        from sanscouture.adapters.entra import EntraAdapter

        return EntraAdapter(self.settings, self.http, clock=self.clock)

    @cached_property
    def psc(self) -> PscAdapter:
        """PSC; with ``private_key_jwt`` it signs its client assertions with the signing key ring."""
        from sanscouture.adapters.psc import PscAdapter

        return PscAdapter(self.settings, self.http, keys=self.key_ring, clock=self.clock)

    @cached_property
    def queues(self) -> Queues | None:
        """The storage account's queue service (back-channel logout), None when not configured."""
        from sanscouture.adapters.queues import Queues  # the queue SDK only when a client needs it

        if self.settings.queues:
            return Queues.from_connection_string(self.settings.queues)
        if self.settings.queues__queueserviceuri:
            from azure.identity import ManagedIdentityCredential  # only in Azure

            credential = ManagedIdentityCredential(client_id=self.settings.entra_managed_identity_client_id)
            return Queues.from_endpoint(self.settings.queues__queueserviceuri, credential)
        return None

    @cached_property
    def outbox(self) -> MessageQueue | None:
        """The back-channel logout queue the request path announces ended sessions on."""
        return self.queues[QUEUE] if self.queues is not None else None

    @cached_property
    def broker(self) -> Broker:
        """The journey's collaborators; upstream adapters contact nobody until first used."""
        return Broker(
            settings=self.settings, tables=self.tables, entra=self.entra, psc=self.psc, keys=self.key_ring,
            limits=self.limits, clock=self.clock, outbox=self.outbox,
        )


_lock = threading.Lock()
_services: Services | None = None
_clock: Clock = time.time
# A host that serves several workers in one process (the sandbox's two-worker rotation test) names the
# worker that handles the current request; the Functions host runs one worker per process and never does.
_serving: ContextVar[Services | None] = ContextVar("serving", default=None)


def services() -> Services:
    """The worker's Services, built on first use from the environment."""
    global _services
    serving = _serving.get()
    if serving is not None:
        return serving
    if _services is None:
        with _lock:
            if _services is None:
                _services = Services(Settings.from_env(os.environ), clock=_clock)
    return _services


@contextlib.contextmanager
def serving(worker: Services) -> Iterator[None]:
    """Handle the requests of this context with ``worker`` instead of the process's Services."""
    token = _serving.set(worker)
    try:
        yield
    finally:
        _serving.reset(token)


def reset() -> None:
    """Forget the built services (tests that change the environment)."""
    global _services
    with _lock:
        _services = None


def use_clock(clock: Clock) -> None:
    """The sandbox's movable clock for the services built from now on (never called in Azure)."""
    global _clock
    with _lock:
        _clock = clock
    reset()
