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
FETCH_DEADLINE = 5.0  # seconds for the whole download: a slow server must not hold a /token request


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
            content = self._download(jwks_uri)
        except requests.RequestException as error:
            raise ValueError(type(error).__name__) from None
        try:
            jwks = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError("not JSON") from None
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise ValueError('not a JWK Set ({"keys": [...]})')
        return jwks

    def _download(self, jwks_uri: str) -> bytes:
        """The body, streamed: never more than MAX_JWKS_BYTES read, never longer than FETCH_DEADLINE
        in all (the per-read timeout alone lets a server drip one byte at a time for ever)."""
        started = time.monotonic()
        with self._session.get(
            jwks_uri, headers={"Accept": "application/json"}, allow_redirects=False, stream=True
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                raise ValueError("JWK Set larger than 64 KiB")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=8192):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("JWK Set larger than 64 KiB")
                if time.monotonic() - started > FETCH_DEADLINE:
                    raise ValueError(f"JWK Set not received within {FETCH_DEADLINE:.0f} s")
            return bytes(body)
