"""Signing-key rotation with no failed sign-in: the rules, over any :class:`~sanscouture.ports.KeyStore`.

A rotation is two steps, both safe to repeat (docs/design.md "Keys and secrets"):

1. **add** a new version whose ``nbf`` is ``lead`` ahead: every worker reloads its keys at least once an
   hour (:data:`~sanscouture.keys.KEY_CACHE_LIFETIME`) and relying parties may cache ``/jwks`` for its
   ``max-age`` (:data:`~sanscouture.keys.JWKS_MAX_AGE`), so with ``lead`` at least their sum every
   worker and every cache that follows ``max-age`` holds the new key before any worker signs with it
   (OpenID Connect Core 1.0 §10.1.1: keys are rolled over by adding them to the JWK Set first). Not
   done while a version is still waiting for its ``nbf``: re-running adds nothing.
2. **disable** the versions that stopped signing more than ``retention`` ago. A version stops signing
   when a newer one becomes active; ``retention`` is the longest time something it signed or sealed is
   still verified or opened (ID token, access token, sealed journey and session cookies: their AES
   keys are derived from the signing key) plus a margin. Never the current signer, never the newest
   version, never a version whose end is unknown.

The rules are pure (:func:`plan_rotation`); :func:`rotate` applies a plan to a store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from datetime import UTC
from datetime import datetime
from typing import Any

from sanscouture.journeys import EXPIRED_GRACE
from sanscouture.journeys import JOURNEY_TTL
from sanscouture.keys import JWKS_MAX_AGE
from sanscouture.keys import KEY_CACHE_LIFETIME
from sanscouture.keys import VERIFY_LEEWAY
from sanscouture.keys import generate_private_jwk
from sanscouture.models import KeyVersion
from sanscouture.oidc.id_token import ID_TOKEN_TTL
from sanscouture.ports import Clock
from sanscouture.ports import KeyStore

# A month between rotations leaves a day for the new key to reach every cache, including relying
# parties that keep a JWK Set longer than its max-age and fetch it again only for an unknown kid.
DEFAULT_LEAD = 24 * 3600
# Beyond the longest lifetime: clock skew between the workers and the machine that rotates, relying
# parties' own verification leeway, a worker whose reload failed around the switch.
RETENTION_MARGIN = 3600
# ANSSI (RGS B1) asks for RSA moduli of at least 3072 bits for keys used beyond 2030 (as
# infra/signing_key.py does for the first key).
ROTATION_KEY_SIZE = 3072


class RotationError(ValueError):
    """The rotation cannot be planned (no usable key, a lead shorter than the caches)."""


@dataclass(frozen=True)
class Durations:
    """Every duration the rules depend on, in seconds.

    Built from the settings; :meth:`scaled` shrinks all of them by one factor (the rotation test runs a
    whole rotation in seconds under the same rules).
    """

    worker_cache: float = KEY_CACHE_LIFETIME
    jwks_max_age: float = JWKS_MAX_AGE
    id_token: float = ID_TOKEN_TTL
    access_token: float = 120 + VERIFY_LEEWAY
    journey: float = JOURNEY_TTL + EXPIRED_GRACE
    session: float = 4 * 3600
    margin: float = RETENTION_MARGIN
    lead: float = DEFAULT_LEAD

    @classmethod
    def from_settings(cls, *, session_max_age: int, access_token_ttl: int, lead: float = DEFAULT_LEAD) -> Durations:
        """The broker's: BROKER_SESSION_MAX_AGE, BROKER_ACCESS_TOKEN_TTL (plus the verification leeway)."""
        return cls(session=session_max_age, access_token=access_token_ttl + VERIFY_LEEWAY, lead=lead)

    def scaled(self, factor: float) -> Durations:
        """Every duration times ``factor``: the same rules on a shorter time scale."""
        return Durations(**{item.name: getattr(self, item.name) * factor for item in fields(self)})

    @property
    def minimum_lead(self) -> float:
        """Every worker's cache, then every relying party's copy of ``/jwks``, hold the new key."""
        return self.worker_cache + self.jwks_max_age

    @property
    def longest_lifetime(self) -> tuple[str, float]:
        """The longest-lived artefact a key signs or seals, and its lifetime."""
        lifetimes = {name: getattr(self, name) for name in ("id_token", "access_token", "journey", "session")}
        name = max(lifetimes, key=lambda key: lifetimes[key])
        return name, lifetimes[name]

    @property
    def retention(self) -> float:
        return self.longest_lifetime[1] + self.margin

    def policy(self) -> RotationPolicy:
        """The policy of these durations; RotationError if the lead is shorter than the caches."""
        if self.lead < self.minimum_lead:
            raise RotationError(
                f"a lead of {self.lead:g} s is shorter than the workers' key cache ({self.worker_cache:g} s) "
                f"plus the /jwks max-age ({self.jwks_max_age:g} s): some worker or relying party would "
                "not know the new key when it signs"
            )
        return RotationPolicy(lead=self.lead, retention=self.retention, durations=self)


@dataclass(frozen=True)
class RotationPolicy:
    """How far ahead a new version's ``nbf`` is set, and how long a retired version is kept (seconds)."""

    lead: float
    retention: float
    durations: Durations = field(default_factory=Durations, compare=False)

    def describe(self) -> str:
        name, lifetime = self.durations.longest_lifetime
        return (
            f"lead {self.lead:g} s (at least the workers' key cache {self.durations.worker_cache:g} s "
            f"+ the /jwks max-age {self.durations.jwks_max_age:g} s); retention {self.retention:g} s "
            f"(the longest lifetime, {name.replace('_', ' ')} {lifetime:g} s, + a margin of "
            f"{self.durations.margin:g} s)"
        )


