"""What happens between two requests of one person, over HTTPS against the sandbox: another browser pairing
the same Entra account at the same instant, an administrator removing the pairing while a session is live,
a session left idle past its 30 minutes.

docs/architecture.md "State without transactions": a pairing is inserted, never upserted, and a broker
session signs in silently only while the pairing it was opened with still exists (``tools.pairings``:
"Live broker sessions end at their next use"). The idle limit is tested here with the sandbox's clocks
moved ahead (``Sandbox.time_travel``); the idle and 4-hour limits of sessions in detail, with a controlled
clock: tests/unit/sanscouture/test_sessions.py; the store-level race: tests/integration/test_bindings.py.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sanscouture.adapters.tables import Tables
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tools import pairings

PERSONA = "cpx-interne"  # unpaired before and after each test of this module
PAIRING = "Appairage du compte"
CONFIRMATION = "Connexion"
ALREADY_PAIRED = "Ce compte était déjà appairé"  # journey.ALREADY_PAIRED_NOTICE, up to its escaped apostrophe


@pytest.fixture(autouse=True)
def unpaired(sandbox: Sandbox) -> Iterator[None]:
    unpair(sandbox, PERSONA)
    yield
    unpair(sandbox, PERSONA)


def rp(sandbox: Sandbox, client_id: str) -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == client_id))


def audit_since(sandbox: Sandbox, since: float) -> list[dict[str, Any]]:
    """Audit rows written after ``since`` (epoch seconds), in order (RowKey: microseconds, then index)."""
    audit = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"]
    days = sorted({time.strftime("%Y%m%d", time.gmtime(moment)) for moment in (since, time.time())})
    first = f"{int(since * 1_000_000):017d}"
    rows = [row for day in days for row in audit.partition(day) if row.row >= first]
    return [dict(row.data) for row in sorted(rows, key=lambda row: row.row)]


def test_two_browsers_returning_from_psc_at_the_same_instant_pair_the_account_once(sandbox: Sandbox) -> None:
    party = rp(sandbox, "rp-basic")
    browsers = [Browser(sandbox, psc_persona="medecin2-cps"), Browser(sandbox, psc_persona="pharmacien-cps")]
    returns = []
    for browser in browsers:  # both at PSC's return, its code in hand, nothing paired yet
        page = browser.go(party.authorization_url(Pkce(), login_hint=PERSONA), stop_at=party.redirect_uri)
        assert isinstance(page, Page) and page.h1 == PAIRING
        psc_return = browser.submit(page, "pair", stop_at=f"{sandbox.broker_url}/pair/callback")
        assert isinstance(psc_return, Landing)
        returns.append(psc_return.url)
    assert binding_row(sandbox, persona_oid(sandbox, PERSONA)) is None
    since = time.time()
    results: list[Page | Landing | None] = [None, None]
    barrier = threading.Barrier(2)

    def come_back(index: int) -> None:
        barrier.wait()
        results[index] = browsers[index].go(returns[index], stop_at=party.redirect_uri)

    threads = [threading.Thread(target=come_back, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    pages = [result for result in results if isinstance(result, Page) and result.h1 == CONFIRMATION]
    assert len(pages) == 2, results
    assert [ALREADY_PAIRED in page.html for page in pages].count(True) == 1
    stored = binding_row(sandbox, persona_oid(sandbox, PERSONA))
    assert stored is not None
    assert all(f"…{str(stored['subject_name_id'])[-4:]}<" in page.html for page in pages)  # both show the winner
    oid = persona_oid(sandbox, PERSONA)
    events = sorted(row["event"] for row in audit_since(sandbox, since) if row.get("oid") == oid)
    assert events == ["pairing_created", "pairing_existing"]


def test_prompt_none_after_31_minutes_idle_is_login_required(sandbox: Sandbox) -> None:
    browser = Browser(sandbox, psc_persona="medecin2-cps")
    sign_in(browser, rp(sandbox, "rp-basic"), Pkce(), login_hint=PERSONA)  # paired, with a broker session
    other = rp(sandbox, "rp-post")
    with sandbox.time_travel(29 * 60):  # used within its 30 minutes: signs in, and its idle clock restarts
        silent = browser.go(other.authorization_url(Pkce(), prompt="none"), stop_at=other.redirect_uri)
        assert isinstance(silent, Landing) and "code" in silent.params
    pkce = Pkce()
    with sandbox.time_travel(29 * 60 + 31 * 60):  # then left idle 31 minutes, well within its 4 hours
        landing = browser.go(other.authorization_url(pkce, prompt="none"), stop_at=other.redirect_uri)
    assert isinstance(landing, Landing)
    assert landing.params == {"error": "login_required", "error_description": "no broker session",
                              "state": pkce.state, "iss": sandbox.broker_url}


def test_prompt_none_after_an_administrator_removed_the_pairing_is_login_required(sandbox: Sandbox) -> None:
    browser = Browser(sandbox, psc_persona="medecin2-cps")
    sign_in(browser, rp(sandbox, "rp-basic"), Pkce(), login_hint=PERSONA)  # paired, with a broker session
    first = rp(sandbox, "rp-post")
    silent = browser.go(first.authorization_url(Pkce(), prompt="none"), stop_at=first.redirect_uri)
    assert isinstance(silent, Landing) and "code" in silent.params  # the session signs in silently...

    oid = persona_oid(sandbox, PERSONA)
    since = time.time()
    removal = ["remove", "--tenant", HOSPITAL_TENANT_ID, "--oid", oid, "--reason", "appairage erroné"]
    env = {"BROKER_TABLES_CONNECTION_STRING": sandbox.azurite_connection or ""}
    assert pairings.main(removal, env, io.StringIO()) == 0  # as `python -m tools.pairings remove` does

    other, pkce = rp(sandbox, "rp-jwt"), Pkce()
    for _ in range(2):  # ...and no longer, however often it is tried
        landing = browser.go(other.authorization_url(pkce, prompt="none"), stop_at=other.redirect_uri)
        assert isinstance(landing, Landing)
        assert landing.params == {"error": "login_required", "error_description": "pairing no longer valid",
                                  "state": pkce.state, "iss": sandbox.broker_url}
    assert binding_row(sandbox, oid) is None
    audit = [row for row in audit_since(sandbox, since) if row.get("oid") == oid]
    assert [(row["event"], row["tid"], row["national_id"], row["reason"], row["by"]) for row in audit] == [
        ("pairing_removed", HOSPITAL_TENANT_ID, "********0004", "appairage erroné", "administrator")
    ]
