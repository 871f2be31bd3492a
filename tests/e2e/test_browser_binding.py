"""CSRF and browser binding, over HTTPS against the sandbox (docs/design.md "Pages, cookies and CSRF").

Every form (``/choose``, ``/pair``, ``/confirm``, the logout confirmation) must carry the CSRF token of a
journey of *this* browser: a missing token, a wrong one, or the right one posted from another browser is
refused with the 403 page **Formulaire expiré**, and nothing happens (the journey can still be finished
by its own browser). Each upstream return (``/callback`` from Entra ID, ``/pair/callback`` from PSC)
is bound to the browser that started the journey: the journey travels sealed in that browser's cookie
(``__Host-sc-j-…``). Replayed in another browser — one with a journey cookie of its own, not just
none — it is refused with **Délai
dépassé** (400) before the upstream code is redeemed, so the browser that started the journey can still
finish it. That is the defence against code injection and login CSRF (RFC 9700, "Authorization Code
Injection" and "Cross-Site Request Forgery": https://www.rfc-editor.org/rfc/rfc9700#name-authorization-code-injection,
https://www.rfc-editor.org/rfc/rfc9700#name-cross-site-request-forgery).

Entra personas: ``cpx`` (paired by these tests when it is not yet) and ``cpx-interne`` (left unpaired).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import replace

import pytest

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair

MIRE = "Choisissez votre moyen de connexion"
PAIRING = "Appairage du compte"
CONFIRMATION = "Connexion"
LOGOUT_QUESTION = "Voulez-vous vous déconnecter\xa0?"
LOGGED_OUT = "Vous êtes déconnecté(e)"
CSRF_REFUSED = "Formulaire expiré"  # error_page("csrf"), 403
SESSION_EXPIRED = "Délai dépassé"  # error_page("session_expired"), 400

PAIRED = "cpx"  # paired with medecin-cps when a test needs a confirmation page or a session
UNPAIRED = "cpx-interne"  # unpaired before and after each test of this module


def rp(sandbox: Sandbox, client_id: str = "rp-basic") -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == client_id))


@pytest.fixture(autouse=True)
def unpaired_interne(sandbox: Sandbox) -> Iterator[None]:
    unpair(sandbox, UNPAIRED)
    yield
    unpair(sandbox, UNPAIRED)


def browser_cookie(browser: Browser) -> dict[str, str]:
    """The journeys this browser holds: its ``__Host-sc-j-…`` cookies."""
    return {cookie.name: cookie.value or "" for cookie in browser.session.cookies
            if cookie.name.startswith(JOURNEY_COOKIE_PREFIX)}


def browser_with_a_journey_of_its_own(sandbox: Sandbox) -> Browser:
    """Another browser that holds a journey cookie of its own (it started a sign-in of its own)."""
    other = Browser(sandbox)
    assert isinstance(other.go(rp(sandbox).authorization_url(Pkce()), stop_at=sandbox.entra_url), Landing)
    assert browser_cookie(other)
    return other


def with_fields(page: Page, **fields: str | None) -> Page:
    """The page as a forger would post it: its forms' hidden fields changed (None removes one)."""
    forms = [
        replace(form, fields={k: v for k, v in {**form.fields, **fields}.items() if v is not None})
        for form in page.forms
    ]
    return replace(page, forms=forms)


def another_token_of_the_same_length(token: str) -> str:
    forged = secrets.token_urlsafe(32)
    assert len(forged) == len(token) and forged != token
    return forged


def assert_refused(result: Page | Landing, status: int, h1: str) -> None:
    assert isinstance(result, Page), f"followed through to {result.url}"
    assert (result.status, result.h1) == (status, h1)
    assert "Location" not in result.headers
    assert result.headers["Content-Type"].startswith("text/html")


# -- the four forms ------------------------------------------------------------------------------


@dataclass
class OpenForm:
    """A broker form as its own browser shows it, the button that sends it, and what sending it does."""

    browser: Browser
    page: Page
    button: str
    stop_at: str | None  # where the legitimate submission leaves the broker (not followed further)
    nothing_happened: Callable[[], None]
    goes_on: Callable[[Page | Landing], None]  # the outcome of the legitimate submission

    def submit(self, page: Page, browser: Browser | None = None) -> Page | Landing:
        return (browser or self.browser).submit(page, self.button, stop_at=self.stop_at)


def open_mire(sandbox: Sandbox) -> OpenForm:
    browser = Browser(sandbox)
    page = browser.go(rp(sandbox).authorization_url(Pkce(), prompt="select_account"))
    assert isinstance(page, Page) and page.h1 == MIRE

    def goes_on(result: Page | Landing) -> None:
        assert isinstance(result, Landing) and result.url.startswith(sandbox.entra_url)

    return OpenForm(browser, page, "entra", sandbox.entra_url, lambda: None, goes_on)


def open_pairing(sandbox: Sandbox) -> OpenForm:
    browser = Browser(sandbox)
    page = browser.go(rp(sandbox).authorization_url(Pkce(), login_hint=UNPAIRED))
    assert isinstance(page, Page) and page.h1 == PAIRING

    def nothing_happened() -> None:
        assert binding_row(sandbox, persona_oid(sandbox, UNPAIRED)) is None

    def goes_on(result: Page | Landing) -> None:
        assert isinstance(result, Landing) and result.url.startswith(f"{sandbox.psc_url}/")

    return OpenForm(browser, page, "pair", f"{sandbox.psc_url}/", nothing_happened, goes_on)


