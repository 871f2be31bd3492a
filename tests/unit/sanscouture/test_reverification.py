"""When a pairing is due for its periodic re-verification (docs/design.md "Periodic re-verification")."""

from __future__ import annotations

import pytest

from sanscouture.models import Binding
from sanscouture.reverification import DAY
from sanscouture.reverification import due_at
from sanscouture.reverification import proven_at
from sanscouture.reverification import reverification_due
from tests.unit.oidc.fakes import make_identity

PAIRED = 1_700_000_000


def pairing(*, verified_at: int = 0, paired_at: int = PAIRED) -> Binding:
    return Binding("t", "o", make_identity(), paired_at, paired_at, verified_at=verified_at)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (PAIRED, False),
        (PAIRED + 365 * DAY - 1, False),  # the last second it is trusted
        (PAIRED + 365 * DAY, True),  # due at that second exactly
        (PAIRED + 365 * DAY + 1, True),
        (PAIRED + 10 * 365 * DAY, True),
    ],
)
def test_a_pairing_is_due_365_days_after_it_was_proven_to_the_second(now: int, due: bool) -> None:
    assert reverification_due(pairing(verified_at=PAIRED), now, 365) is due


def test_a_row_from_before_re_verification_counts_from_its_pairing() -> None:
    old = pairing(verified_at=0)
    assert proven_at(old) == PAIRED and due_at(old, 365) == PAIRED + 365 * DAY


def test_a_re_verification_moves_the_due_date_from_its_own_day() -> None:
    renewed = pairing(verified_at=PAIRED + 400 * DAY)
    assert not reverification_due(renewed, PAIRED + 500 * DAY, 365)
    assert reverification_due(renewed, PAIRED + 765 * DAY, 365)


def test_the_period_is_the_setting_in_days() -> None:
    assert not reverification_due(pairing(verified_at=PAIRED), PAIRED + 30 * DAY - 1, 30)
    assert reverification_due(pairing(verified_at=PAIRED), PAIRED + 30 * DAY, 30)
    assert reverification_due(pairing(verified_at=PAIRED), PAIRED + DAY, 1)
