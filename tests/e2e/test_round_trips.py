"""Table Storage round trips per step, counted at the broker's HTTP session (sandbox/counting.py: every
request, through the SDK's pipeline or sent directly) and pinned (issue 9, point 3).

A count is deterministic, unlike a time: each is pinned exactly, so that a change that adds a round
trip to a sign-in is seen. The budget (docs/architecture.md): an unauthenticated /authorize none, a
warm paired sign-in at most 4 (a re-verification sign-in too), a first sign-in with pairing at most 8,
/token at most 2 (a refresh 3), /userinfo at most 1, prompt=none with a session at most 3.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from functions import _wiring
from sandbox.counting import RequestCounter
from sandbox.counting import counting_tables
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sanscouture.settings import DEFAULT_PAIRING_REVERIFY_DAYS
from tests.e2e.pairings import unpair
from tests.e2e.test_journey import CONFIRMATION
from tests.e2e.test_journey import PAIRING
from tests.e2e.test_journey import ensure_paired
from tests.e2e.test_journey import pair
from tests.e2e.test_journey import rp


@pytest.fixture
def counted(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[RequestCounter]:
    """The worker's tables, every request to Azurite counted."""
    wired = _wiring.services()
    tables, counter = counting_tables(sandbox.azurite_connection or "")
    monkeypatch.setitem(vars(wired), "tables", tables)
    monkeypatch.delitem(vars(wired), "broker", raising=False)
    yield counter
    vars(wired).pop("broker", None)


def total(counts: Counter[str]) -> int:
    return sum(counts.values())


def redeem_and_read(party: RelyingParty, landing: Landing, pkce: Pkce, counted: RequestCounter) -> None:
    counted.take()
    tokens = party.redeem(landing.params["code"], pkce)
    assert tokens.status_code == 200, tokens.text
    assert counted.take() == Counter({"GET codes": 1, "PUT codes": 1})  # read the code, turn it into the record
    assert party.userinfo(tokens.json()["access_token"]).status_code == 200
    assert counted.take() == Counter({"GET codes": 1})  # the record


def test_an_unauthenticated_authorize_touches_no_table(sandbox: Sandbox, counted: RequestCounter) -> None:
    for extra in ({}, {"prompt": "select_account"}, {"prompt": "login"}):
        response = requests.get(rp(sandbox).authorization_url(Pkce(), **extra), allow_redirects=False, timeout=10)
        assert response.status_code in (200, 302)
    assert total(counted.take()) == 0


