"""Back-channel logout over real HTTPS through Azurite's queue service (issue 10 point 2).

The relying party ``rp-bcl`` registers ``backchannel_logout_uri`` (its endpoint,
tests/e2e/backchannel_receiver.py, validates every token as an RP must) with
``backchannel_logout_session_required``. The sandbox's queue host runs the queue trigger as the
Functions host would; retries come after 1 s then 2 s and the third attempt dead-letters (tests/conftest.py).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from azure.storage.queue import BinaryBase64DecodePolicy
from azure.storage.queue import QueueClient

from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sanscouture.adapters.tables import Tables
from sanscouture.cookies import SESSION_COOKIE
from tests.e2e.backchannel_receiver import BackchannelReceiver
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tools.pairings import main as pairings_tool

ENTRA, PSC = "fido2", "pharmacien-cps"


@pytest.fixture
def receiver(backchannel_receiver: tuple[BackchannelReceiver, int]) -> BackchannelReceiver:
    return backchannel_receiver[0]


def party(sandbox: Sandbox, client_id: str = "rp-bcl") -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == client_id))


def signed_in(sandbox: Sandbox, user: Browser | None = None, client_id: str = "rp-bcl",
              **extra: str) -> tuple[Browser, dict[str, Any], str]:
    """A browser signed in to ``client_id`` (paired if needed): the ID token's claims, and the token."""
    user = user or Browser(sandbox, entra_persona=ENTRA, psc_persona=PSC)
    rp, pkce = party(sandbox, client_id), Pkce()
    landing = sign_in(user, rp, pkce, **extra)
    tokens = rp.redeem(landing.params["code"], pkce).json()
    return user, jwt.decode(tokens["id_token"], options={"verify_signature": False}), tokens["id_token"]


def logout_url(sandbox: Sandbox, id_token: str) -> str:
    return (f"{sandbox.broker_url}/logout?id_token_hint={id_token}"
            f"&post_logout_redirect_uri=https://rp-bcl.example.fr/logged-out")


def remove_as_administrator(sandbox: Sandbox) -> str:
    """``python -m tools.pairings remove`` of ENTRA's pairing, with the queue configured: what it printed."""
    out = io.StringIO()
    env = {"BROKER_TABLES_CONNECTION_STRING": sandbox.azurite_connection or "",
           "BROKER_QUEUES": sandbox.queues_connection or ""}
    command = ["remove", "--tenant", HOSPITAL_TENANT_ID, "--oid", persona_oid(sandbox, ENTRA)]
    assert pairings_tool(command, env, out) == 0
    return out.getvalue()


def the_logout_token(receiver: BackchannelReceiver, sid: str) -> dict[str, Any]:
    """The one logout token the relying party received (and validated) for the session ``sid``."""
    assert receiver.wait_for(lambda: bool(receiver.tokens_for(sid)))
    (token,) = receiver.tokens_for(sid)
    return token


def audit_rows(sandbox: Sandbox, sid: str) -> list[tuple[str, str]]:
    rows = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"].all_rows()
    return sorted((str(r.data["event"]), str(r.data["client_id"])) for r in rows
                  if str(r.data.get("event", "")).startswith("backchannel_logout") and r.data.get("sid") == sid)


def demo_signed_in(sandbox: Sandbox, user: Browser) -> tuple[Browser, Page]:
    """``user`` (unpaired) pairs and signs in to the demo service: the demo's page, « Se déconnecter » on it."""
    home = user.go(f"{sandbox.demo_url}/")
    assert isinstance(home, Page)
    page = user.submit(home, "standard")
    assert isinstance(page, Page) and page.h1 == "Appairage du compte"
    page = user.submit(page, "pair")
    assert isinstance(page, Page) and page.h1 == "Connexion"
    signed = user.submit(page, "confirm")
    assert isinstance(signed, Page) and "Se déconnecter" in signed.html
    return user, signed


def deliveries_to_the_demo(sandbox: Sandbox) -> int:
    """Logout tokens delivered to the demo service so far (counted, not timed: other tests deliver to
    it in the same second)."""
    rows = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"].all_rows()
    return sum(1 for r in rows if r.data.get("event") == "backchannel_logout_delivered"
               and r.data.get("client_id") == "portail-demo")


