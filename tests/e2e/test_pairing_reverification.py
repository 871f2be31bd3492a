"""Periodic re-verification of a pairing over HTTPS, with the sandbox's controlled clock (issue 10,
point 4; docs/design.md "Periodic re-verification").

A pairing older than BROKER_PAIRING_REVERIFY_DAYS (365 days in the sandbox, the default) is not trusted
for a sign-in: the « Vérification périodique » page sends the professional to PSC; the same PSC
identity renews the pairing and the sign-in goes on, another one is refused and changes nothing;
``prompt=none`` and refresh tokens never go past a due pairing. Time moves with
``Sandbox.time_travel`` (broker, Entra and PSC together), always put back at the end of the block.

Entra persona ``cpx-interne`` (unpaired before and after each test) with PSC persona
``pharmacien-cps``; ``medecin2-cps`` is the other identity.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sanscouture.adapters.tables import Tables
from sanscouture.settings import DEFAULT_PAIRING_REVERIFY_DAYS
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tests.e2e.test_browser_binding import CSRF_REFUSED
from tests.e2e.test_browser_binding import another_token_of_the_same_length
from tests.e2e.test_browser_binding import assert_refused
from tests.e2e.test_browser_binding import browser_with_a_journey_of_its_own
from tests.e2e.test_browser_binding import with_fields
from tests.e2e.test_journey import CONFIRMATION
from tests.e2e.test_journey import pair
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start

ENTRA, PSC, OTHER_PSC = "cpx-interne", "pharmacien-cps", "medecin2-cps"
REVERIFICATION = "Vérification périodique"
REFUSED = "Identité différente de celle de l'appairage"
PERIOD = DEFAULT_PAIRING_REVERIFY_DAYS * 86_400
DUE = PERIOD + 3600  # an hour past the pairing's first anniversary


@pytest.fixture(autouse=True)
def fresh_pairing(sandbox: Sandbox) -> Iterator[None]:
    """``cpx-interne`` paired with ``pharmacien-cps`` now; unpaired afterwards."""
    unpair(sandbox, ENTRA)
    pair(sandbox, ENTRA, PSC)
    yield
    unpair(sandbox, ENTRA)


def row(sandbox: Sandbox) -> dict[str, Any]:
    found = binding_row(sandbox, persona_oid(sandbox, ENTRA))
    assert found is not None
    return found


def audit_events(sandbox: Sandbox, since: float, until: float) -> list[dict[str, Any]]:
    """The audit rows written between two instants of the broker's clock (tests run one at a time; other
    tests travel to the same offset, so ``since`` is taken just before the step)."""
    audit = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"]
    days = {time.strftime("%Y%m%d", time.gmtime(instant)) for instant in (since, until)}
    rows = [dict(found.data) for day in days for found in audit.partition(day)]
    return [data for data in rows if int(since) <= data["at"] <= until]


def reverification_page(sandbox: Sandbox, psc: str = PSC, **extra: str) -> tuple[Browser, RelyingParty, Pkce, Page]:
    browser, party, pkce = Browser(sandbox, psc_persona=psc), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint=ENTRA, **extra)
    assert isinstance(page, Page) and (page.status, page.h1) == (200, REVERIFICATION), getattr(page, "h1", page)
    return browser, party, pkce, page


def test_an_old_pairing_asks_for_a_periodic_verification_and_the_same_identity_renews_it(sandbox: Sandbox) -> None:
    before = row(sandbox)
    with sandbox.time_travel(DUE):
        now = time.time() + DUE
        browser, party, pkce, page = reverification_page(sandbox)
        assert ("action", "verify", "Vérifier avec la carte CPS") in page.forms[0].buttons
        assert ("action", "cancel", "Annuler") in page.forms[0].buttons
        assert "…0003" in page.html and "810100000003" not in page.html  # masked national identifier

        landing = browser.submit(page, "verify", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing) and "code" in landing.params, landing
        asked = requests.get(f"{sandbox.psc_url}/_sim/last-authorize", timeout=10).json()
        assert (asked.get("prompt"), asked.get("max_age")) == ("login", "0")  # a fresh CPS / e-CPS proof
        tokens = party.redeem(landing.params["code"], pkce)
        assert tokens.status_code == 200, tokens.text
        userinfo = party.userinfo(tokens.json()["access_token"])
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == before["psc_sub"]

        after = row(sandbox)
        assert after["paired_at"] == before["paired_at"] and after["psc_sub"] == before["psc_sub"]
        assert now - 60 <= after["verified_at"] <= now + 60
        events = audit_events(sandbox, now, now + 120)
        renewed = [event for event in events if event["event"] == "pairing_reverified"]
        assert len(renewed) == 1 and renewed[0]["oid"] == persona_oid(sandbox, ENTRA)
        assert renewed[0]["national_id"] == "********0003"
        assert [event["mode"] for event in events if event["event"] == "login_succeeded"] == ["reverified"]

        # Renewed: the next sign-in is the usual one-click confirmation.
        page_again = start(Browser(sandbox), party, Pkce(), login_hint=ENTRA)
        assert isinstance(page_again, Page) and page_again.h1 == CONFIRMATION


def test_another_identity_is_refused_audited_and_the_pairing_stays_as_it_was_and_due(sandbox: Sandbox) -> None:
    before = row(sandbox)
    with sandbox.time_travel(DUE):
        now = time.time() + DUE
        browser, party, _, page = reverification_page(sandbox, psc=OTHER_PSC)
        refused = browser.submit(page, "verify", stop_at=party.redirect_uri)
        assert isinstance(refused, Page) and (refused.status, refused.h1) == (403, REFUSED)
        back = refused.link("Retourner au service")
        assert back.startswith(party.redirect_uri) and "error=access_denied" in back

        assert row(sandbox) == before  # never replaced, not even renewed
        events = audit_events(sandbox, now, now + 120)
        refusal = [event for event in events if event["event"] == "pairing_reverification_refused"]
        assert len(refusal) == 1 and refusal[0]["oid"] == persona_oid(sandbox, ENTRA)
        assert refusal[0]["national_id"] == "********0004"  # the identity presented, masked
        assert refusal[0]["paired_national_id"] == "********0003"  # the pairing's, masked
        assert not any("810100000004" in str(value) or "810100000003" in str(value)
                       for event in events for value in event.values())

        reverification_page(sandbox)  # the pairing is still due


def test_cancel_on_the_verification_page_returns_access_denied_and_changes_nothing(sandbox: Sandbox) -> None:
    before = row(sandbox)
    with sandbox.time_travel(DUE):
        browser, party, _, page = reverification_page(sandbox)
        landing = browser.submit(page, "cancel", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing) and landing.params["error"] == "access_denied"
    assert row(sandbox) == before


def test_the_verification_form_needs_its_csrf_token_and_its_browser(sandbox: Sandbox) -> None:
    before = row(sandbox)
    with sandbox.time_travel(DUE):
        browser, party, _, page = reverification_page(sandbox)
        token = page.forms[0].fields["csrf_token"]
        for forged in (with_fields(page, csrf_token=None),
                       with_fields(page, csrf_token=another_token_of_the_same_length(token))):
            assert_refused(browser.submit(forged, "verify", stop_at=party.redirect_uri), 403, CSRF_REFUSED)
        other = browser_with_a_journey_of_its_own(sandbox)
        assert_refused(other.submit(page, "verify", stop_at=party.redirect_uri), 403, CSRF_REFUSED)
        assert row(sandbox) == before
        landing = browser.submit(page, "verify", stop_at=party.redirect_uri)  # its own browser still can
        assert isinstance(landing, Landing) and "code" in landing.params


SOON = PERIOD - 600  # ten minutes before the pairing falls due


def test_prompt_none_with_a_due_pairing_never_signs_in_silently(sandbox: Sandbox) -> None:
    browser, party = Browser(sandbox), rp(sandbox)
    with sandbox.time_travel(SOON):
        page = browser.go(party.authorization_url(Pkce(), login_hint=ENTRA), stop_at=party.redirect_uri)
        assert isinstance(page, Page) and page.h1 == CONFIRMATION  # not due yet
        assert isinstance(browser.submit(page, "confirm", stop_at=party.redirect_uri), Landing)  # a broker session
        silent = browser.go(party.authorization_url(Pkce(), prompt="none"), stop_at=party.redirect_uri)
        assert isinstance(silent, Landing) and "code" in silent.params  # the session signs in silently...

    with sandbox.time_travel(SOON + 900):  # ...until the pairing falls due, within the session's 30 minutes
        silent = browser.go(party.authorization_url(Pkce(), prompt="none"), stop_at=party.redirect_uri)
        assert isinstance(silent, Landing) and silent.params["error"] == "login_required", silent
        # Interactively, the same session leads to the verification page, without Entra ID.
        visited = len(browser.visited)
        page = browser.go(party.authorization_url(Pkce()), stop_at=party.redirect_uri)
        assert isinstance(page, Page) and page.h1 == REVERIFICATION
        assert not any(url.startswith(sandbox.entra_url) for url in browser.visited[visited:])


def test_a_confirmation_page_left_open_until_the_pairing_falls_due_asks_for_the_verification(
    sandbox: Sandbox,
) -> None:
    browser, party = Browser(sandbox, psc_persona=PSC), rp(sandbox)
    with sandbox.time_travel(SOON):
        page = start(browser, party, Pkce(), login_hint=ENTRA)
        assert isinstance(page, Page) and page.h1 == CONFIRMATION
    with sandbox.time_travel(SOON + 700):
        page = browser.submit(page, "confirm", stop_at=party.redirect_uri)
        assert isinstance(page, Page) and page.h1 == REVERIFICATION
        assert isinstance(browser.submit(page, "verify", stop_at=party.redirect_uri), Landing)


def test_a_refresh_token_is_refused_once_the_pairing_is_due(sandbox: Sandbox) -> None:
    party, pkce = RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-refresh")), Pkce()
    browser = Browser(sandbox)

    def refresh(refresh_token: str) -> requests.Response:
        return requests.post(f"{sandbox.broker_url}/token", auth=(party.client.client_id, party.client.secret or ""),
                             data={"grant_type": "refresh_token", "refresh_token": refresh_token}, timeout=30)

    with sandbox.time_travel(SOON):
        page = start(browser, party, pkce, login_hint=ENTRA)
        assert isinstance(page, Page) and page.h1 == CONFIRMATION
        landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing)
        tokens = party.redeem(landing.params["code"], pkce).json()
    with sandbox.time_travel(SOON + 300):  # not yet due: refreshed
        renewed = refresh(tokens["refresh_token"])
        assert renewed.status_code == 200, renewed.text
    with sandbox.time_travel(SOON + 900):  # due: refused, within the token's 30 minutes and the 4-hour rule
        answer = refresh(renewed.json()["refresh_token"])
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.text
