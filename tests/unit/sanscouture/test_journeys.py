"""Journeys sealed in their own cookies: browser binding, CSRF, lifetime, parallel tabs (docs/design.md
"State"), and the cross-site POST answered as a GET."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any

import pytest

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.errors import RequestTooLargeError
from sanscouture.journeys import MAX_REDIRECT_QUERY_BYTES
from sanscouture.journeys import Journey
from sanscouture.journeys import JourneyStore
from sanscouture.journeys import Step
from sanscouture.journeys import cookieless_post_as_get
from sanscouture.journeys import grant_id_for
from sanscouture.journeys import journey_cookie_name
from sanscouture.keys import KeyRing
from sanscouture.models import AuthorizationRequest
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.sealing import SealedTooLargeError
from sanscouture.sealing import Sealer
from sanscouture.web import Request
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import shared_key_source

ISSUER = "https://broker.example.fr"


def store(clock: FakeClock | None = None) -> tuple[JourneyStore, FakeClock]:
    clock = clock or FakeClock()
    return JourneyStore(Sealer(KeyRing(shared_key_source(), clock=clock), "journey", clock), clock), clock


def cookie_jar(*set_cookies: str) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in set_cookies:
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";")[0]
    return jar


def max_age(set_cookie: str) -> int:
    return int(set_cookie.split("Max-Age=")[1])


def test_a_new_journey_has_random_ids_and_starts_now() -> None:
    journeys, _ = store(FakeClock(NOW + 0.7))
    first, second = journeys.new(Step.ENTRA, None), journeys.new(Step.ENTRA, None)
    assert len(first.id) == 43 and len(first.csrf) == 43
    assert len({first.id, first.csrf, second.id, second.csrf}) == 4
    assert first.started_at == int(NOW) and first.step == "entra" and first.request is None


def test_a_journey_round_trips_through_its_cookie_with_every_field() -> None:
    journeys, _ = store()
    request = AuthorizationRequest("sn", "https://sn.example.fr/cb", ("openid",), CHALLENGE, state="st")
    identity = PscIdentity("f:x:1", "810100000001", "Claire", "MARTIN", "CARD", {"sub": "f:x:1"})
    journey = journeys.new(Step.CONFIRM, request).advance(
        entra_flow={"state": "e"}, psc_flow={"state": "p"}, psc_purpose="pair",
        account=EntraAccount("tid", "oid", auth_time=5), shown_sub="f:x:1", shown_etag="W/1",
        shown_identity=identity, shown_due_at=7, entra_asked_at=8, entra_fresh_asked=True)
    jar = cookie_jar(journeys.cookie(journey))
    assert list(jar) == [journey_cookie_name(journey.id)]
    assert journeys.load(jar, journey.id) == journey


def test_defaults_are_left_out_and_read_back_as_defaults() -> None:
    journeys, _ = store()
    journey = journeys.new(Step.MIRE, None)
    loaded = journeys.load(cookie_jar(journeys.cookie(journey)), journey.id)
    assert loaded == journey
    assert loaded is not None and loaded.entra_fresh_asked is False and loaded.shown_due_at == 0


def test_only_the_browser_holding_the_cookie_finds_its_journey() -> None:
    journeys, _ = store()
    journey = journeys.new(Step.ENTRA, None)
    jar = cookie_jar(journeys.cookie(journey))
    assert journeys.load({}, journey.id) is None
    assert journeys.load(jar, None) is None
    assert journeys.load(jar, "") is None
    assert journeys.load(jar, journey.id[:-1] + "!") is None  # not one of our ids
    other = journeys.new(Step.ENTRA, None)
    # Another journey's sealed value under this journey's cookie name: the ids differ.
    forged = {journey_cookie_name(other.id): jar[journey_cookie_name(journey.id)]}
    assert journeys.load(forged, other.id) is None
    tampered = {name: value[:-2] + "AA" for name, value in jar.items()}
    assert journeys.load(tampered, journey.id) is None


def test_a_sealed_document_that_is_not_a_journey_is_ignored() -> None:
    clock = FakeClock()
    sealer = Sealer(KeyRing(shared_key_source(), clock=clock), "journey", clock)
    journeys = JourneyStore(sealer, clock)
    journey_id = "a" * 43
    broken = {journey_cookie_name(journey_id): sealer.seal({"id": journey_id, "step": "entra"}, ttl=60)}
    assert journeys.load(broken, journey_id) is None  # no csrf: KeyError, not a crash


@pytest.mark.parametrize(("token", "ok"), [("right", True), ("wrong", False), ("", False), (None, False),
                                            ("réponse", False), ("righ", False)])
def test_the_csrf_token_is_compared_exactly_and_never_raises(token: str | None, ok: bool) -> None:
    assert Journey("j", "right", Step.PAIRING).csrf_ok(token) is ok


def test_a_journey_lasts_fifteen_minutes_from_its_start_and_its_cookie_a_grace_more() -> None:
    journeys, clock = store()
    journey = journeys.new(Step.ENTRA, None)
    assert not journey.expired(NOW + 899) and journey.expired(NOW + 900)
    assert max_age(journeys.cookie(journey)) == 1800
    clock.now += 600
    assert max_age(journeys.cookie(journey)) == 1200  # the cookie counts down from the start too
    clock.now += 5000
    assert max_age(journeys.cookie(journey)) == 1  # never zero: that would delete it
    assert "Path=/; Secure; HttpOnly; SameSite=Lax" in journeys.cookie(journey)


def test_names_and_the_grant_id_derive_from_the_journey_id() -> None:
    journey = Journey("A" * 20 + "b" * 23, "c", Step.CONFIRM)
    assert journey.cookie_name == "__Host-sc-j-" + "A" * 16
    assert journey.grant_id == hashlib.sha256(f"journey:{journey.id}".encode()).hexdigest()[:32]
    assert grant_id_for("x") != grant_id_for("y")


def test_a_shown_identity_too_large_for_a_cookie_is_left_out() -> None:
    journeys, _ = store()
    huge = PscIdentity("f:x:1", "810100000001", "Claire", "MARTIN", "CARD", {"activities": secrets.token_hex(3000)})
    journey = journeys.new(Step.CONFIRM, None).advance(shown_identity=huge, shown_etag="W/1", shown_sub="f:x:1")
    loaded = journeys.load(cookie_jar(journeys.cookie(journey)), journey.id)
    assert loaded is not None
    assert (loaded.shown_identity, loaded.shown_etag, loaded.shown_sub) == (None, None, "f:x:1")
    with pytest.raises(SealedTooLargeError):
        journeys.cookie(journeys.new(Step.CONFIRM, None).advance(psc_flow={"x": secrets.token_hex(3000)}))


def test_at_most_five_journeys_live_in_a_browser_the_oldest_dropped() -> None:
    journeys, clock = store()
    jar: dict[str, str] = {"other": "cookie"}
    started: list[Journey] = []
    for _ in range(5):
        journey = journeys.new(Step.ENTRA, None)
        started.append(journey)
        set_cookies = journeys.started(jar, journey)
        assert len(set_cookies) == (1 if len(started) <= 5 else 2)
        jar.update(cookie_jar(*set_cookies))
        clock.now += 1
    sixth = journeys.new(Step.ENTRA, None)
    set_cookies = journeys.started(jar, sixth)
    assert set_cookies[1] == f"{started[0].cookie_name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    assert len(set_cookies) == 2
    # An unreadable journey cookie counts as the oldest.
    jar = {**{name: value for name, value in jar.items() if name != started[0].cookie_name},
           sixth.cookie_name: cookie_jar(set_cookies[0])[sixth.cookie_name]}
    jar[started[3].cookie_name] = "garbage"
    seventh = journeys.started(jar, journeys.new(Step.ENTRA, None))
    assert seventh[1].startswith(f"{started[3].cookie_name}=;")
    assert journeys.ended(sixth) == f"{sixth.cookie_name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"


def test_the_journey_dropped_is_the_oldest_by_its_start_whatever_its_cookie_name() -> None:
    """Cookie names are random: the oldest journey is the one started first, read from its sealed cookie."""
    journeys, clock = store()
    jar: dict[str, str] = {}
    started: list[Journey] = []
    for letter in "edcba":  # each journey's cookie name sorts before those of the journeys started earlier
        journey = dataclasses.replace(journeys.new(Step.ENTRA, None), id=letter * 43)
        started.append(journey)
        jar.update(cookie_jar(*journeys.started(jar, journey)))
        clock.now += 1
    newest = dataclasses.replace(journeys.new(Step.ENTRA, None), id="f" * 43)
    assert journeys.started(jar, newest)[1:] == (
        f"{started[0].cookie_name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",)


def post(cookie: str = "", body: bytes = b"client_id=sn&state=x", form: dict[str, Any] | None = None,
         method: str = "POST") -> Request:
    return Request(method, f"{ISSUER}/logout", {"cookie": cookie}, form={"client_id": "sn"} if form is None else form,
                   body=body)


def test_a_cookieless_cross_site_post_is_answered_with_303_to_the_same_get() -> None:
    response = cookieless_post_as_get(post(), ISSUER, "/logout")
    assert response is not None
    assert (response.status, response.header("Location")) == (303, f"{ISSUER}/logout?client_id=sn&state=x")
    assert cookieless_post_as_get(post(cookie="theme=dark"), ISSUER, "/logout") is not None


def test_a_post_that_carries_the_brokers_cookies_or_no_form_is_handled_as_is() -> None:
    assert cookieless_post_as_get(post(method="GET"), ISSUER, "/logout") is None
    assert cookieless_post_as_get(post(form={}), ISSUER, "/logout") is None
    assert cookieless_post_as_get(post(cookie=f"{SESSION_COOKIE}=s"), ISSUER, "/logout") is None
    assert cookieless_post_as_get(post(cookie="__Host-sc-j-abcdefghijklmnop=j"), ISSUER, "/logout") is None


def test_a_cross_site_post_that_is_not_utf8_is_redirected_with_replacement_characters() -> None:
    """Decoded with replacement characters, then percent-encoded: a Location header is ASCII."""
    response = cookieless_post_as_get(post(body=b"client_id=s\xffn"), ISSUER, "/logout")
    assert response is not None and response.header("Location") == f"{ISSUER}/logout?client_id=s%EF%BF%BDn"


def test_a_cross_site_post_of_exactly_the_location_limit_is_redirected_one_byte_more_is_413() -> None:
    """The largest body a Location may carry (24 KiB: a 16 KiB id_token_hint and the rest) is redirected;
    one byte more is refused, and the refusal logs the size (never the content)."""
    prefix = b"id_token_hint="
    at_limit = prefix + b"a" * (MAX_REDIRECT_QUERY_BYTES - len(prefix))
    response = cookieless_post_as_get(post(body=at_limit), ISSUER, "/logout")
    assert response is not None and response.status == 303
    assert response.header("Location") == f"{ISSUER}/logout?{at_limit.decode()}"
    with pytest.raises(RequestTooLargeError) as raised:
        cookieless_post_as_get(post(body=at_limit + b"a"), ISSUER, "/logout")
    assert raised.value.detail == f"cross-site POST of {MAX_REDIRECT_QUERY_BYTES + 1} bytes as a query"
