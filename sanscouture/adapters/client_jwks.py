"""Relying parties' public keys fetched from their ``jwks_uri`` (``private_key_jwt``, RFC 7523).

Cached per worker for ``ttl`` seconds; the core asks for a refresh when an assertion names a ``kid``
the cached set lacks (the client rotated its keys), honoured at most once per ``min_refresh_interval``
so that forged ``kid`` values cannot make the broker hammer the client's server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from sanscouture.errors import InvalidClientError
from sanscouture.ports import Clock

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Entry:
    jwks: Mapping[str, Any]
    fetched_at: float


class ClientJwksFetcher:
    """Fetch and cache a client's JWK Set; callable as ``fetch(jwks_uri, refresh=False)``."""

    def __init__(
        self,
        session: requests.Session,
        *,
        ttl: float = 300,
        min_refresh_interval: float = 30,
        clock: Clock = time.time,
    ) -> None:
        self._session = session
        self._ttl = ttl
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, jwks_uri: str, *, refresh: bool = False) -> Mapping[str, Any]:
        """The client's JWK Set; InvalidClientError when it cannot be fetched and none is cached."""
        cached = self._cached(jwks_uri, refresh)
        if cached is not None:
            return cached
        with self._lock_for(jwks_uri):
            cached = self._cached(jwks_uri, refresh)  # another thread may have fetched it meanwhile
            if cached is not None:
                return cached
            try:
                jwks = self._fetch(jwks_uri)
            except ValueError as error:
                stale = self._cache.get(jwks_uri)
                if stale is None:
                    raise InvalidClientError(
                        "the client's jwks_uri could not be fetched", detail=f"{jwks_uri}: {error}"
                    ) from None
                log.warning("jwks_uri refresh failed; cached set kept", extra={"error_detail": f"{error}"})
                return stale.jwks
            self._cache[jwks_uri] = _Entry(jwks, self._clock())
            return jwks

    def _cached(self, jwks_uri: str, refresh: bool) -> Mapping[str, Any] | None:
        entry = self._cache.get(jwks_uri)
        if entry is None:
            return None
        age = self._clock() - entry.fetched_at
        limit = self._min_refresh_interval if refresh else self._ttl
        return entry.jwks if age < limit else None

    def _lock_for(self, jwks_uri: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(jwks_uri, threading.Lock())

    def _fetch(self, jwks_uri: str) -> Mapping[str, Any]:
        if not jwks_uri.startswith("https://"):
            raise ValueError("jwks_uri must be https")
        try:
            response = self._session.get(jwks_uri, headers={"Accept": "application/json"}, allow_redirects=False)
        except requests.RequestException as error:
            raise ValueError(type(error).__name__) from None
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError("JWK Set larger than 64 KiB")
        try:
            jwks = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError("not JSON") from None
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise ValueError('not a JWK Set ({"keys": [...]})')
        return jwks
