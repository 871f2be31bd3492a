"""A storage outage answers temporarily_unavailable / 503 and loses nothing; the log names the culprit."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from functions import _wiring
from sandbox import azurite
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sandbox.servers import free_port
from sanscouture.adapters.tables import Tables
from tests.e2e.test_journey import ensure_paired


@pytest.fixture
def storage_down(sandbox: Sandbox) -> Iterator[None]:
    """Point the running broker at an Azurite of its own, answering, then really stop that Azurite (its
    process ends: the broker's kept-alive connections and new ones fail as in an outage); restore after."""
    wired = _wiring.services()
    saved = {name: wired.__dict__.get(name) for name in ("tables", "broker")}
    storage = azurite.start(free_port())
    tables = Tables.from_connection_string(storage.connection_string)
    try:
        tables["codes"].find("any", "row")  # it answered: a connection to it is kept alive now
        wired.__dict__["tables"] = tables
        wired.__dict__.pop("broker", None)
        storage.stop()
        yield
    finally:
        storage.stop()
        for name, value in saved.items():
            if value is None:
                wired.__dict__.pop(name, None)
            else:
                wired.__dict__[name] = value


def party(sandbox: Sandbox, client_id: str = "rp-basic") -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == client_id))


def test_a_silent_sign_in_during_a_storage_outage_returns_temporarily_unavailable(
    sandbox: Sandbox, request: pytest.FixtureRequest
) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser = Browser(sandbox)
    sign_in(browser, party(sandbox), Pkce(), login_hint="cpx")  # a broker session, before the outage
    request.getfixturevalue("storage_down")
    pkce = Pkce()
    landing = browser.go(party(sandbox, "rp-post").authorization_url(pkce, prompt="none"),
                         stop_at="https://rp-post.example.fr/")
    assert isinstance(landing, Landing)
    assert (landing.params["error"], landing.params["state"]) == ("temporarily_unavailable", pkce.state)


def test_a_sign_in_starts_during_a_storage_outage_since_it_stores_nothing_before_entra(
    sandbox: Sandbox, storage_down: None
) -> None:
    response = requests.get(party(sandbox).authorization_url(Pkce()), allow_redirects=False, timeout=30)
    assert response.status_code == 302 and response.headers["Location"].startswith(sandbox.entra_url)


def test_token_during_a_storage_outage_is_503_temporarily_unavailable(sandbox: Sandbox, storage_down: None) -> None:
    client = next(c for c in sandbox.clients if c.client_id == "rp-basic")
    response = requests.post(
        f"{sandbox.broker_url}/token",
        data={"grant_type": "authorization_code", "code": "0" * 32 + "." + "A" * 43,
              "redirect_uri": client.redirect_uris[0], "code_verifier": "v" * 43},
        auth=(client.client_id, client.secret or ""),
        timeout=30,
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_a_page_during_a_storage_outage_is_a_french_503_page(
    sandbox: Sandbox, request: pytest.FixtureRequest
) -> None:
    ensure_paired(sandbox, "cpx", "medecin-cps")
    browser, rp = Browser(sandbox), party(sandbox)
    page = browser.go(rp.authorization_url(Pkce(), login_hint="cpx"), stop_at=rp.redirect_uri)
    assert isinstance(page, Page) and page.h1 == "Connexion"
    request.getfixturevalue("storage_down")
    response = browser.submit(page, "confirm", stop_at=rp.redirect_uri)
    assert isinstance(response, Page) and response.status == 503
    assert 'lang="fr"' in response.html and "indisponible" in response.html


def test_health_is_503_and_the_log_names_the_failing_dependency(
    sandbox: Sandbox, storage_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sanscouture")
    response = requests.get(f"{sandbox.broker_url}/health", timeout=30)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}  # which one, and why, only in the log
    failing = [getattr(r, "failing", None) for r in caplog.records
               if r.getMessage() == "health: dependency unavailable"]
    assert failing == ["tables"]


def test_health_is_200_when_every_dependency_answers(sandbox: Sandbox) -> None:
    response = requests.get(f"{sandbox.broker_url}/health", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
