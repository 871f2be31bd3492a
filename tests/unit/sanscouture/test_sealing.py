"""Sealed state: only the broker reads or forges it, for one purpose, until it expires."""

from __future__ import annotations

import pytest

from sanscouture.keys import KeyRing
from sanscouture.sealing import SealedTooLargeError
from sanscouture.sealing import Sealer
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeKeySource


def sealer(purpose: str = "journey", clock: FakeClock | None = None, source: FakeKeySource | None = None) -> Sealer:
    clock = clock or FakeClock()
    return Sealer(KeyRing(source or FakeKeySource(), clock=clock), purpose, clock)


def test_a_sealed_document_opens_back_until_it_expires() -> None:
    clock = FakeClock()
    journeys = sealer(clock=clock)
    value = journeys.seal({"step": "entra", "n": 1}, ttl=900)
    assert value.startswith("s1.") and "entra" not in value  # encrypted, not just signed
    assert journeys.open(value) == {"step": "entra", "n": 1}
    clock.now += 900
    assert journeys.open(value) is None


def test_a_document_sealed_for_one_purpose_does_not_open_for_another() -> None:
    clock, source = FakeClock(), FakeKeySource()
    value = sealer("journey", clock, source).seal({"a": 1}, ttl=60)
    assert sealer("session", clock, source).open(value) is None


def test_a_tampered_truncated_or_foreign_value_reads_as_absent() -> None:
    journeys = sealer()
    value = journeys.seal({"a": 1}, ttl=60)
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    for bad in (flipped, value[:-10], "s1.", "s1.!!!", "", None, "x" * 5000, sealer().seal({"a": 1}, ttl=60)):
        assert journeys.open(bad) is None


def test_a_document_too_large_for_a_cookie_is_refused_when_sealed() -> None:
    import secrets

    with pytest.raises(SealedTooLargeError):
        sealer().seal({"noise": secrets.token_hex(4000)}, ttl=60)
