"""A storage outage answers temporarily_unavailable / 503 and loses nothing; the log names the culprit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests

from functions import _wiring
from sandbox import azurite
from sandbox.run import Sandbox
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.servers import free_port
from sanscouture.adapters.tables import Tables


@pytest.fixture
def storage_down(sandbox: Sandbox) -> Iterator[None]:
    """Point the running broker at a storage endpoint where nothing listens, then restore it."""
    wired = _wiring.services()
    saved = {name: wired.__dict__.get(name) for name in ("tables", "broker")}
    wired.__dict__["tables"] = Tables.from_connection_string(azurite.connection_string(free_port()))
    wired.__dict__.pop("broker", None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                wired.__dict__.pop(name, None)
            else:
                wired.__dict__[name] = value


def test_authorize_during_a_storage_outage_returns_temporarily_unavailable(
    sandbox: Sandbox, storage_down: None
) -> None:
    party = RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-basic"))
    pkce = Pkce()
    response = requests.get(party.authorization_url(pkce), allow_redirects=False, timeout=30)
    assert response.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    assert params["error"] == "temporarily_unavailable"
    assert params["state"] == pkce.state


def test_token_during_a_storage_outage_is_503_temporarily_unavailable(sandbox: Sandbox, storage_down: None) -> None:
    client = next(c for c in sandbox.clients if c.client_id == "rp-basic")
    response = requests.post(
        f"{sandbox.broker_url}/token",
        data={"grant_type": "authorization_code", "code": "x" * 43, "redirect_uri": client.redirect_uris[0],
              "code_verifier": "v" * 43},
        auth=(client.client_id, client.secret or ""),
        timeout=30,
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


def test_a_page_during_a_storage_outage_is_a_french_503_page(sandbox: Sandbox, storage_down: None) -> None:
    url = f"{sandbox.broker_url}/confirm?j={'A' * 43}"
    response = requests.post(url, data={"csrf_token": "x", "action": "confirm"},
                             timeout=30)
    assert response.status_code == 503
    assert 'lang="fr"' in response.text and "indisponible" in response.text


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
