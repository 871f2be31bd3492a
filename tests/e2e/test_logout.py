"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and its effect on prompt=none."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import jwt
import requests

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sanscouture.adapters.keyfile import FileKeySource
from sanscouture.keys import KeyRing
from sanscouture.keys import generate_private_jwk
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid

ENTRA, PSC = "cpx", "medecin-cps"


def signed_in(sandbox: Sandbox, entra: str = ENTRA, psc: str = PSC) -> tuple[Browser, RelyingParty, str]:
    """A browser with a broker session, and the ID token its relying party received."""
    party = RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-basic"))
    browser, pkce = Browser(sandbox, psc_persona=psc), Pkce()
    landing = sign_in(browser, party, pkce, login_hint=entra)
    return browser, party, party.redeem(landing.params["code"], pkce).json()["id_token"]


def logout_url(sandbox: Sandbox, **params: str) -> str:
    return f"{sandbox.broker_url}/logout?{urlencode(params)}"


def silent(browser: Browser, party: RelyingParty) -> dict[str, str]:
    landing = browser.go(party.authorization_url(Pkce(), prompt="none"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    return landing.params


def test_logout_with_a_valid_hint_ends_the_session_and_returns_to_the_registered_uri(sandbox: Sandbox) -> None:
    browser, party, id_token = signed_in(sandbox)
    assert "code" in silent(browser, party)  # the session works before logout

    target = party.client.post_logout_redirect_uris[0]
    landing = browser.go(
        logout_url(sandbox, id_token_hint=id_token, post_logout_redirect_uri=target, state="bye"), stop_at=target
    )
    assert isinstance(landing, Landing)
    assert landing.params == {"state": "bye"}
    assert silent(browser, party)["error"] == "login_required"
    assert binding_row(sandbox, persona_oid(sandbox, ENTRA)) is not None  # logout does not unpair


def test_an_unregistered_post_logout_redirect_uri_is_never_redirected_to(sandbox: Sandbox) -> None:
    browser, party, id_token = signed_in(sandbox)
    for uri in ("https://evil.example/", party.client.post_logout_redirect_uris[0] + "?foo=bar"):
        response = browser.session.get(
            logout_url(sandbox, id_token_hint=id_token, post_logout_redirect_uri=uri), allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 400 and "Location" not in response.headers
    assert "code" in silent(browser, party)  # nothing was logged out


def test_a_hint_signed_by_someone_else_or_unsigned_is_refused_without_redirect(sandbox: Sandbox) -> None:
    browser, party, id_token = signed_in(sandbox)
    claims = jwt.decode(id_token, options={"verify_signature": False})
    forged = jwt.encode(claims, jwt.PyJWK(generate_private_jwk()).key, algorithm="RS256", headers={"kid": "x"})
    unsigned = jwt.encode(claims, None, algorithm="none")
    target = party.client.post_logout_redirect_uris[0]
    for hint in (forged, unsigned, "garbage"):
        response = browser.session.get(
            logout_url(sandbox, id_token_hint=hint, post_logout_redirect_uri=target), allow_redirects=False, timeout=10
        )
        assert response.status_code == 400 and "Location" not in response.headers
    assert "code" in silent(browser, party)


def test_without_a_hint_the_person_confirms_on_a_page_and_is_not_redirected(sandbox: Sandbox) -> None:
    browser, party, _ = signed_in(sandbox)
    page = browser.go(logout_url(sandbox))
    assert isinstance(page, Page) and page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    done = browser.submit(page, page.forms[0].buttons[0][1])
    assert isinstance(done, Page) and done.status == 200
    assert "Location" not in done.headers
    assert silent(browser, party)["error"] == "login_required"


def test_an_expired_hint_still_identifies_the_client(sandbox: Sandbox) -> None:
    browser, party, id_token = signed_in(sandbox)
    # RP-Initiated Logout 1.0 section 2: the OP should accept an expired ID token it issued.
    claims = jwt.decode(id_token, options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    ring = KeyRing(FileKeySource(sandbox.data_dir / "keys" / "signing-keys.json"))
    expired = ring.sign(claims)
    target = party.client.post_logout_redirect_uris[0]
    landing = browser.go(logout_url(sandbox, id_token_hint=expired, post_logout_redirect_uri=target), stop_at=target)
    assert isinstance(landing, Landing)
    assert silent(browser, party)["error"] == "login_required"


def test_logout_is_answered_without_a_session_too(sandbox: Sandbox) -> None:
    response = requests.get(logout_url(sandbox), timeout=10)
    assert response.status_code == 200 and 'lang="fr"' in response.text


def test_a_hint_about_someone_else_asks_the_person_instead_of_logging_out(sandbox: Sandbox) -> None:
    browser, party, _ = signed_in(sandbox)
    _, _, others_token = signed_in(sandbox, "fido2", "pharmacien-cps")
    target = party.client.post_logout_redirect_uris[0]
    page = browser.go(logout_url(sandbox, id_token_hint=others_token, post_logout_redirect_uri=target), stop_at=target)
    assert isinstance(page, Page) and page.forms, "a confirmation page, not a redirect"
    assert "code" in silent(browser, party)  # still signed in until the person confirms
