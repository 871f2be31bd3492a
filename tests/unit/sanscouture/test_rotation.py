"""Signing-key rotation's rules (sanscouture/rotation.py), on an in-memory key store and key rings.

docs/design.md "Keys and secrets": a new version is published ``lead`` before it signs, a version is
disabled ``retention`` after it stopped signing, never the signer or the newest; re-running is harmless.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

import jwt
import pytest

from sanscouture.keys import KeyRing
from sanscouture.keys import generate_private_jwk
from sanscouture.models import KeyVersion
from sanscouture.rotation import DEFAULT_LEAD
from sanscouture.rotation import Durations
from sanscouture.rotation import RotationError
from sanscouture.rotation import RotationPolicy
from sanscouture.rotation import plan_rotation
from sanscouture.rotation import rotate
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeClock

HOUR = 3600.0
POLICY = Durations().policy()  # lead 24 h, retention 5 h


class MemoryKeyStore:
    """A KeyStore as Key Vault behaves: versions with created / not_before / enabled, newest first."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.items: list[dict[str, Any]] = []  # newest first
        self.writes = 0
        self._ids = itertools.count(1)

    def put(self, jwk: Mapping[str, Any] | None = None, *, created: float, not_before: float | None = None,
            enabled: bool = True) -> dict[str, Any]:
        item = {"id": f"v{next(self._ids)}", "jwk": dict(jwk or small_key()), "created": created,
                "nbf": not_before, "enabled": enabled}
        self.items.insert(0, item)
        return item

    def load(self) -> list[dict[str, Any]]:
        return [{**item["jwk"], **({"nbf": item["nbf"]} if item["nbf"] is not None else {})}
                for item in self.items if item["enabled"]]

    def versions(self) -> list[KeyVersion]:
        return [KeyVersion(id=item["id"], kid=item["jwk"].get("kid") if "d" in item["jwk"] else None,
                           created=item["created"], not_before=item["nbf"], enabled=item["enabled"])
                for item in self.items]

    def add(self, jwk: Mapping[str, Any], not_before: float) -> KeyVersion:
        self.writes += 1
        item = self.put(jwk, created=self.clock(), not_before=not_before)
        return KeyVersion(item["id"], str(jwk["kid"]), item["created"], not_before, True)

    def disable(self, version: KeyVersion) -> None:
        self.writes += 1
        next(item for item in self.items if item["id"] == version.id)["enabled"] = False

    def enabled_kids(self) -> list[str]:
        return [item["jwk"]["kid"] for item in self.items if item["enabled"]]


_KEYS = itertools.cycle([generate_private_jwk() for _ in range(4)])  # made once: RSA key generation is slow


def small_key() -> dict[str, Any]:
    """A distinct key for each of a test's (at most four) versions; the rotation itself makes 3072-bit keys."""
    return dict(next(_KEYS))


def store_with_one_key(clock: FakeClock) -> MemoryKeyStore:
    store = MemoryKeyStore(clock)
    store.put(created=clock() - 90 * 24 * HOUR)
    return store


# -- durations -----------------------------------------------------------------------------------


def test_the_default_policy_is_a_day_of_lead_and_five_hours_of_retention() -> None:
    assert (POLICY.lead, POLICY.retention) == (DEFAULT_LEAD, 4 * HOUR + HOUR)
    assert Durations().minimum_lead == HOUR + 300  # a worker's key cache, then a relying party's /jwks copy


@pytest.mark.parametrize(
    ("session_max_age", "access_token_ttl", "longest", "retention"),
    [
        (14400, 120, "session", 14400 + 3600),  # a sealed session cookie outlives everything else
        (600, 120, "journey", 15 * 60 + 15 * 60 + 3600),  # a sealed journey: 15 min, then 15 min of grace
        (600, 3000, "access_token", 3000 + 30 + 3600),  # verified at /userinfo with 30 s of leeway
    ],
)
def test_the_retention_is_the_longest_lifetime_of_what_a_key_signs_or_seals_plus_a_margin(
    session_max_age: int, access_token_ttl: int, longest: str, retention: float
) -> None:
    durations = Durations.from_settings(session_max_age=session_max_age, access_token_ttl=access_token_ttl)
    assert durations.longest_lifetime[0] == longest
    assert durations.policy().retention == retention


def test_a_lead_shorter_than_the_caches_is_refused() -> None:
    with pytest.raises(RotationError, match="shorter than the workers' key cache"):
        dataclasses.replace(Durations(), lead=HOUR).policy()
    assert dataclasses.replace(Durations(), lead=HOUR + 300).policy().lead == HOUR + 300


