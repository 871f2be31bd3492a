"""The journey against a PSC simulator as strict as PSC (issue 7, points 6 and 7), over HTTPS.

The PSC wallet keeps an SSO session: pairing and "another identity" must get a fresh card / e-CPS
authentication all the same, and a wallet that ignores prompt=login must end on a French page, never
in a pairing. Each observed userinfo layout reaches the confirmation page and the relying party's
/userinfo unchanged; a signed userinfo's JWT envelope never does.

These tests pair the Entra persona ``cpx-interne`` (Dr Léa Garnier), unpairing it first.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

from sandbox.psc_sim.personas import PERSONAS
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.switches import switched
from sanscouture.adapters.tables import Tables
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair

ENTRA = "cpx-interne"
PAIRING = "Appairage du compte"
CONFIRMATION = "Connexion"
STALE = "Session Pro Santé Connect déjà ouverte"
REALM = "/auth/realms/esante-wallet"


def rp(sandbox: Sandbox) -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-basic"))


def pairing_page(browser: Browser, party: RelyingParty, pkce: Pkce) -> Page:
    page = browser.go(party.authorization_url(pkce, login_hint=ENTRA), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == PAIRING, getattr(page, "h1", page)
    return page


def open_psc_session(sandbox: Sandbox, browser: Browser, psc_persona: str, seconds_ago: int) -> None:
    """The browser's PSC wallet session, opened by ``psc_persona`` ``seconds_ago`` (the previous user)."""
    params = {"response_type": "code", "client_id": "sans-couture-broker", "scope": "openid scope_all",
              "redirect_uri": f"{sandbox.broker_url}/pair/callback", "state": "elsewhere",
              "code_challenge": Pkce().challenge, "code_challenge_method": "S256", "login_hint": psc_persona}
    opened = browser.session.get(f"{sandbox.psc_url}/wallet/auth", params=params, allow_redirects=False, timeout=10)
    assert opened.status_code == 302 and "KEYCLOAK_IDENTITY" in browser.session.cookies
    aged = requests.post(f"{sandbox.psc_url}/_sim/sso-sessions/age", json=seconds_ago, timeout=10)
    assert aged.status_code == 200


def psc_authorizations(browser: Browser, sandbox: Sandbox) -> list[str]:
    return [url for url in browser.visited if url.startswith(f"{sandbox.psc_url}/wallet/auth")]


def audit_reasons(sandbox: Sandbox, reference: str) -> list[str]:
    day = time.strftime("%Y%m%d", time.gmtime())
    rows = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"].partition(day)
    return [str(row.data.get("reason")) for row in rows if row.data.get("reference") == reference]


