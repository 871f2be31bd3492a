"""Hostile input over HTTPS (issue 8, point 7): never a 500, the right error, nothing lost."""

from __future__ import annotations

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
from tests.e2e.test_logout import logout_url
from tests.e2e.test_logout import signed_in
from tests.e2e.test_logout import silent

# Neither decodes: an ellipsis and an accent, and a JWT-looking string whose signature ends in "é".
NON_ASCII_HINTS = ("é…", "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiLDqSJ9.c2lnbmF0dXJl-é")


def test_a_non_ascii_csrf_token_is_a_refused_form_not_a_crash(sandbox: Sandbox) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party = Browser(sandbox), rp(sandbox)
    page = start(browser, party, Pkce(), login_hint="cpx")
    assert isinstance(page, Page) and page.h1 == CONFIRMATION
    form, name, value = page.button("confirm")
    response = browser.session.post(f"{sandbox.broker_url}{form.action}",
                                    data={**form.fields, "csrf_token": "jeton-forgé-é", name: value},
                                    allow_redirects=False, timeout=10)
    assert response.status_code == 403 and "Formulaire expiré" in response.text


def test_a_non_ascii_id_token_hint_at_authorize_names_no_one_a_refused_silent_sign_in_not_a_crash(
    sandbox: Sandbox,
) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party, first = Browser(sandbox), rp(sandbox), Pkce()
    landing = sign_in(browser, party, first, login_hint="cpx")  # a broker session, and an ID token about it
    id_token = party.redeem(landing.params["code"], first).json()["id_token"]
    assert "code" in silent(browser, party)  # the session signs in silently without a hint
    for hint in (*NON_ASCII_HINTS, id_token + "é"):
        pkce = Pkce()
        # An unreadable hint is no hint about the signed-in person: the broker session is not used.
        landing = start(browser, party, pkce, prompt="none", id_token_hint=hint)
        assert isinstance(landing, Landing)
        assert landing.params == {"error": "login_required", "error_description": "no broker session",
                                  "state": pkce.state, "iss": sandbox.broker_url}
        # It names no one either: the interactive sign-in goes on as without a hint.
        page = start(browser, party, Pkce(), login_hint="cpx", id_token_hint=hint)
        assert isinstance(page, Page) and page.status == 200 and page.h1 == CONFIRMATION
        landing = browser.submit(page, "confirm", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing) and "code" in landing.params


def test_a_non_ascii_id_token_hint_at_logout_is_an_invalid_request_page_not_a_crash(sandbox: Sandbox) -> None:
    browser, party, id_token = signed_in(sandbox)
    target = party.client.post_logout_redirect_uris[0]
    for hint in (*NON_ASCII_HINTS, id_token + "é"):
        response = browser.session.get(logout_url(sandbox, id_token_hint=hint, post_logout_redirect_uri=target),
                                       allow_redirects=False, timeout=10)
        assert response.status_code == 400 and "Location" not in response.headers
        assert 'lang="fr"' in response.text and "Demande de déconnexion invalide" in response.text
    assert "code" in silent(browser, party)  # nobody was logged out


def test_a_body_beyond_64_kib_is_413_invalid_request(sandbox: Sandbox) -> None:
    response = requests.post(f"{sandbox.broker_url}/token", data={"grant_type": "authorization_code",
                                                                  "code": "c" * 70_000}, timeout=10)
    assert response.status_code == 413
    assert response.json() == {"error": "invalid_request", "error_description": "the request is too large"}


def test_too_many_fields_are_refused_before_anything_is_parsed(sandbox: Sandbox) -> None:
    fields = {f"f{i}": "x" for i in range(200)}
    assert requests.post(f"{sandbox.broker_url}/token", data=fields, timeout=10).status_code == 413
    page = requests.get(f"{sandbox.broker_url}/authorize", params=fields, timeout=10)
    assert page.status_code == 413 and 'lang="fr"' in page.text  # a French page for a browser endpoint


