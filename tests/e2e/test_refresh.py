"""Refresh tokens over HTTP (RFC 6749 6; RFC 9700 4.14): a third-party library refreshes, every use
rotates the token, a used one presented again revokes the family, and nothing outlives the pairing,
the session or the 4-hour re-authentication rule."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client import OAuthError

from sandbox.psc_sim.personas import find_persona
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from tests.e2e.pairings import unpair

ENTRA_PERSONA, PSC_PERSONA = "fido2", "pharmacien-cps"


@pytest.fixture
def party(sandbox: Sandbox) -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-refresh"))


def signed_in(sandbox: Sandbox, party: RelyingParty) -> dict[str, Any]:
    """A paired sign-in of the test persona to ``party``; its token response (and the nonce it sent)."""
    unpair(sandbox, ENTRA_PERSONA)
    pkce = Pkce()
    landing = sign_in(Browser(sandbox, psc_persona=PSC_PERSONA, entra_persona=ENTRA_PERSONA), party, pkce)
    response = party.redeem(landing.params["code"], pkce)
    assert response.status_code == 200, response.text
    return {**response.json(), "nonce": pkce.nonce}


def refresh(party: RelyingParty, refresh_token: str, **extra: str) -> requests.Response:
    return requests.post(
        f"{party.sandbox.broker_url}/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **extra},
        auth=(party.client.client_id, party.client.secret or ""), timeout=30,
    )


def refused(response: requests.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


def test_the_demo_service_refreshes_its_tokens_with_authlib(sandbox: Sandbox) -> None:
    unpair(sandbox, ENTRA_PERSONA)
    browser = Browser(sandbox, entra_persona=ENTRA_PERSONA, psc_persona=PSC_PERSONA)
    page = browser.submit(browser.go(f"{sandbox.demo_url}/"), "standard")  # type: ignore[arg-type]
    assert isinstance(page, Page)
    if page.h1 == "Appairage du compte":
        page = browser.submit(page, "pair")
        assert isinstance(page, Page)
    home = browser.submit(page, "confirm")
    assert isinstance(home, Page) and "renouvelé 0 fois" in home.html
    persona = find_persona(PSC_PERSONA)
    assert persona is not None
    for times in (1, 2):
        home = browser.submit(home, "refresh")
        assert isinstance(home, Page) and "Jetons renouvelés." in home.html, home.html
        assert f"renouvelé {times} fois" in home.html
        # Still signed in, with /userinfo answered for the new access token (a failed refresh or
        # /userinfo ends the demo's session: its page then offers to sign in again).
        assert f"identifiant national {persona.id_nat}" in home.html and "Vous êtes connecté(e)" in home.html


def test_an_authlib_session_refreshes_and_the_new_access_token_serves_userinfo(
    sandbox: Sandbox, party: RelyingParty
) -> None:
    tokens = signed_in(sandbox, party)
    assert tokens["refresh_token"] and tokens["expires_in"] == 120
    session = OAuth2Session(client_id=party.client.client_id, client_secret=party.client.secret,
                            token_endpoint_auth_method="client_secret_basic", token=tokens)
    renewed = session.refresh_token(f"{sandbox.broker_url}/token", refresh_token=tokens["refresh_token"])
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert renewed["access_token"] != tokens["access_token"]
    claims = party.verify_id_token(renewed["id_token"], nonce=None)  # OIDC Core 12.2: no nonce
    first = party.verify_id_token(tokens["id_token"], nonce=tokens["nonce"])
    assert (claims["sub"], claims["auth_time"], claims["sid"]) == (first["sub"], first["auth_time"], first["sid"])
    assert party.userinfo(renewed["access_token"]).status_code == 200
    assert party.userinfo(tokens["access_token"]).status_code == 200  # still within its own 2 minutes


def test_every_use_rotates_and_the_old_token_is_no_longer_accepted(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    second = refresh(party, tokens["refresh_token"])
    assert second.status_code == 200, second.text
    third = refresh(party, second.json()["refresh_token"])
    assert third.status_code == 200, third.text
    assert len({tokens["refresh_token"], second.json()["refresh_token"], third.json()["refresh_token"]}) == 3


def test_a_reused_refresh_token_revokes_the_family_and_its_access_tokens(
    sandbox: Sandbox, party: RelyingParty
) -> None:
    tokens = signed_in(sandbox, party)
    rotated = refresh(party, tokens["refresh_token"]).json()
    refused(refresh(party, tokens["refresh_token"]), "invalid_grant")  # the stolen copy, used again
    for access_token in (tokens["access_token"], rotated["access_token"]):
        answer = party.userinfo(access_token)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    refused(refresh(party, rotated["refresh_token"]), "invalid_grant")  # the legitimate one dies too


def test_a_refresh_token_is_refused_once_the_pairing_is_removed(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    unpair(sandbox, ENTRA_PERSONA)
    refused(refresh(party, tokens["refresh_token"]), "invalid_grant")
    assert party.userinfo(tokens["access_token"]).status_code == 401  # the family died with the pairing


def test_a_refresh_token_is_refused_past_the_four_hour_reauthentication_rule(
    sandbox: Sandbox, party: RelyingParty
) -> None:
    refresh_token, offset = signed_in(sandbox, party)["refresh_token"], 0
    while offset + 25 * 60 < 4 * 3600:  # used within its 30 minutes, again and again, up to the rule
        offset += 25 * 60
        with sandbox.time_travel(offset):
            answer = refresh(party, refresh_token)
            assert answer.status_code == 200, (offset, answer.text)
            refresh_token = answer.json()["refresh_token"]
    with sandbox.time_travel(4 * 3600 + 60):
        refused(refresh(party, refresh_token), "invalid_grant")


def test_a_refresh_token_expires_after_its_lifetime_without_use(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    with sandbox.time_travel(31 * 60):
        refused(refresh(party, tokens["refresh_token"]), "invalid_grant")


def test_a_client_not_registered_for_the_grant_is_unauthorized(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    basic = next(c for c in sandbox.clients if c.client_id == "rp-basic")
    answer = requests.post(f"{sandbox.broker_url}/token", auth=(basic.client_id, basic.secret or ""),
                           data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, timeout=30)
    refused(answer, "unauthorized_client")


def test_another_clients_refresh_token_is_invalid_grant(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    demo = sandbox.demo_client
    answer = requests.post(f"{sandbox.broker_url}/token", auth=(demo.client_id, demo.secret or ""),
                           data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, timeout=30)
    refused(answer, "invalid_grant")


def test_a_refresh_may_narrow_the_scope_never_widen_it(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    wider = refresh(party, tokens["refresh_token"], scope="openid profile email scope_all")
    refused(wider, "invalid_scope")
    narrower = refresh(party, tokens["refresh_token"], scope="openid")
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "openid"


def test_clients_without_the_grant_get_no_refresh_token_and_offline_access_is_not_offered(
    sandbox: Sandbox,
) -> None:
    metadata = requests.get(f"{sandbox.broker_url}/.well-known/openid-configuration", timeout=10).json()
    assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert "offline_access" not in metadata["scopes_supported"]
    basic = RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == "rp-basic"))
    unpair(sandbox, ENTRA_PERSONA)
    pkce = Pkce()
    landing = sign_in(Browser(sandbox, psc_persona=PSC_PERSONA, entra_persona=ENTRA_PERSONA), basic, pkce)
    assert "refresh_token" not in basic.redeem(landing.params["code"], pkce).json()


def test_an_authlib_refresh_after_reuse_raises_invalid_grant(sandbox: Sandbox, party: RelyingParty) -> None:
    tokens = signed_in(sandbox, party)
    session = OAuth2Session(client_id=party.client.client_id, client_secret=party.client.secret,
                            token_endpoint_auth_method="client_secret_basic", token=tokens)
    session.refresh_token(f"{sandbox.broker_url}/token", refresh_token=tokens["refresh_token"])
    with pytest.raises(OAuthError) as error:
        session.refresh_token(f"{sandbox.broker_url}/token", refresh_token=tokens["refresh_token"])
    assert error.value.error == "invalid_grant"
