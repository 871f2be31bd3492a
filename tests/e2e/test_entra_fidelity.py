"""The broker against an Entra ID as strict as the real one (issue 7, points 1-5).

The Entra simulator's switches select the tenant's Conditional Access state, the app registration's
optional claims and the machine's Windows session; each test says what Entra does in that state and
what the broker then does.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.switches import switched
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tests.e2e.test_journey import CONFIRMATION
from tests.e2e.test_journey import PAIRING
from tests.e2e.test_journey import ensure_paired
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start


def entra_requests(browser: Browser, sandbox: Sandbox) -> list[dict[str, str]]:
    """The authorize requests the broker sent to Entra, as Entra received them."""
    return [{k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            for url in browser.visited if url.startswith(sandbox.entra_url) and "/oauth2/v2.0/authorize" in url]


def test_every_entra_request_asks_for_c1_in_the_documented_form_and_for_max_age(sandbox: Sandbox) -> None:
    browser, party = Browser(sandbox), rp(sandbox)
    start(browser, party, Pkce(), login_hint="cpx")
    start(browser, party, Pkce(), login_hint="cpx", max_age="600", prompt="login")
    first, second = entra_requests(browser, sandbox)
    assert json.loads(first["claims"]) == {"id_token": {"acrs": {"essential": True, "value": "c1"}}}
    assert first["max_age"] == str(4 * 3600)  # BROKER_ENTRA_MAX_AUTH_AGE, even when the RP sent none
    assert second["max_age"] == "600"


def test_the_broker_asks_entra_for_openid_and_profile_only(sandbox: Sandbox) -> None:
    # Issue 8, point 5: no offline_access (MSAL adds it unless excluded) nor User.Read, so Entra issues
    # the broker no refresh token and no Graph access token to keep.
    browser, party = Browser(sandbox), rp(sandbox)
    start(browser, party, Pkce(), login_hint="cpx")
    start(browser, party, Pkce(), login_hint="cpx", prompt="login")
    requests_seen = entra_requests(browser, sandbox)
    assert len(requests_seen) == 2
    assert [sorted(request["scope"].split()) for request in requests_seen] == [["openid", "profile"]] * 2


def test_with_the_policy_enforced_a_password_sign_in_is_stepped_up_at_entra_then_refused(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    unpair(sandbox, "password")
    browser, party, pkce = Browser(sandbox, psc_persona="medecin-cps"), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint="password")
    assert isinstance(page, Page) and page.url.startswith(sandbox.entra_url)
    assert page.h1 == "Méthode d'authentification plus forte requise"  # Entra never issues the code

    caplog.set_level(logging.INFO, logger="sanscouture")
    refused = browser.submit(page, "cancel", stop_at=party.redirect_uri)
    assert isinstance(refused, Page) and refused.status == 403
    assert refused.h1 == "Connexion Entra ID interrompue"
    assert any("AADSTS53003" in str(getattr(r, "error_detail", "")) for r in caplog.records)
    landing = browser.go(refused.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing)
    assert (landing.params["error"], landing.params["state"]) == ("access_denied", pkce.state)
    assert binding_row(sandbox, persona_oid(sandbox, "password")) is None


@pytest.mark.parametrize("state", ["report-only", "none"])
def test_without_an_enforced_policy_entra_vouches_for_a_password_sign_in(sandbox: Sandbox, state: str) -> None:
    """Why the deployment must enforce the policy (docs/deploy.md; conditional-access.sh --check):
    the broker cannot tell this token from a phishing-resistant one."""
    unpair(sandbox, "password")
    with switched(sandbox.entra_url, conditional_access={"c1": state}):
        browser, party = Browser(sandbox), rp(sandbox)
        page = start(browser, party, Pkce(), login_hint="password")
        assert isinstance(page, Page) and page.h1 == PAIRING
        browser.submit(page, "cancel", stop_at=party.redirect_uri)  # leave the account unpaired


def test_without_the_auth_time_optional_claim_sign_ins_stop_on_a_clear_page(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sanscouture")
    with switched(sandbox.entra_url, optional_claims=["acrs"]):  # auth_time removed from the registration
        browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
        page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.status == 403
    assert page.h1 == "Configuration de la connexion incomplète"
    assert "support informatique" in page.html and "Traceback" not in page.html
    details = [str(getattr(r, "error_detail", "")) for r in caplog.records if r.getMessage() == "sign-in refused"]
    assert any("no auth_time claim" in d and "entra-optional-claims.json" in d for d in details), details
    landing = browser.go(page.link("Retourner au service"), stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and landing.params["error"] == "server_error"


def test_a_six_hour_old_windows_session_signs_in_after_one_windows_hello_prompt(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "whfb-sso", "infirmier-ecps")
    with switched(sandbox.entra_url, windows_session={"persona": "whfb-sso", "logon_age": 6 * 3600}):
        browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
        page = start(browser, party, pkce)  # no login_hint: the Windows session is who signs in
        assert isinstance(page, Page) and page.url.startswith(sandbox.entra_url)
        assert page.h1 == "Sécurité Windows"
        page = browser.submit(page, "whfb-sso", stop_at=party.redirect_uri)  # "Utiliser Windows Hello"
        assert isinstance(page, Page) and page.h1 == CONFIRMATION
        landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params
    claims = party.verify_id_token(party.redeem(landing.params["code"], pkce).json()["id_token"], pkce.nonce)
    assert abs(claims["auth_time"] - time.time()) < 60  # the fresh authentication, not the 6-hour-old logon
    assert [p.h1 for p in browser.html_pages_from(sandbox.entra_url)] == ["Sécurité Windows"]
    assert all(p.status == 200 for p in browser.pages)  # never a refusal page on the way
