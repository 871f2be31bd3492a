"""What every broker response carries, whatever the endpoint (issue 8, points 1 and 8), over HTTPS."""

from __future__ import annotations

import logging

import pytest
import requests

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import sign_in
from tests.e2e.test_journey import CONFIRMATION
from tests.e2e.test_journey import ensure_paired
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start

HSTS = "max-age=31536000; includeSubDomains"


def test_every_kind_of_response_carries_strict_transport_security(sandbox: Sandbox) -> None:
    url = sandbox.broker_url
    responses = [
        requests.get(f"{url}/.well-known/openid-configuration", timeout=10),  # JSON
        requests.post(f"{url}/token", data={"grant_type": "authorization_code"}, timeout=10),  # JSON error
        requests.get(f"{url}/authorize?client_id=nobody", timeout=10),  # French error page
        requests.get(rp(sandbox).authorization_url(Pkce(), login_hint="cpx"), allow_redirects=False, timeout=10),
        requests.get(f"{url}/health", timeout=10),
    ]
    assert [r.headers.get("Strict-Transport-Security") for r in responses] == [HSTS] * len(responses)
    assert responses[3].status_code == 302  # a redirect too


def test_a_form_post_is_answered_with_303_see_other(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    form, name, value = page.button("confirm")
    response = browser.session.post(f"{sandbox.broker_url}{form.action}", data={**form.fields, name: value},
                                    allow_redirects=False, timeout=10)
    assert response.status_code == 303 and response.headers["Location"].startswith(party.redirect_uri)


def test_a_malformed_cookie_of_another_site_does_not_lock_the_browser_out(sandbox: Sandbox) -> None:
    """SimpleCookie dropped every cookie when one was malformed: the journey's binding was lost."""
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    browser.session.cookies.set("consent", '{"ads":false}', domain="127.0.0.1", path="/")
    page = start(browser, party, pkce, login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params


def test_no_log_record_of_a_whole_sign_in_holds_a_query_a_code_a_token_or_a_national_identifier(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    caplog.set_level(logging.DEBUG)  # urllib3 and MSAL log URLs at debug level
    browser, party, pkce = Browser(sandbox), rp(sandbox), Pkce()
    landing = sign_in(browser, party, pkce, login_hint="cpx", id_token_hint="eyJhbGciOi.eyJzdWIi.c2ln")
    tokens = party.redeem(landing.params["code"], pkce).json()
    party.userinfo(tokens["access_token"])
    secrets_seen = [landing.params["code"], pkce.state, pkce.nonce, pkce.verifier, tokens["access_token"],
                    tokens["id_token"], "810100000001", "login_hint=cpx"]
    records = [record.getMessage() + repr(vars(record)) for record in caplog.records]
    assert records, "the sign-in logged nothing: the test would prove nothing"
    leaks = [(secret, record) for record in records for secret in secrets_seen if secret in record]
    assert leaks == []
