"""Tables on the session's Azurite with a clock the test controls (expiry without waiting)."""

from __future__ import annotations

import pytest

from sandbox import azurite
from sanscouture.adapters.tables import Tables

NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def tables(azurite_server: azurite.Azurite, clock: Clock) -> Tables:
    tables = Tables.from_connection_string(azurite_server.connection_string, clock)
    tables.create_all()
    return tables


@pytest.fixture(autouse=True)
def reset_clock(clock: Clock) -> None:
    clock.now = NOW