def test_scaling_keeps_the_rules_and_shrinks_every_duration() -> None:
    scaled = Durations().scaled(1 / 3600)
    assert scaled.retention == pytest.approx(5.0)
    assert scaled.minimum_lead == pytest.approx((3600 + 300) / 3600)
    assert scaled.policy().lead == pytest.approx(24.0)


# -- the plan --------------------------------------------------------------------------------------


def test_rotate_adds_a_version_that_signs_after_the_lead_and_is_published_at_once() -> None:
    clock = FakeClock()
    store = store_with_one_key(clock)
    current = store.items[0]["jwk"]["kid"]
    result = rotate(store, POLICY, clock, new_key=small_key)
    assert result.added is not None and result.added.not_before == NOW + DEFAULT_LEAD
    ring = KeyRing(store, clock=clock)
    assert [key["kid"] for key in ring.public_jwks()["keys"]] == [result.added.kid, current]
    assert jwt.get_unverified_header(ring.sign({"iss": "x"}))["kid"] == current
    clock.now = NOW + DEFAULT_LEAD
    assert jwt.get_unverified_header(KeyRing(store, clock=clock).sign({"iss": "x"}))["kid"] == result.added.kid


def test_the_lead_counts_from_the_write_not_from_the_plan() -> None:
    clock = FakeClock()
    store = store_with_one_key(clock)

    def slow_key() -> dict[str, Any]:
        clock.now += 5  # generating a 3072-bit key takes a moment
        return small_key()

    added = rotate(store, POLICY, clock, new_key=slow_key).added
    assert added is not None and added.not_before == NOW + 5 + DEFAULT_LEAD


def test_rotate_is_idempotent_while_the_next_version_waits() -> None:
    clock = FakeClock()
    store = store_with_one_key(clock)
    rotate(store, POLICY, clock, new_key=small_key)
    clock.now += HOUR
    again = rotate(store, POLICY, clock, new_key=small_key)
    assert again.added is None and again.plan.add_not_before is None
    assert [version.kid for version in again.plan.pending] == [store.items[0]["jwk"]["kid"]]
    assert len(store.items) == 2 and store.writes == 1


def test_a_retired_version_is_disabled_only_once_the_retention_has_passed_since_it_stopped_signing() -> None:
    clock = FakeClock()
    store = store_with_one_key(clock)
    old = store.items[0]["jwk"]["kid"]
    added = rotate(store, POLICY, clock, new_key=small_key).added
    assert added is not None
    switch = NOW + DEFAULT_LEAD
    clock.now = switch + POLICY.retention - 1
    kept = rotate(store, POLICY, clock, add=False)
    assert kept.disabled == ()
    assert [(item.version.kid, item.retired_at) for item in kept.plan.retired] == [(old, switch)]
    clock.now = switch + POLICY.retention
    done = rotate(store, POLICY, clock, add=False)
    assert [version.kid for version in done.disabled] == [old]
    assert store.enabled_kids() == [added.kid]


def test_never_the_signer_nor_the_newest_version() -> None:
    clock = FakeClock()
    store = MemoryKeyStore(clock)
    # Every version still ahead of its nbf (a misconfigured vault): the ring signs with the oldest.
    store.put(created=NOW - 10 * 24 * HOUR, not_before=NOW + HOUR)
    store.put(created=NOW - 5 * 24 * HOUR, not_before=NOW + 2 * HOUR)
    plan = plan_rotation(store.versions(), NOW + 10 * POLICY.retention, POLICY, add=True)  # both long active
    assert plan.signer.kid == store.items[0]["jwk"]["kid"]  # the newest, never disabled
    assert [version.kid for version in plan.to_disable] == [store.items[1]["jwk"]["kid"]]
    early = plan_rotation(store.versions(), NOW, POLICY, add=True)
    assert early.signer.kid == store.items[1]["jwk"]["kid"]  # the oldest, as KeyRing falls back to it
    assert early.to_disable == () and early.add_not_before is None  # one is already waiting


def test_the_planned_signer_is_the_one_the_key_ring_signs_with() -> None:
    clock = FakeClock()
    store = MemoryKeyStore(clock)
    store.put(created=NOW - 30 * 24 * HOUR)
    store.put(created=NOW - 2 * 24 * HOUR, not_before=NOW - 24 * HOUR)
    store.put(created=NOW - HOUR, not_before=NOW + 23 * HOUR)
    plan = plan_rotation(store.versions(), NOW, POLICY, add=True)
    assert jwt.get_unverified_header(KeyRing(store, clock=clock).sign({"iss": "x"}))["kid"] == plan.signer.kid
    assert [version.kid for version in plan.pending] == [store.items[0]["jwk"]["kid"]]