def test_an_oversized_header_is_413(sandbox: Sandbox) -> None:
    response = requests.get(f"{sandbox.broker_url}/userinfo", headers={"Authorization": "Bearer " + "a" * 9000},
                            timeout=10)
    assert response.status_code == 413 and response.json()["error"] == "invalid_request"


def test_a_cross_site_post_to_authorize_does_not_replace_the_binding_of_journeys_in_progress(
    sandbox: Sandbox,
) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, party = Browser(sandbox), rp(sandbox)
    first_tab = start(browser, party, Pkce(), login_hint="cpx")
    assert isinstance(first_tab, Page) and first_tab.h1 == CONFIRMATION

    # Another site posts an authorization request: a cross-site POST carries no SameSite=Lax cookie,
    # but the browser keeps whatever cookie the answer sets.
    base, query = party.authorization_url(Pkce(), login_hint="cpx").split("?", 1)
    answer = requests.post(base, data=query, headers={"Content-Type": "application/x-www-form-urlencoded"},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and "Set-Cookie" not in answer.headers
    assert answer.headers["Location"] == f"{sandbox.broker_url}/authorize?{query}"
    browser.session.cookies.update(answer.cookies)
    second_tab = browser.go(answer.headers["Location"], stop_at=party.redirect_uri)  # a GET: Lax cookies go
    assert isinstance(second_tab, Page) and second_tab.h1 == CONFIRMATION

    for tab in (first_tab, second_tab):
        landing = browser.submit(tab, "confirm", stop_at=party.redirect_uri)
        assert isinstance(landing, Landing) and "code" in landing.params


def test_a_cross_site_post_to_logout_is_answered_as_a_get_that_sees_the_session(sandbox: Sandbox) -> None:
    body = "post_logout_redirect_uri=https%3A%2F%2Frp-basic.example.fr%2Flogged-out&client_id=rp-basic"
    answer = requests.post(f"{sandbox.broker_url}/logout", data=body, allow_redirects=False, timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 303 and "Set-Cookie" not in answer.headers
    assert answer.headers["Location"] == f"{sandbox.broker_url}/logout?{body}"


def test_a_cross_site_post_to_logout_with_raw_cr_lf_is_percent_encoded_in_the_location(sandbox: Sandbox) -> None:
    # A body is not a query: it may hold raw CR/LF, spaces and non-ASCII. Copied as is into Location, it
    # made the host refuse the header (a 500); percent-encoded, the GET sees exactly the POST's fields.
    body = "client_id=rp-basic&state=a\r\nSet-Cookie: x=1&ui_locales=fr é<script>".encode()
    answer = requests.post(f"{sandbox.broker_url}/logout", data=body, allow_redirects=False, timeout=10,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 303 and "Set-Cookie" not in answer.headers
    location = answer.headers["Location"]
    assert location == (f"{sandbox.broker_url}/logout?client_id=rp-basic&state=a%0D%0ASet-Cookie%3A%20x=1"
                        "&ui_locales=fr%20%C3%A9%3Cscript%3E")
    page = requests.get(location, timeout=10)
    assert page.status_code == 200 and 'lang="fr"' in page.text and "<script>" not in page.text


def test_a_cross_site_post_too_large_for_a_location_is_413_not_a_64_kib_redirect(sandbox: Sandbox) -> None:
    # Found by tests/e2e/test_properties.py: a body just under the 64 KiB limit became a Location header
    # no client reads (http.client: "got more than 65536 bytes when reading header line").
    for path in ("/authorize", "/logout"):
        answer = requests.post(f"{sandbox.broker_url}{path}", data="client_id=rp-basic&state=" + "x" * 40_000,
                               headers={"Content-Type": "application/x-www-form-urlencoded"},
                               allow_redirects=False, timeout=10)
        assert answer.status_code == 413 and "Location" not in answer.headers
        assert 'lang="fr"' in answer.text
    fitting = requests.post(f"{sandbox.broker_url}/logout", data="state=" + "x" * 20_000, allow_redirects=False,
                            headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert fitting.status_code == 303 and fitting.headers["Location"].endswith("x" * 20_000)