def test_a_warm_paired_sign_in_costs_four_round_trips(sandbox: Sandbox, counted: RequestCounter) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    counted.take()
    page = browser.go(party.authorization_url(pkce, login_hint="cpx"), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert counted.take() == Counter({"GET bindings": 1})  # /callback reads the pairing
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    # Confirmer: the pairing unchanged (a write conditional on the ETag the page was read at, which also
    # records the use), the journey's one code, the audit records (one entity group transaction).
    assert counted.take() == Counter({"PATCH bindings": 1, "POST codes": 1, "POST $batch": 1})
    redeem_and_read(party, landing, pkce, counted)


def test_a_first_sign_in_with_pairing_costs_six_round_trips(sandbox: Sandbox, counted: RequestCounter) -> None:
    unpair(sandbox, "cpx-interne")
    browser, party, pkce = Browser(sandbox, psc_persona="pharmacien-cps"), rp(sandbox), Pkce()
    counted.take()
    page = browser.go(party.authorization_url(pkce, login_hint="cpx-interne"), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == PAIRING
    assert counted.take() == Counter({"GET bindings": 1})
    page = browser.submit(page, "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert counted.take() == Counter({"POST bindings": 1, "PUT audit": 1})  # the pairing, its audit record
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert counted.take() == Counter({"GET bindings": 1, "POST codes": 1, "POST $batch": 1})
    redeem_and_read(party, landing, pkce, counted)
    unpair(sandbox, "cpx-interne")


def test_prompt_none_with_a_session_costs_three_round_trips(sandbox: Sandbox, counted: RequestCounter) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser = Browser(sandbox)
    sign_in(browser, rp(sandbox), Pkce(), login_hint="cpx")
    other, pkce = rp(sandbox, "rp-post"), Pkce()
    counted.take()
    landing = browser.go(other.authorization_url(pkce, prompt="none"), stop_at=other.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params
    assert counted.take() == Counter({"GET bindings": 1, "POST codes": 1, "PUT audit": 1})


def test_a_re_verification_sign_in_costs_four_round_trips(sandbox: Sandbox, counted: RequestCounter) -> None:
    """The due check comes from the pairing row /callback reads; the renewal is one conditional write."""
    unpair(sandbox, "cpx-interne")
    pair(sandbox, "cpx-interne", "pharmacien-cps")
    browser, party, pkce = Browser(sandbox, psc_persona="pharmacien-cps"), rp(sandbox), Pkce()
    with sandbox.time_travel(DEFAULT_PAIRING_REVERIFY_DAYS * 86_400 + 3600):
        counted.take()
        page = browser.go(party.authorization_url(pkce, login_hint="cpx-interne"), stop_at=party.redirect_uri)
        assert isinstance(page, Page) and page.h1 == "Vérification périodique"
        assert counted.take() == Counter({"GET bindings": 1})  # /callback reads the pairing: due
        landing = browser.submit(page, "verify", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing)
        # PSC's return: the renewal (a merge conditional on the ETag the page was read at), the
        # journey's one code, the audit records pairing_reverified + login_succeeded (one transaction).
        assert counted.take() == Counter({"PATCH bindings": 1, "POST codes": 1, "POST $batch": 1})
        redeem_and_read(party, landing, pkce, counted)
    unpair(sandbox, "cpx-interne")


def test_a_client_with_a_back_channel_uri_costs_one_merge_once_per_session(
    sandbox: Sandbox, counted: RequestCounter
) -> None:
    """The session's relying parties with a back-channel logout URI are recorded in its pairing's row
    (a merge of the session's own property), once per (session, client): a later prompt=none to the
    same client pays nothing more (docs/architecture.md)."""
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox, "rp-bcl"), Pkce()
    counted.take()
    page = browser.go(party.authorization_url(pkce, login_hint="cpx"), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert counted.take() == Counter({"GET bindings": 1})
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    # The four of a warm sign-in, and the merge that records rp-bcl for this session.
    assert counted.take() == Counter({"PATCH bindings": 2, "POST codes": 1, "POST $batch": 1})
    silent = browser.go(party.authorization_url(Pkce(), prompt="none"), stop_at=party.redirect_uri)
    assert isinstance(silent, Landing) and "code" in silent.params
    assert counted.take() == Counter({"GET bindings": 1, "POST codes": 1, "PUT audit": 1})


def test_a_refresh_costs_three_round_trips(sandbox: Sandbox, counted: RequestCounter) -> None:
    """grant_type=refresh_token: the family's row, the pairing it must still name (removed, replaced,
    its session ended or its re-verification due: refused), then the row replaced If-Match (rotation)."""
    ensure_paired(sandbox, "cpx", "medecin-cps")
    party, pkce = rp(sandbox, "rp-refresh"), Pkce()
    landing = sign_in(Browser(sandbox), party, pkce, login_hint="cpx")
    redeemed = party.redeem(landing.params["code"], pkce)
    assert redeemed.status_code == 200, redeemed.text
    refresh_token = redeemed.json()["refresh_token"]
    for _ in range(2):  # the first refresh and the next: the same count
        counted.take()
        refreshed = requests.post(f"{sandbox.broker_url}/token",
                                  data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                                  auth=(party.client.client_id, party.client.secret or ""), timeout=30)
        assert refreshed.status_code == 200, refreshed.text
        assert counted.take() == Counter({"GET codes": 1, "GET bindings": 1, "PUT codes": 1})
        refresh_token = refreshed.json()["refresh_token"]
