"""Hostile input over HTTPS (issue 8, point 7): never a 500, the right error, nothing lost."""

from __future__ import annotations

import requests

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from tests.e2e.test_journey import CONFIRMATION
from tests.e2e.test_journey import ensure_paired
from tests.e2e.test_journey import rp
from tests.e2e.test_journey import start


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
