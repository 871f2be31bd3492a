"""The sans-couture sign-in end to end: broker host, Entra and PSC simulators and Azurite, over HTTPS.

Each test is one sentence of the specification (issue 3 acceptance and docs/design.md "The journey").
Entra personas: ``cpx``, ``whfb-sso``, ``fido2``, ``other-tenant``; PSC personas:
``medecin-cps``, ``infirmier-ecps``, ``pharmacien-cps``, ``medecin2-cps``.
"""

from __future__ import annotations

import threading

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sandbox.switches import switched
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair

PAIRING = "Appairage du compte"
CONFIRMATION = "Connexion"


def rp(sandbox: Sandbox, client_id: str = "rp-basic") -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == client_id))


def start(browser: Browser, party: RelyingParty, pkce: Pkce, **extra: str) -> Page | Landing:
    return browser.go(party.authorization_url(pkce, **extra), stop_at=party.redirect_uri)


def pair(sandbox: Sandbox, entra: str, psc: str) -> None:
    """A first sign-in that pairs ``entra`` with ``psc`` (used to set up later tests)."""
    browser, party, pkce = Browser(sandbox, psc_persona=psc), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint=entra)
    assert isinstance(page, Page) and page.h1 == PAIRING, page.h1
    page = browser.submit(page, "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params


def ensure_paired(sandbox: Sandbox, entra: str, psc: str) -> None:
    """Sign ``entra`` in once, pairing it with ``psc`` unless another test already did."""
    sign_in(Browser(sandbox, psc_persona=psc), rp(sandbox), Pkce(), login_hint=entra)


def test_first_sign_in_pairs_the_entra_account_then_issues_psc_shaped_tokens(sandbox: Sandbox) -> None:
    unpair(sandbox, "cpx")  # a first sign-in, whatever other tests did with this account
    browser, party, pkce = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox), Pkce()

    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page)
    assert page.status == 200 and page.h1 == PAIRING
    assert ("action", "pair", "Appairer un compte avec la carte CPS") in page.forms[0].buttons

    page = browser.submit(page, "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert "MARTIN" in page.html and "0001" in page.html

    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert landing.params["state"] == pkce.state and landing.params["iss"] == sandbox.broker_url

    tokens = party.redeem(landing.params["code"], pkce)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["Cache-Control"] == "no-store"
    claims = party.verify_id_token(tokens.json()["id_token"], pkce.nonce)
    assert claims["sub"] == "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:810100000001"
    assert claims["acr"] == "eidas1"
    assert claims["nonce"] == pkce.nonce

    userinfo = party.userinfo(tokens.json()["access_token"]).json()
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["SubjectNameID"] == "810100000001"
    assert userinfo["SubjectRefPro"]["exercices"][0]["codeProfession"] == "10"

    stored = binding_row(sandbox, persona_oid(sandbox, "cpx"))
    assert stored is not None and stored["psc_sub"] == claims["sub"]


def test_second_sign_in_shows_only_the_confirmation_page(sandbox: Sandbox) -> None:
    unpair(sandbox, "fido2")
    pair(sandbox, "fido2", "pharmacien-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()  # a new browser: no broker session

    page = start(browser, party, pkce, login_hint="fido2")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert not any(p.h1 == PAIRING for p in browser.pages)
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    tokens = party.redeem(landing.params["code"], pkce).json()
    assert party.verify_id_token(tokens["id_token"], pkce.nonce)["sub"].endswith(":810100000003")


def test_sso_persona_sees_no_entra_page_only_the_confirmation(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "whfb-sso", "infirmier-ecps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()

    page = start(browser, party, pkce, login_hint="whfb-sso")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert browser.html_pages_from(sandbox.entra_url) == []
    assert [p.h1 for p in browser.pages] == [CONFIRMATION]


def test_another_psc_identity_is_used_once_and_the_pairing_is_untouched(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    before = binding_row(sandbox, persona_oid(sandbox, "cpx"))
    browser, party, pkce = Browser(sandbox, psc_persona="medecin2-cps"), rp(sandbox), Pkce()

    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    landing = browser.submit(page, "other", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing), getattr(landing, "h1", "")

    tokens = party.redeem(landing.params["code"], pkce).json()
    claims = party.verify_id_token(tokens["id_token"], pkce.nonce)
    assert claims["sub"].endswith(":810100000004")
    assert party.userinfo(tokens["access_token"]).json()["SubjectNameID"] == "810100000004"
    assert binding_row(sandbox, persona_oid(sandbox, "cpx")) == before


def test_an_account_of_another_organisation_is_refused_and_nothing_is_paired(sandbox: Sandbox) -> None:
    browser, party, pkce = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox), Pkce()

    page = start(browser, party, pkce, login_hint="other-tenant")
    assert isinstance(page, Page)
    assert page.status == 403
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.h1 == "Organisation non autorisée"
    assert "Traceback" not in page.html

    landing = browser.go(page.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert landing.params["error"] == "access_denied"
    assert landing.params["state"] == pkce.state
    assert landing.params["iss"] == sandbox.broker_url
    assert binding_row(sandbox, persona_oid(sandbox, "other-tenant")) is None


def test_two_browsers_pairing_the_same_account_at_once_make_exactly_one_pairing(sandbox: Sandbox) -> None:
    unpair(sandbox, "cpx-urgences")
    first, second = Browser(sandbox, psc_persona="medecin-cps"), Browser(sandbox, psc_persona="pharmacien-cps")
    party = rp(sandbox)
    pages = []
    for browser in (first, second):
        page = start(browser, party, Pkce(), login_hint="cpx-urgences")
        assert isinstance(page, Page) and page.h1 == PAIRING
        pages.append(page)
    results: list[Page | Landing | None] = [None, None]
    barrier = threading.Barrier(2)

    def submit(index: int, browser: Browser) -> None:
        barrier.wait()
        results[index] = browser.submit(pages[index], "pair", stop_at=party.redirect_uri)

    threads = [threading.Thread(target=submit, args=(i, b)) for i, b in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(r, Page) and r.h1 == CONFIRMATION for r in results)
    shown_existing = [r for r in results if isinstance(r, Page) and "déjà appairé" in r.html]
    assert len(shown_existing) == 1
    stored = binding_row(sandbox, persona_oid(sandbox, "cpx-urgences"))
    assert stored is not None
    # Both pages name the one stored identity: the loser was shown it, nothing was overwritten.
    winner_id = str(stored["subject_name_id"])
    assert all(isinstance(r, Page) and winner_id[-4:] in r.html for r in results)


def test_prompt_none_without_a_session_returns_login_required(sandbox: Sandbox) -> None:
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    landing = start(browser, party, pkce, prompt="none")
    assert isinstance(landing, Landing)
    assert landing.params == {"error": "login_required", "error_description": "no broker session",
                              "state": pkce.state, "iss": sandbox.broker_url}


def test_a_broker_session_lets_prompt_none_succeed_silently_with_the_same_sub_and_auth_time(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    first = party.verify_id_token(party.redeem(landing.params["code"], pkce).json()["id_token"], pkce.nonce)

    other = rp(sandbox, "rp-post")
    silent_pkce = Pkce()
    landing = start(browser, other, silent_pkce, prompt="none")
    assert isinstance(landing, Landing) and "code" in landing.params, landing.params
    second = other.verify_id_token(other.redeem(landing.params["code"], silent_pkce).json()["id_token"],
                                   silent_pkce.nonce)
    assert (second["sub"], second["auth_time"]) == (first["sub"], first["auth_time"])
    assert browser.html_pages_from(sandbox.entra_url) == []


def test_prompt_login_forces_a_fresh_entra_authentication(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party = Browser(sandbox), rp(sandbox)
    times = []
    for minutes, extra in enumerate(({}, {"prompt": "login"})):
        pkce = Pkce()
        with switched(sandbox.entra_url, clock_offset=60 * minutes):  # the second sign-in a minute later
            page = start(browser, party, pkce, login_hint="cpx", **extra)
            assert isinstance(page, Page) and page.h1 == CONFIRMATION
            landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing)
        times.append(party.verify_id_token(party.redeem(landing.params["code"], pkce).json()["id_token"],
                                           pkce.nonce)["auth_time"])
    assert times[1] > times[0]
    assert any("prompt=login" in url for url in browser.visited if url.startswith(sandbox.entra_url))


def test_cancel_on_the_pairing_page_returns_access_denied_and_pairs_nothing(sandbox: Sandbox) -> None:
    unpair(sandbox, "cpx-interne")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint="cpx-interne")
    assert isinstance(page, Page) and page.h1 == PAIRING
    landing = browser.submit(page, "cancel", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert (landing.params["error"], landing.params["state"]) == ("access_denied", pkce.state)
    assert binding_row(sandbox, persona_oid(sandbox, "cpx-interne")) is None


def test_select_account_shows_the_mire_with_both_choices(sandbox: Sandbox) -> None:
    browser, party = Browser(sandbox), rp(sandbox)
    page = start(browser, party, Pkce(), prompt="select_account")
    assert isinstance(page, Page)
    assert [value for _n, value, _l in page.forms[0].buttons] == ["entra", "psc"]


def test_mire_choice_psc_signs_in_directly_with_a_psc_identity(sandbox: Sandbox) -> None:
    browser, party, pkce = Browser(sandbox, psc_persona="infirmier-ecps"), rp(sandbox), Pkce()
    page = start(browser, party, pkce, prompt="select_account")
    assert isinstance(page, Page)
    landing = browser.submit(page, "psc", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    claims = party.verify_id_token(party.redeem(landing.params["code"], pkce).json()["id_token"], pkce.nonce)
    assert claims["sub"].endswith(":810100000002")


def test_a_replayed_confirmation_form_cannot_issue_a_second_code(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    assert isinstance(browser.submit(page, "confirm", stop_at=party.redirect_uri), Landing)
    again = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(again, Page) and again.status in (400, 403, 409)


def test_a_form_from_another_browser_is_refused(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    attacker = Browser(sandbox)
    result = attacker.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(result, Page) and result.status == 403
