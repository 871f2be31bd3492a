"""Abuse limits per source address: journeys started, and failed client authentications.

Each worker keeps a token bucket per source (the client address the platform's front end appends to
``X-Forwarded-For``): ``limit`` events a minute, refilled continuously. This is a cache-like guard,
per instance, that bounds how many sign-ins one source can start (each a journey sealed in the
browser's cookie and a trip to Entra ID or PSC on the broker's registrations; /authorize writes nothing
to storage) and how fast it can guess client secrets; it is not a quota shared across instances. The
number of sources remembered is bounded too, least recently seen first out.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sanscouture.errors import OAuthError
from sanscouture.ports import Clock
from sanscouture.web import Request

MAX_SOURCES = 10_000


class SlowDownError(OAuthError):
    """429: a source went over a limit; ``Retry-After`` says when a new attempt is allowed."""

    error = "slow_down"
    status = 429
    description = "too many requests from this address, retry later"
    redirectable = False

    def __init__(self, retry_after: int, *, detail: str = "") -> None:
        super().__init__(detail=detail)
        self.retry_after = retry_after


class RateLimiter:
    """``limit`` events per minute per key, as a token bucket (thread-safe, bounded memory)."""

    def __init__(self, limit_per_minute: int, clock: Clock = time.monotonic, max_keys: int = MAX_SOURCES) -> None:
        self._capacity = float(limit_per_minute)
        self._rate = limit_per_minute / 60.0
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Raise :class:`SlowDownError` if ``key`` has no event left, without spending one."""
        with self._lock:
            tokens = self._refilled(key)
        if tokens < 1:
            raise SlowDownError(self._retry_after(tokens), detail=f"rate limit for {key}")

    def spend(self, key: str) -> None:
        """Count one event of ``key``; :class:`SlowDownError` when none is left."""
        with self._lock:
            tokens = self._refilled(key)
            if tokens < 1:
                raise SlowDownError(self._retry_after(tokens), detail=f"rate limit for {key}")
            self._store(key, tokens - 1)

    def _refilled(self, key: str) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._rate)
        self._store(key, tokens)
        return tokens

    def _store(self, key: str, tokens: float) -> None:
        self._buckets[key] = (tokens, self._clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def _retry_after(self, tokens: float) -> int:
        return max(1, int((1 - tokens) / self._rate) + 1)


@dataclass(frozen=True)
class Limits:
    """The broker's limiters, built once per worker from the settings."""

    journeys: RateLimiter
    failed_client_auth: RateLimiter

    @classmethod
    def per_minute(cls, journeys: int, failed_client_auth: int, clock: Clock = time.monotonic) -> Limits:
        return cls(RateLimiter(journeys, clock), RateLimiter(failed_client_auth, clock))


def source_of(request: Request) -> str:
    """The client address: the last ``X-Forwarded-For`` entry, the one the platform's front end
    appended (earlier entries come from the client and prove nothing), without its port."""
    forwarded = request.header("x-forwarded-for") or ""
    last = forwarded.split(",")[-1].strip()
    candidate = last
    if last.startswith("["):  # [IPv6]:port
        candidate = last[1:].split("]", 1)[0]
    elif last.count(":") == 1:  # IPv4:port
        candidate = last.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return "unknown"
