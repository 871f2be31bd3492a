"""Per-source limits: a token bucket per address, refilled over the minute, bounded in memory."""

from __future__ import annotations

import pytest

from sanscouture.limits import RateLimiter
from sanscouture.limits import SlowDownError
from sanscouture.limits import source_of
from sanscouture.web import Request
from tests.unit.oidc.fakes import FakeClock


def test_a_source_has_its_limit_a_minute_refilled_continuously() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, clock)
    for _ in range(3):
        limiter.spend("203.0.113.5")
    with pytest.raises(SlowDownError) as refused:
        limiter.spend("203.0.113.5")
    assert refused.value.retry_after == 21  # one token comes back every 20 s
    limiter.spend("198.51.100.7")  # another source is not affected
    clock.now += 20
    limiter.spend("203.0.113.5")
    with pytest.raises(SlowDownError):
        limiter.check("203.0.113.5")


def test_check_does_not_spend() -> None:
    limiter = RateLimiter(1, FakeClock())
    for _ in range(5):
        limiter.check("a")
    limiter.spend("a")


def test_the_number_of_sources_remembered_is_bounded() -> None:
    limiter = RateLimiter(1, FakeClock(), max_keys=2)
    for source in ("a", "b", "c"):
        limiter.spend(source)
    limiter.spend("a")  # "a" was forgotten first: a fresh bucket


@pytest.mark.parametrize(
    ("forwarded", "source"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("10.0.0.1, 203.0.113.5:51234", "203.0.113.5"),  # the entry the front end appended, no port
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
        ("evil, not-an-address", "unknown"),
        ("", "unknown"),
    ],
)
def test_the_source_is_the_last_forwarded_address(forwarded: str, source: str) -> None:
    request = Request(method="GET", url="https://b/authorize", headers={"x-forwarded-for": forwarded})
    assert source_of(request) == source