@dataclass(frozen=True)
class Retired:
    """A version older than the current signer: since when it no longer signs, and its fate."""

    version: KeyVersion
    retired_at: float | None  # when a newer version began to sign; None: unknown (kept)
    disable: bool


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation at ``now`` does: the version to add (its ``nbf``) and the fate of the retired ones."""

    now: float
    policy: RotationPolicy
    signer: KeyVersion
    pending: tuple[KeyVersion, ...]  # newer than the signer, waiting for their nbf
    add_not_before: float | None  # the new version's nbf; None: nothing to add
    retired: tuple[Retired, ...]
    unusable: tuple[KeyVersion, ...]  # enabled, but the key ring cannot use them: left alone

    @property
    def to_disable(self) -> tuple[KeyVersion, ...]:
        return tuple(item.version for item in self.retired if item.disable)


@dataclass(frozen=True)
class RotationResult:
    """The plan and what was written (nothing in a dry run)."""

    plan: RotationPlan
    added: KeyVersion | None
    disabled: tuple[KeyVersion, ...]
    dry_run: bool

    def lines(self) -> list[str]:
        """What was (or, in a dry run, would be) done, one version a line: ``kid``s and dates only."""
        plan = self.plan
        would = "would " if self.dry_run else ""
        lines = [plan.policy.describe()]
        if plan.add_not_before is not None:
            kid, start = (self.added.kid, self.added.not_before) if self.added else ("(new key)", plan.add_not_before)
            lines.append(f"{would}add      {kid}  signs from {_when(start)}, published at /jwks before")
        for version in plan.pending:
            lines.append(f"waiting  {version.kid}  signs from {_when(version.not_before)}")
        lines.append(f"signing  {plan.signer.kid}  since {_when(plan.signer.activation())}")
        lines.extend(_retired_line(item, plan.policy.retention, would) for item in plan.retired)
        for version in plan.unusable:
            lines.append(f"skip     version {version.id}: not a usable signing key (the broker ignores it)")
        return lines

    def summary(self) -> dict[str, Any]:
        """For the log: kids and times, never key material."""
        return {
            "added_kid": self.added.kid if self.added else None,
            "added_not_before": self.added.not_before if self.added else None,
            "signing_kid": self.plan.signer.kid,
            "disabled_kids": [version.kid for version in self.disabled],
            "kept_kids": [item.version.kid for item in self.plan.retired if not item.disable],
            "retention_s": self.plan.policy.retention,
            "lead_s": self.plan.policy.lead,
        }


def plan_rotation(versions: Sequence[KeyVersion], now: float, policy: RotationPolicy, *, add: bool) -> RotationPlan:
    """What a rotation at ``now`` does to ``versions`` (newest first, as the store lists them).

    The signer is the one the key ring picks (sanscouture/keys.py): the newest usable version whose
    ``nbf`` has passed, or, if none has, the oldest.
    """
    usable = [version for version in versions if version.enabled and version.kid]
    if not usable:
        raise RotationError("the store holds no usable signing key: create the first one before rotating")
    signer_index = next((index for index, version in enumerate(usable) if _active(version, now)), len(usable) - 1)
    pending = tuple(usable[:signer_index])
    retired = tuple(
        _retired(version, usable[:index], now, policy) for index, version in enumerate(usable) if index > signer_index
    )
    return RotationPlan(
        now=now,
        policy=policy,
        signer=usable[signer_index],
        pending=pending,
        add_not_before=now + policy.lead if add and not pending else None,
        retired=retired,
        unusable=tuple(version for version in versions if version.enabled and not version.kid),
    )


def rotate(
    store: KeyStore,
    policy: RotationPolicy,
    clock: Clock = time.time,
    *,
    add: bool = True,
    dry_run: bool = False,
    new_key: Callable[[], dict[str, Any]] = lambda: generate_private_jwk(ROTATION_KEY_SIZE),
) -> RotationResult:
    """Plan, then (unless ``dry_run``) add the next version first and disable the retired ones."""
    plan = plan_rotation(store.versions(), clock(), policy, add=add)
    if dry_run:
        return RotationResult(plan, None, (), dry_run=True)
    added = None
    if plan.add_not_before is not None:
        jwk = new_key()
        # The lead counts from the write, not from the plan: generating the key takes a moment.
        added = store.add(jwk, max(plan.add_not_before, clock() + policy.lead))
    for version in plan.to_disable:
        store.disable(version)
    return RotationResult(plan, added, plan.to_disable, dry_run=False)


def _active(version: KeyVersion, now: float) -> bool:
    return version.not_before is None or version.not_before <= now


def _retired(version: KeyVersion, newer: Sequence[KeyVersion], now: float, policy: RotationPolicy) -> Retired:
    """It stopped signing when the first newer version became active."""
    starts = [start for start in (other.activation() for other in newer if _active(other, now)) if start is not None]
    retired_at = min(starts) if starts else None
    return Retired(version, retired_at, disable=retired_at is not None and retired_at + policy.retention <= now)


def _retired_line(item: Retired, retention: float, would: str) -> str:
    kid = item.version.kid
    if item.disable:
        return f"{would}disable  {kid}  no longer signs since {_when(item.retired_at)}"
    if item.retired_at is None:
        return f"keep     {kid}  unknown since when it no longer signs: disable it by hand"
    until = _when(item.retired_at + retention)
    return f"keep     {kid}  no longer signs since {_when(item.retired_at)}, kept until {until}"


def _when(moment: float | None) -> str:
    if moment is None:
        return "(unknown)"
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