def test_a_version_without_not_before_began_to_sign_when_it_was_created() -> None:
    clock = FakeClock()
    store = MemoryKeyStore(clock)
    store.put(created=NOW - 30 * 24 * HOUR)
    store.put(created=NOW - 2 * HOUR)  # added by hand without --not-before: signing since its creation
    plan = plan_rotation(store.versions(), NOW, POLICY, add=False)
    assert [(item.retired_at, item.disable) for item in plan.retired] == [(NOW - 2 * HOUR, False)]


def test_a_version_whose_end_is_unknown_is_kept() -> None:
    versions = [
        KeyVersion("new", "kid-new", created=None, not_before=None, enabled=True),  # a file key added by hand
        KeyVersion("old", "kid-old", created=None, not_before=None, enabled=True),
    ]
    plan = plan_rotation(versions, NOW, POLICY, add=False)
    assert [(item.version.kid, item.retired_at, item.disable) for item in plan.retired] == [("kid-old", None, False)]
    assert any("disable it by hand" in line for line in rotate_lines(plan))


def test_disabled_and_unusable_versions_are_left_alone() -> None:
    versions = [
        KeyVersion("v3", None, created=NOW - 10, not_before=None, enabled=True),  # not a key: the ring skips it
        KeyVersion("v2", "kid-2", created=NOW - 100 * HOUR, not_before=None, enabled=True),
        KeyVersion("v1", "kid-1", created=NOW - 900 * HOUR, not_before=None, enabled=False),
    ]
    plan = plan_rotation(versions, NOW, POLICY, add=False)
    assert plan.signer.id == "v2" and plan.retired == () and [version.id for version in plan.unusable] == ["v3"]


def test_no_usable_key_is_refused() -> None:
    with pytest.raises(RotationError, match="no usable signing key"):
        plan_rotation([KeyVersion("v1", "k", None, None, enabled=False)], NOW, POLICY, add=True)


def test_a_dry_run_writes_nothing_and_says_what_it_would_do() -> None:
    clock = FakeClock()
    store = store_with_one_key(clock)
    result = rotate(store, POLICY, clock, dry_run=True)
    assert store.writes == 0 and result.added is None
    assert result.lines()[1].startswith("would add")


def test_the_report_names_kids_and_dates_never_key_material() -> None:
    clock = FakeClock()
    store = store_with_one_key(clock)
    result = rotate(store, POLICY, clock, new_key=small_key)
    text = "\n".join(result.lines()) + repr(result.summary())
    assert result.summary()["added_kid"] in text
    for item in store.items:
        for member in ("d", "p", "q", "dp", "dq", "qi", "n"):
            assert item["jwk"][member] not in text


def rotate_lines(plan: Any) -> list[str]:
    from sanscouture.rotation import RotationResult

    return RotationResult(plan, None, (), dry_run=True).lines()


# -- why the lead: two workers and a relying party's cache -----------------------------------------


def violations(lead: float) -> list[str]:
    """Two workers whose caches were loaded half a cache lifetime apart, a relying party caching /jwks
    for its max-age: every signature must verify with the JWK Set any worker served within max-age."""
    durations = Durations()
    clock = FakeClock()
    store = store_with_one_key(clock)
    rings = [KeyRing(store, clock=clock), KeyRing(store, clock=clock)]
    rings[0].probe()
    clock.now += durations.worker_cache / 2
    rings[1].probe()
    policy = RotationPolicy(lead=lead, retention=durations.retention)
    rotate(store, policy, clock, new_key=small_key)
    served: list[tuple[float, set[str]]] = []
    found = []
    step = durations.jwks_max_age / 2
    for _ in range(int((lead + 2 * durations.worker_cache) / step)):
        clock.now += step
        for ring in rings:
            served.append((clock(), {key["kid"] for key in ring.public_jwks()["keys"]}))
        for index, ring in enumerate(rings):
            kid = jwt.get_unverified_header(ring.sign({"iss": "x"}))["kid"]
            cached = [kids for at, kids in served if at >= clock() - durations.jwks_max_age]
            if any(kid not in kids for kids in cached):
                found.append(f"worker {index} signs with {kid} at +{clock() - NOW:.0f} s, unknown to a cached /jwks")
    return found


def test_without_a_lead_a_worker_signs_with_a_key_another_worker_does_not_publish_yet() -> None:
    assert violations(lead=0) != []


def test_with_the_minimum_lead_every_signature_is_in_every_recent_jwks() -> None:
    assert violations(lead=Durations().minimum_lead) == []
