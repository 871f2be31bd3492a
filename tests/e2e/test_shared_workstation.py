"""The shared workstation, the case the design exists for (issue 8, points 2, 3 and 6), over HTTPS.

The previous person's broker session must not sign anyone in after another identity was used; an
unlocked Windows session must not be enough to pair someone else's card; a relying party that names
who it expects (id_token_hint) never receives someone else.
"""

from __future__ import annotations

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import sign_in
from sandbox.switches import switched
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tests.e2e.test_entra_fidelity import entra_requests
from tests.e2e.test_journey import CONFIRMATION
from tests.e2e.test_journey import PAIRING
from tests.e2e.test_journey import ensure_paired
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start


def silent_sign_in(browser: Browser, sandbox: Sandbox) -> dict[str, str]:
    """prompt=none from another service, in the same browser: what it lands with."""
    landing = start(browser, rp(sandbox, "rp-post"), Pkce(), prompt="none")
    assert isinstance(landing, Landing)
    return landing.params


def test_another_psc_identity_ends_the_previous_persons_broker_session(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party = Browser(sandbox, psc_persona="medecin2-cps"), rp(sandbox)
    sign_in(browser, party, Pkce(), login_hint="cpx")  # Dr Martin's session on the shared workstation
    assert "code" in silent_sign_in(browser, sandbox)

    page = start(browser, party, Pkce(), login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    landing = browser.submit(page, "other", stop_at=party.redirect_uri)  # Dr Moreau signs in, once
    assert isinstance(landing, Landing) and "code" in landing.params

    after = silent_sign_in(browser, sandbox)
    assert (after["error"], after["error_description"]) == ("login_required", "no broker session")


def test_a_direct_psc_sign_in_from_the_mire_ends_the_browsers_broker_session(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party = Browser(sandbox, psc_persona="infirmier-ecps"), rp(sandbox)
    sign_in(browser, party, Pkce(), login_hint="cpx")
    page = start(browser, party, Pkce(), prompt="select_account")
    assert isinstance(page, Page)
    landing = browser.submit(page, "psc", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params
    assert silent_sign_in(browser, sandbox)["error"] == "login_required"


def test_pairing_after_an_old_windows_session_asks_entra_for_a_fresh_authentication(sandbox: Sandbox) -> None:
    """An unlocked workstation: Thomas Bernard's Windows session, opened 10 minutes ago, before this
    sign-in started. Whoever sits there must prove to be him before a card is paired to his account."""
    unpair(sandbox, "whfb-sso")
    with switched(sandbox.entra_url, windows_session={"persona": "whfb-sso", "logon_age": 600}):
        browser, party = Browser(sandbox, psc_persona="medecin2-cps"), rp(sandbox)
        page = start(browser, party, Pkce())  # silent SSO first: no Entra page
        assert isinstance(page, Page) and page.url.startswith(sandbox.entra_url)
        assert page.h1 == "Sécurité Windows"  # then Windows Hello, asked for the pairing
        first, again = entra_requests(browser, sandbox)
        assert "prompt" not in first and (again["prompt"], again["max_age"]) == ("login", "0")
        page = browser.submit(page, "whfb-sso", stop_at=party.redirect_uri)
        assert isinstance(page, Page) and page.h1 == PAIRING
        browser.submit(page, "cancel", stop_at=party.redirect_uri)
    assert binding_row(sandbox, persona_oid(sandbox, "whfb-sso")) is None


def test_a_fresh_entra_authentication_goes_straight_to_the_pairing_page(sandbox: Sandbox) -> None:
    unpair(sandbox, "cpx-interne")
    browser, party = Browser(sandbox), rp(sandbox)
    page = start(browser, party, Pkce(), login_hint="cpx-interne")  # the card's PIN, just now
    assert isinstance(page, Page) and page.h1 == PAIRING
    assert len(entra_requests(browser, sandbox)) == 1
    browser.submit(page, "cancel", stop_at=party.redirect_uri)


def test_an_id_token_hint_naming_someone_else_ends_in_login_required(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    ensure_paired(sandbox, "fido2", "pharmacien-cps")
    party, first = rp(sandbox), Pkce()
    landing = sign_in(Browser(sandbox), party, first, login_hint="cpx")
    martins_id_token = party.redeem(landing.params["code"], first).json()["id_token"]

    browser, pkce = Browser(sandbox), Pkce()  # Dr Lefèvre at the workstation, the service expects Dr Martin
    page = start(browser, party, pkce, login_hint="fido2", id_token_hint=martins_id_token)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    refused = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(refused, Page) and refused.status == 403
    assert refused.h1 == "Autre personne que celle attendue"
    landing = browser.go(refused.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert (landing.params["error"], landing.params["state"]) == ("login_required", pkce.state)


def test_the_same_person_as_the_id_token_hint_signs_in(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    party, first = rp(sandbox), Pkce()
    landing = sign_in(Browser(sandbox), party, first, login_hint="cpx")
    id_token = party.redeem(landing.params["code"], first).json()["id_token"]
    again = sign_in(Browser(sandbox), party, Pkce(), login_hint="cpx", id_token_hint=id_token)
    assert "code" in again.params