def colleague_at_the_confirmation_page(sandbox: Sandbox) -> tuple[Browser, RelyingParty, Pkce, Page]:
    """ENTRA paired with medecin-cps and signed in, their PSC session 10 minutes old; then a colleague
    (medecin2-cps) at the same workstation reaches the confirmation page of ENTRA's account."""
    unpair(sandbox, ENTRA)
    browser, party = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox)
    page = browser.submit(pairing_page(browser, party, Pkce()), "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page)
    assert isinstance(browser.submit(page, "confirm", stop_at=party.redirect_uri), Landing)
    requests.post(f"{sandbox.psc_url}/_sim/sso-sessions/age", json=600, timeout=10)
    browser.psc_persona = "medecin2-cps"
    pkce = Pkce()
    page = browser.go(party.authorization_url(pkce, login_hint=ENTRA), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    return browser, party, pkce, page


def assert_stale_session_page(sandbox: Sandbox, page: Page | Landing) -> Page:
    """The explanatory page of a PSC session the wallet would not end, its audit reason, its logout link."""
    assert isinstance(page, Page) and page.status == 403 and page.h1 == STALE
    assert "peut-être par une autre personne" in page.html and "votre carte CPS ou votre e-CPS" in page.html
    logout = f"{sandbox.psc_url}{REALM}/protocol/openid-connect/logout"
    assert page.link("Fermer la session Pro Santé Connect") == logout
    reference = re.search(r'<span class="code">([^<]+)</span>', page.html)
    assert reference and audit_reasons(sandbox, reference.group(1)) == ["psc_session_stale"]
    return page


# -- point 6: the PSC SSO session ----------------------------------------------------------------


def test_a_live_psc_session_makes_pairing_ask_for_the_card_again(sandbox: Sandbox) -> None:
    unpair(sandbox, ENTRA)
    browser, party, pkce = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox), Pkce()
    open_psc_session(sandbox, browser, "medecin2-cps", seconds_ago=600)  # someone else's, 10 minutes ago

    page = browser.submit(pairing_page(browser, party, pkce), "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION, page.h1
    asked = requests.get(f"{sandbox.psc_url}/_sim/last-authorize", timeout=10).json()
    assert (asked["prompt"], asked["max_age"]) == ("login", "0")
    # The card was asked for again: the pairing is the card holder's, not the session's person.
    stored = binding_row(sandbox, persona_oid(sandbox, ENTRA))
    assert stored is not None and stored["subject_name_id"] == "810100000001"


def test_another_identity_gets_a_fresh_psc_authentication_whose_auth_time_reaches_the_relying_party(
    sandbox: Sandbox,
) -> None:
    browser, party, pkce, page = colleague_at_the_confirmation_page(sandbox)
    asked_at = time.time()
    landing = browser.submit(page, "other", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params, landing
    claims = party.verify_id_token(party.redeem(landing.params["code"], pkce).json()["id_token"], pkce.nonce)
    assert claims["sub"].endswith(":810100000004")
    assert claims["auth_time"] >= int(asked_at)  # PSC's fresh authentication, not the 10-minute-old session


def test_a_wallet_that_ignores_prompt_login_gets_the_explanatory_page_and_no_pairing(sandbox: Sandbox) -> None:
    unpair(sandbox, ENTRA)
    browser, party, pkce = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox), Pkce()
    open_psc_session(sandbox, browser, "medecin2-cps", seconds_ago=600)

    with switched(sandbox.psc_url, wallet_ignores_prompt_login=True):
        page = browser.submit(pairing_page(browser, party, pkce), "pair", stop_at=party.redirect_uri)
    page = assert_stale_session_page(sandbox, page)
    assert binding_row(sandbox, persona_oid(sandbox, ENTRA)) is None  # never a pairing
    assert len(psc_authorizations(browser, sandbox)) == 1  # never a retry

    landing = browser.go(page.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert (landing.params["error"], landing.params["state"]) == ("access_denied", pkce.state)

    # Doing what the page says: close the PSC session, then sign in again from the service.
    logout = page.link("Fermer la session Pro Santé Connect")
    confirmation = browser.session.get(logout, timeout=10)
    code = re.search(r'name="session_code" value="([^"]+)"', confirmation.text)
    assert code and "Vous êtes déconnecté" in browser.session.post(logout, data={"session_code": code.group(1)}).text
    with switched(sandbox.psc_url, wallet_ignores_prompt_login=True):
        page = browser.submit(pairing_page(browser, party, Pkce()), "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION


def test_another_identity_with_a_wallet_that_ignores_prompt_login_gets_the_explanatory_page_and_no_code(
    sandbox: Sandbox,
) -> None:
    browser, party, pkce, page = colleague_at_the_confirmation_page(sandbox)  # the wallet still open
    paired = binding_row(sandbox, persona_oid(sandbox, ENTRA))
    asked_before = len(psc_authorizations(browser, sandbox))
    with switched(sandbox.psc_url, wallet_ignores_prompt_login=True):
        page = assert_stale_session_page(sandbox, browser.submit(page, "other", stop_at=party.redirect_uri))
    assert len(psc_authorizations(browser, sandbox)) == asked_before + 1  # never a retry
    assert binding_row(sandbox, persona_oid(sandbox, ENTRA)) == paired  # the pairing untouched

    landing = browser.go(page.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" not in landing.params  # no code for the stale identity
    assert (landing.params["error"], landing.params["state"]) == ("access_denied", pkce.state)


# -- point 7: userinfo layouts and the signed userinfo's envelope ---------------------------------


def sign_in_paired_with(sandbox: Sandbox, psc_persona: str) -> tuple[Page, dict[str, Any]]:
    """Pair cpx-interne with ``psc_persona``, confirm: the confirmation page and the RP's /userinfo."""
    unpair(sandbox, ENTRA)
    browser, party, pkce = Browser(sandbox, psc_persona=psc_persona), rp(sandbox), Pkce()
    page = browser.submit(pairing_page(browser, party, pkce), "pair", stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION, page.h1
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params, landing
    tokens = party.redeem(landing.params["code"], pkce)
    assert tokens.status_code == 200, tokens.text
    userinfo = party.userinfo(tokens.json()["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    return page, userinfo.json()


@pytest.mark.parametrize(
    ("psc_persona", "name", "profession", "verified_with", "ends_with"),
    [
        ("medecin-cps", "Dr Claire MARTIN", "Médecin", "carte CPS", "0001"),
        ("kine-2021", "Camille ROBERT", "Masseuse-kinésithérapeute", "non précisé", "0005"),
        ("infirmiere-2023", "Manon Girard", "Infirmière", "non précisé", "3012"),
    ],
    ids=["bas-2022", "edit-2021", "edit-2023"],
)
def test_each_userinfo_layout_renders_the_confirmation_and_reaches_the_relying_party_unchanged(
    sandbox: Sandbox, psc_persona: str, name: str, profession: str, verified_with: str, ends_with: str
) -> None:
    page, userinfo = sign_in_paired_with(sandbox, psc_persona)
    assert f'<p class="card-title name">{name}</p>' in page.html
    assert f'<p class="card-subtitle">{profession}</p>' in page.html
    assert f"<dt>Identité vérifiée avec</dt><dd>{verified_with}</dd>" in page.html
    assert f"…{ends_with}" in page.html
    persona = next(p for p in PERSONAS if p.id == psc_persona)
    assert userinfo == persona.userinfo()


def test_a_signed_userinfos_envelope_never_reaches_the_relying_party(sandbox: Sandbox) -> None:
    with switched(sandbox.psc_url, userinfo_signed=True):
        _, userinfo = sign_in_paired_with(sandbox, "infirmiere-2023")
    assert not {"iss", "aud", "exp", "iat", "jti", "nbf"} & set(userinfo)
    assert userinfo == next(p for p in PERSONAS if p.id == "infirmiere-2023").userinfo()
