"""Periodic re-verification of a pairing (issue 10, point 4; docs/design.md "Periodic re-verification").

A pairing links an Entra account to a national identity proven once through PSC. After
``BROKER_PAIRING_REVERIFY_DAYS`` days without a new proof it is no longer trusted for a sign-in: the
professional proves the same identity again (CPS / e-CPS through PSC, as strictly as for the pairing)
and the pairing is renewed; another identity is refused and never replaces it. Computed from the
pairing's row as every step already reads it: no round trip of its own.
"""

from __future__ import annotations

from sanscouture.models import Binding

DAY = 86_400


def proven_at(binding: Binding) -> int:
    """When the pairing's identity was last proven through PSC (a row from before re-verification
    existed has only ``paired_at``)."""
    return max(binding.verified_at, binding.paired_at)


def due_at(binding: Binding, days: int) -> int:
    """The instant from which the pairing must be verified again."""
    return proven_at(binding) + days * DAY


def reverification_due(binding: Binding, now: float, days: int) -> bool:
    """Whether the pairing is no longer trusted for a sign-in until re-verified: ``days`` whole days
    after its last proof, to the second (at that instant it is due)."""
    return now >= due_at(binding, days)