def open_confirmation(sandbox: Sandbox) -> OpenForm:
    sign_in(Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox), Pkce(), login_hint=PAIRED)  # paired
    browser, party = Browser(sandbox), rp(sandbox)
    page = browser.go(party.authorization_url(Pkce(), login_hint=PAIRED), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == CONFIRMATION

    def goes_on(result: Page | Landing) -> None:
        assert isinstance(result, Landing) and result.url.startswith(party.redirect_uri)
        assert "code" in result.params

    return OpenForm(browser, page, "confirm", party.redirect_uri, lambda: None, goes_on)


def open_logout_confirmation(sandbox: Sandbox) -> OpenForm:
    browser, party = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox)
    sign_in(browser, party, Pkce(), login_hint=PAIRED)
    page = browser.go(f"{sandbox.broker_url}/logout")  # no id_token_hint: the person is asked
    assert isinstance(page, Page) and page.h1 == LOGOUT_QUESTION

    def silent_sign_in() -> dict[str, str]:
        other = rp(sandbox, "rp-post")
        landing = browser.go(other.authorization_url(Pkce(), prompt="none"), stop_at=other.redirect_uri)
        assert isinstance(landing, Landing)
        return landing.params

    def nothing_happened() -> None:
        assert "code" in silent_sign_in()  # the broker session is still there

    def goes_on(result: Page | Landing) -> None:
        assert isinstance(result, Page) and (result.status, result.h1) == (200, LOGGED_OUT)
        assert silent_sign_in()["error"] == "login_required"

    return OpenForm(browser, page, "logout", None, nothing_happened, goes_on)


FORMS = {
    "choose": open_mire,
    "pair": open_pairing,
    "confirm": open_confirmation,
    "logout": open_logout_confirmation,
}


@pytest.mark.parametrize("form", FORMS)
def test_a_form_posted_without_its_csrf_token_is_refused_and_does_nothing(sandbox: Sandbox, form: str) -> None:
    opened = FORMS[form](sandbox)
    forged = with_fields(opened.page, csrf_token=None)

    assert_refused(opened.submit(forged), 403, CSRF_REFUSED)

    opened.nothing_happened()
    opened.goes_on(opened.submit(opened.page))


@pytest.mark.parametrize("form", FORMS)
def test_a_form_posted_with_a_wrong_csrf_token_is_refused_and_does_nothing(sandbox: Sandbox, form: str) -> None:
    opened = FORMS[form](sandbox)
    token = opened.page.forms[0].fields["csrf_token"]
    forged = with_fields(opened.page, csrf_token=another_token_of_the_same_length(token))

    assert_refused(opened.submit(forged), 403, CSRF_REFUSED)

    opened.nothing_happened()
    opened.goes_on(opened.submit(opened.page))


@pytest.mark.parametrize("form", FORMS)
def test_a_form_posted_with_its_token_from_another_browser_is_refused_and_does_nothing(
    sandbox: Sandbox, form: str
) -> None:
    opened = FORMS[form](sandbox)
    other = browser_with_a_journey_of_its_own(sandbox)
    assert browser_cookie(other) != browser_cookie(opened.browser)

    assert_refused(opened.submit(opened.page, browser=other), 403, CSRF_REFUSED)

    opened.nothing_happened()
    opened.goes_on(opened.submit(opened.page))


# -- the upstream returns ------------------------------------------------------------------------


@pytest.fixture(params=["another-browser-with-its-own-journey", "a-browser-without-cookies"])
def other_browser(request: pytest.FixtureRequest, sandbox: Sandbox) -> Browser:
    if request.param == "a-browser-without-cookies":
        return Browser(sandbox)
    return browser_with_a_journey_of_its_own(sandbox)


def test_the_entra_return_replayed_in_another_browser_is_refused_before_the_code_is_redeemed(
    sandbox: Sandbox, other_browser: Browser
) -> None:
    browser, party = Browser(sandbox), rp(sandbox)
    entra_return = browser.go(party.authorization_url(Pkce(), login_hint=UNPAIRED),
                              stop_at=f"{sandbox.broker_url}/callback")
    assert isinstance(entra_return, Landing) and {"code", "state"} <= set(entra_return.params)
    assert browser_cookie(other_browser) != browser_cookie(browser)

    assert_refused(other_browser.go(entra_return.url, stop_at=party.redirect_uri), 400, SESSION_EXPIRED)

    # The journey was not advanced and Entra's code not spent: its own browser carries on.
    page = browser.go(entra_return.url, stop_at=party.redirect_uri)
    assert isinstance(page, Page) and (page.status, page.h1) == (200, PAIRING)
    assert binding_row(sandbox, persona_oid(sandbox, UNPAIRED)) is None


def test_the_psc_return_replayed_in_another_browser_is_refused_and_pairs_nothing(
    sandbox: Sandbox, other_browser: Browser
) -> None:
    browser, party = Browser(sandbox, psc_persona="medecin2-cps"), rp(sandbox)
    page = browser.go(party.authorization_url(Pkce(), login_hint=UNPAIRED), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.h1 == PAIRING
    psc_return = browser.submit(page, "pair", stop_at=f"{sandbox.broker_url}/pair/callback")
    assert isinstance(psc_return, Landing) and {"code", "state"} <= set(psc_return.params)
    assert browser_cookie(other_browser) != browser_cookie(browser)

    assert_refused(other_browser.go(psc_return.url, stop_at=party.redirect_uri), 400, SESSION_EXPIRED)
    assert binding_row(sandbox, persona_oid(sandbox, UNPAIRED)) is None

    # Its own browser pairs the identity it proved at PSC, and only that one.
    page = browser.go(psc_return.url, stop_at=party.redirect_uri)
    assert isinstance(page, Page) and (page.status, page.h1) == (200, CONFIRMATION)
    assert "déjà appairé" not in page.html
    stored = binding_row(sandbox, persona_oid(sandbox, UNPAIRED))
    assert stored is not None and stored["subject_name_id"] == "810100000004"