def test_rp_initiated_logout_sends_a_valid_logout_token_with_the_sessions_sid_and_sub(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    unpair(sandbox, ENTRA)
    user, claims, id_token = signed_in(sandbox)
    landing = user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out")
    assert isinstance(landing, Landing)
    token = the_logout_token(receiver, claims["sid"])
    assert (token["sub"], token["aud"], token["iss"]) == (claims["sub"], "rp-bcl", sandbox.broker_url)
    assert token["exp"] - token["iat"] == 120 and "nonce" not in token
    assert all(r.content_type == "application/x-www-form-urlencoded" for r in receiver.received)
    assert all(r.refused is None for r in receiver.received), [r.refused for r in receiver.received]
    assert receiver.wait_for(lambda: audit_rows(sandbox, claims["sid"]) == [
        ("backchannel_logout_delivered", "rp-bcl")], timeout=10)


def test_logout_answers_before_a_hanging_relying_party_is_answered(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    unpair(sandbox, ENTRA)
    user, claims, id_token = signed_in(sandbox)
    sid = claims["sid"]
    receiver.holds[sid] = hold = threading.Event()
    try:
        landing = user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out")
        assert isinstance(landing, Landing)  # /logout has answered ...
        assert sid not in receiver.answered  # ... while the relying party has not been answered
    finally:
        hold.set()
    assert receiver.wait_for(lambda: sid in receiver.answered)
    assert receiver.tokens_for(sid)  # delivered once released (retried if the hold outlasted the timeout)


def test_a_hanging_relying_party_delays_no_other_services_notice(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    """Nothing else waits on it: while rp-bcl holds one session's logout token (the broker waits up to
    BROKER_BACKCHANNEL_TIMEOUT, 5 s, for its answer), another session's logout at the demo service is
    delivered to the demo service. The queue host runs the messages in parallel, as the Functions host
    does (host.json batchSize and newBatchThreshold)."""
    unpair(sandbox, ENTRA)
    unpair(sandbox, "cpx")
    user, claims, id_token = signed_in(sandbox)
    other, home = demo_signed_in(sandbox, Browser(sandbox, entra_persona="cpx", psc_persona="medecin-cps"))
    sid = claims["sid"]
    receiver.holds[sid] = hold = threading.Event()
    try:
        assert isinstance(user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out"),
                          Landing)
        assert receiver.wait_for(lambda: bool(receiver.tokens_for(sid)))  # rp-bcl holds it from now on
        held_since, before = time.monotonic(), deliveries_to_the_demo(sandbox)
        after = other.submit(home, "logout")
        assert isinstance(after, Page) and after.url.startswith(sandbox.demo_url)
        deadline = time.monotonic() + 30
        while deliveries_to_the_demo(sandbox) == before and time.monotonic() < deadline:
            threading.Event().wait(0.1)
        assert deliveries_to_the_demo(sandbox) > before
        # ... while the broker still waits for rp-bcl: its first attempt has neither been answered nor
        # timed out (delivered one after the other, the demo's notice would wait for that timeout).
        assert time.monotonic() - held_since < 5
        assert sid not in receiver.answered and len(receiver.tokens_for(sid)) == 1
    finally:
        hold.set()
    assert receiver.wait_for(lambda: sid in receiver.answered)


def test_a_relying_party_that_times_out_is_retried_then_dead_lettered_as_unreachable(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    unpair(sandbox, ENTRA)
    user, claims, id_token = signed_in(sandbox)
    sid = claims["sid"]
    receiver.holds[sid] = hold = threading.Event()  # never answers within BROKER_BACKCHANNEL_TIMEOUT (5 s)
    try:
        user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out")
        assert receiver.wait_for(lambda: audit_rows(sandbox, sid) == [("backchannel_logout_dead_lettered", "rp-bcl")],
                                 timeout=60)
    finally:
        hold.set()
    assert len(receiver.tokens_for(sid)) == 3
    rows = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"].all_rows()
    (dead,) = [r.data for r in rows
               if r.data.get("sid") == sid and r.data.get("event") == "backchannel_logout_dead_lettered"]
    assert (dead["reason"], dead["error"], dead["attempts"]) == ("unreachable", "ReadTimeout", 3)


def test_a_relying_party_answering_500_is_retried_with_backoff_then_dead_lettered(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    unpair(sandbox, ENTRA)
    user, claims, id_token = signed_in(sandbox)
    sid = claims["sid"]
    receiver.statuses[sid] = 500
    started = time.monotonic()
    user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out")
    assert receiver.wait_for(lambda: audit_rows(sandbox, sid) == [("backchannel_logout_dead_lettered", "rp-bcl")])
    assert len(receiver.tokens_for(sid)) == 3  # BROKER_BACKCHANNEL_MAX_ATTEMPTS
    assert time.monotonic() - started >= 3  # waited 1 s, then 2 s (BROKER_BACKCHANNEL_RETRY_SECONDS, doubling)
    assert len({token["jti"] for token in receiver.tokens_for(sid)}) == 3  # a fresh token each attempt
    poison = QueueClient.from_connection_string(sandbox.queues_connection or "", "backchannel-logout-poison",
                                                message_decode_policy=BinaryBase64DecodePolicy())
    bodies = [json.loads(m.content) for m in poison.peek_messages(max_messages=32)]
    assert {"client_id": "rp-bcl", "sub": claims["sub"], "sid": sid, "attempt": 3} in bodies


def test_a_pairing_removed_at_compte_is_announced(sandbox: Sandbox, receiver: BackchannelReceiver) -> None:
    unpair(sandbox, ENTRA)
    user, claims, _ = signed_in(sandbox)
    page = user.go(f"{sandbox.broker_url}/compte")
    assert isinstance(page, Page) and page.h1 == "Mes appairages"
    shown = user.go(f"{sandbox.broker_url}{page.link('Supprimer')}")
    assert isinstance(shown, Page)
    result = user.submit(shown, "remove")
    assert isinstance(result, Page) and result.h1 == "Appairage supprimé"
    token = the_logout_token(receiver, claims["sid"])
    assert token["sub"] == claims["sub"]


def test_a_pairing_removed_by_the_administrator_tool_is_announced(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    unpair(sandbox, ENTRA)
    _, claims, _ = signed_in(sandbox)
    assert "1 back-channel logout(s) queued" in remove_as_administrator(sandbox)
    token = the_logout_token(receiver, claims["sid"])
    assert token["sub"] == claims["sub"]


def test_a_session_ended_by_another_persons_sign_in_is_announced(
    sandbox: Sandbox, receiver: BackchannelReceiver
) -> None:
    unpair(sandbox, ENTRA)
    user, first, _ = signed_in(sandbox)
    user.entra_persona, user.psc_persona = "cpx", "medecin-cps"  # the next person at the shared workstation
    _, second, _ = signed_in(sandbox, user, prompt="login")
    assert second["sid"] != first["sid"] and second["sub"] != first["sub"]
    token = the_logout_token(receiver, first["sid"])
    assert token["sub"] == first["sub"]
    assert receiver.tokens_for(second["sid"]) == []  # the new session lives on


def test_discovery_advertises_back_channel_logout_with_sessions(sandbox: Sandbox) -> None:
    document = requests.get(f"{sandbox.broker_url}/.well-known/openid-configuration", timeout=10).json()
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True


def test_only_clients_with_a_back_channel_uri_are_told(sandbox: Sandbox, receiver: BackchannelReceiver) -> None:
    """The session signed in to rp-basic (no back-channel URI) and rp-bcl: one notice, rp-bcl's."""
    unpair(sandbox, ENTRA)
    user, basic, _ = signed_in(sandbox, client_id="rp-basic")
    _, claims, id_token = signed_in(sandbox, user)
    assert claims["sid"] == basic["sid"]  # one broker session
    assert user.session.cookies.get(SESSION_COOKIE)
    user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out")
    assert receiver.wait_for(lambda: audit_rows(sandbox, claims["sid"]) == [("backchannel_logout_delivered", "rp-bcl")])
    assert [token["aud"] for token in receiver.tokens_for(claims["sid"])] == ["rp-bcl"]


def end_by_rp_initiated_logout(sandbox: Sandbox, user: Browser) -> None:
    """Another service of the same broker session (silently signed in) sends the browser to /logout."""
    rp, pkce = party(sandbox), Pkce()
    landing = user.go(rp.authorization_url(pkce, prompt="none"), stop_at=rp.redirect_uri)
    assert isinstance(landing, Landing) and "code" in landing.params, landing
    id_token = rp.redeem(landing.params["code"], pkce).json()["id_token"]
    assert isinstance(user.go(logout_url(sandbox, id_token), stop_at="https://rp-bcl.example.fr/logged-out"), Landing)


def end_by_another_persons_sign_in(sandbox: Sandbox, user: Browser) -> None:
    """The next person at the shared workstation signs in to another service in the same browser."""
    user.entra_persona, user.psc_persona = "cpx", "medecin-cps"
    signed_in(sandbox, user, prompt="login")


def end_by_pairing_removal(sandbox: Sandbox, user: Browser) -> None:
    """An administrator removes the pairing."""
    remove_as_administrator(sandbox)


@pytest.mark.parametrize("end_session", [end_by_rp_initiated_logout, end_by_another_persons_sign_in,
                                         end_by_pairing_removal], ids=["rp-initiated-logout",
                                                                       "another-persons-sign-in", "pairing-removal"])
def test_the_demo_service_shows_that_the_broker_signed_it_out(
    sandbox: Sandbox, end_session: Callable[[Sandbox, Browser], None]
) -> None:
    """The demo service (Authlib) registers its back-channel URI, verifies the logout token (signature
    against /jwks, iss, aud, typ, events, no nonce) and says on its page that the broker signed it out:
    for each of the three triggers of issue 10 point 2."""
    unpair(sandbox, ENTRA)
    unpair(sandbox, "cpx")
    user, _ = demo_signed_in(sandbox, Browser(sandbox, entra_persona=ENTRA, psc_persona=PSC))
    before = deliveries_to_the_demo(sandbox)
    end_session(sandbox, user)
    deadline = time.monotonic() + 30
    while deliveries_to_the_demo(sandbox) == before and time.monotonic() < deadline:
        threading.Event().wait(0.2)
    assert deliveries_to_the_demo(sandbox) > before
    after = user.go(f"{sandbox.demo_url}/")
    assert isinstance(after, Page)
    assert "Vous avez été déconnecté(e) par le fournisseur d&#39;identité." in after.html
    assert "Se déconnecter" not in after.html
