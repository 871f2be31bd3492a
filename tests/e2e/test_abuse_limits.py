"""Abuse limits per source address (issue 8, point 9), over HTTPS through the sandbox host.

The sandbox's broker runs with limits high enough for the whole suite (tests/conftest.py); each test
here gives the worker fresh, tight limiters through its composition root, as the settings would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from functions import _wiring
from sandbox.run import Sandbox
from sandbox.scripted import Pkce
from sanscouture.limits import Limits
from tests.e2e.conftest import RelyingParties
from tests.e2e.test_journey import rp


@pytest.fixture
def tight_limits(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Limits]:
    """3 journeys and 2 failed client authentications a minute per source, for this test only."""
    wired = _wiring.services()
    limits = Limits.per_minute(journeys=3, failed_client_auth=2)
    monkeypatch.setitem(vars(wired), "limits", limits)
    monkeypatch.delitem(vars(wired), "broker", raising=False)  # rebuilt with these limits
    yield limits
    vars(wired).pop("broker", None)


def test_a_source_starting_too_many_sign_ins_gets_a_french_429_page_and_no_row(
    sandbox: Sandbox, tight_limits: Limits
) -> None:
    party = rp(sandbox)
    answers = [requests.get(party.authorization_url(Pkce(), login_hint="cpx"), allow_redirects=False, timeout=10)
               for _ in range(4)]
    assert [answer.status_code for answer in answers] == [302, 302, 302, 429]
    refused = answers[3]
    assert 'lang="fr"' in refused.text and "Trop de tentatives" in refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Set-Cookie" not in refused.headers  # nothing started, nothing stored for this request


def test_failed_client_authentications_are_slowed_down_then_even_the_right_secret_waits(
    rps: RelyingParties, tight_limits: Limits
) -> None:
    code, pkce = rps.code("rp-basic")
    wrong = {"Authorization": "Basic cnAtYmFzaWM6d3Jvbmc="}  # rp-basic:wrong
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://rp-basic.example.fr/callback",
            "code_verifier": pkce.verifier}
    statuses = [requests.post(f"{rps.broker.url}/token", data=form, headers=wrong, timeout=10).status_code
                for _ in range(3)]
    assert statuses == [401, 401, 429]
    slowed = rps.redeem("rp-basic", code, pkce)  # the right secret, too early
    assert slowed.status_code == 429
    assert slowed.json() == {"error": "slow_down",
                             "error_description": "too many requests from this address, retry later"}
    assert int(slowed.headers["Retry-After"]) >= 1 and slowed.headers["Cache-Control"] == "no-store"


def test_successful_client_authentications_are_not_limited(rps: RelyingParties, tight_limits: Limits) -> None:
    for _ in range(5):
        assert rps.redeem("rp-basic", *rps.code("rp-basic")).status_code == 200
