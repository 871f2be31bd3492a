"""The journey's checks one by one on the fakes of test_journey: prompt=none and the broker session,
the forms' journey binding and CSRF, the upstream returns, the way refusals go back to the service."""

from __future__ import annotations

import dataclasses
import html
import re
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from sanscouture import journey
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.journeys import Step
from sanscouture.limits import Limits
from tests.unit.oidc.fakes import ISSUER
from tests.unit.test_journey import DOCTOR
from tests.unit.test_journey import OTHER
from tests.unit.test_journey import REDIRECT
from tests.unit.test_journey import TENANT
from tests.unit.test_journey import World
from tests.unit.test_journey import landing


def signed_in() -> World:
    world = World()
    assert "code" in landing(world.first_sign_in())
    return world


def audited(world: World, event: str) -> list[dict[str, object]]:
    return [row.data for row in world.tables["audit"].rows.values() if row.data.get("event") == event]


def back_link(page: object) -> dict[str, str]:
    body = page.body.decode()  # type: ignore[attr-defined]
    url = html.unescape(re.search(r'href="(https://sn\.example\.fr/cb[^"]*)"', body).group(1))  # type: ignore[union-attr]
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- prompt=none ---------------------------------------------------------------------------------------


def test_prompt_none_without_a_session_is_login_required() -> None:
    answer = landing(World().authorize(prompt="none"))
    assert (answer["error"], answer["error_description"], answer["state"], answer["iss"]) == (
        "login_required", "no broker session", "st", ISSUER)


def test_prompt_none_with_a_live_session_issues_a_code_and_audits_it() -> None:
    world = signed_in()
    answer = landing(world.authorize(prompt="none"))
    assert set(answer) == {"code", "state", "iss"} and answer["state"] == "st"
    [session_login] = [row for row in audited(world, "login_succeeded") if row.get("mode") == "session"]
    assert session_login["client_id"] == "sn" and session_login["national_id"] == "********0001"


def test_prompt_none_after_the_pairing_was_removed_or_replaced_is_login_required() -> None:
    world = signed_in()
    world.broker.bindings.remove(TENANT, "oid-1")
    assert landing(world.authorize(prompt="none"))["error_description"] == "pairing no longer valid"
    world = signed_in()
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None
    world.tables["bindings"].save(TENANT, "oid-1", {**row.data, "identity": OTHER.to_dict()}, None)
    assert landing(world.authorize(prompt="none"))["error_description"] == "pairing no longer valid"


def test_a_session_is_bound_to_the_pairing_it_was_opened_through() -> None:
    world = signed_in()  # the pairing made, then Confirmer (the row read again)
    binding = world.broker.bindings.find(TENANT, "oid-1")
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert binding is not None and session is not None
    assert binding.pairing_id and session.pairing_id == binding.pairing_id
    del world.cookies[SESSION_COOKIE]  # another browser: the Connexion page, Confirmer as of its ETag
    page = world.callback(journey.entra_callback, world.authorize())
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
    again = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert again is not None and again.sid != session.sid and again.pairing_id == binding.pairing_id


def test_prompt_none_with_a_session_of_a_pairing_removed_then_made_again_in_the_same_second_is_login_required() -> None:
    """The same identity paired again at once: the session was opened through the removed pairing (its id),
    and the clock, still in the same second, cannot tell the two pairings apart."""
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None and session.pairing_id
    world.broker.bindings.remove(TENANT, "oid-1")
    again, created = world.broker.bindings.create(session.account, DOCTOR)
    assert created and again.paired_at == session.created_at and again.pairing_id != session.pairing_id
    assert landing(world.authorize(prompt="none"))["error_description"] == "the broker session has ended"


def test_a_session_of_a_pairing_removed_then_made_again_in_the_same_second_does_not_skip_entra() -> None:
    """Without prompt=none as with it: the Connexion page is not shown from the old pairing's session,
    Entra ID is asked again."""
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.broker.bindings.remove(TENANT, "oid-1")
    again, created = world.broker.bindings.create(session.account, DOCTOR)
    assert created and again.paired_at == session.created_at and again.pairing_id != session.pairing_id
    asked = len(world.entra.begun)
    answer = world.authorize()
    assert answer.status == 302 and (answer.header("Location") or "").startswith("https://entra.test/authorize?")
    assert len(world.entra.begun) == asked + 1


def with_a_session_from_before_pairing_ids(world: World) -> None:
    """The browser's session cookie as sealed before pairing ids existed: the same session, no pairing id."""
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None and session.pairing_id
    set_cookie = world.broker.sessions.cookie(dataclasses.replace(session, pairing_id=""))
    world.cookies[SESSION_COOKIE] = set_cookie.split("=", 1)[1].split(";", 1)[0]
    legacy = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert legacy is not None and (legacy.sid, legacy.pairing_id) == (session.sid, "")


def test_a_session_from_before_pairing_ids_is_admitted_when_opened_since_the_pairing_was_made() -> None:
    world = signed_in()
    with_a_session_from_before_pairing_ids(world)
    asked = len(world.entra.begun)
    assert world.authorize().status == 200  # the Connexion page, from the session
    assert len(world.entra.begun) == asked  # Entra ID not asked again
    assert "code" in landing(world.authorize(prompt="none"))


def test_a_session_from_before_pairing_ids_is_not_admitted_by_a_pairing_made_after_it() -> None:
    world = signed_in()
    with_a_session_from_before_pairing_ids(world)
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.broker.bindings.remove(TENANT, "oid-1")
    world.clock.now += 1  # the next second: the times tell the two pairings apart
    again, created = world.broker.bindings.create(session.account, DOCTOR)
    assert created and again.paired_at == session.created_at + 1
    assert landing(world.authorize(prompt="none"))["error_description"] == "the broker session has ended"
    assert world.authorize().status == 302  # to Entra ID, not the Connexion page


def test_prompt_none_after_the_session_was_ended_is_login_required() -> None:
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.broker.bindings.revoke_session(TENANT, "oid-1", session.public_sid, int(world.clock()) + 3600)
    assert landing(world.authorize(prompt="none"))["error_description"] == "the broker session has ended"


def test_prompt_none_when_the_re_verification_is_due_is_login_required() -> None:
    world = signed_in()
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None
    world.tables["bindings"].save(TENANT, "oid-1", {**row.data, "verified_at": int(world.clock()) - 400 * 86400,
                                                   "paired_at": int(world.clock()) - 400 * 86400},
                                  None)
    answer = landing(world.authorize(prompt="none"))
    assert answer["error_description"] == "the pairing's periodic re-verification is due"


def test_a_session_older_than_max_age_is_not_used() -> None:
    world = signed_in()
    world.clock.now += 600
    assert "code" in landing(world.authorize(prompt="none", max_age="600"))
    assert landing(world.authorize(prompt="none", max_age="599"))["error_description"] == "no broker session"


def test_prompt_login_never_uses_the_session() -> None:
    world = signed_in()
    assert (world.authorize(prompt="login").header("Location") or "").startswith("https://entra.test/")
    assert world.entra.begun[-1]["prompt"] == "login"


def test_a_hint_whose_sub_is_not_a_string_names_nobody() -> None:
    world = signed_in()
    hint = world.keys.sign({"iss": ISSUER, "sub": 42, "aud": "sn", "iat": 1, "exp": 2})
    assert landing(world.authorize(prompt="none", id_token_hint=hint))["error"] == "login_required"
    foreign = world.keys.sign({"iss": "https://other.example", "sub": DOCTOR.sub, "aud": "sn", "iat": 1, "exp": 2})
    assert landing(world.authorize(prompt="none", id_token_hint=foreign))["error"] == "login_required"


def test_a_session_shows_the_confirmation_page_without_going_to_entra() -> None:
    world = signed_in()
    page = world.authorize()
    assert page.status == 200 and "Connexion" in page.body.decode()
    assert len(world.entra.begun) == 1  # only the first sign-in's


# -- what is asked of Entra ----------------------------------------------------------------------------


def test_entra_is_asked_with_the_request_s_hint_prompt_and_max_age() -> None:
    world = World()
    world.authorize(login_hint="claire@chu.fr", max_age="600")
    begun = world.entra.begun[-1]
    assert (begun["login_hint"], begun["prompt"], begun["max_age"]) == ("claire@chu.fr", None, 600)
    assert begun["redirect_uri"] == f"{ISSUER}/callback"
    world.authorize(prompt="select_account")
    page_world = World()
    mire = page_world.authorize(prompt="select_account")
    page_world.post(journey.choose, mire, choice="entra")
    assert page_world.entra.begun[-1]["prompt"] == "select_account"


def test_the_mire_offers_entra_or_psc_and_nothing_else() -> None:
    world = World()
    mire = world.authorize(prompt="select_account")
    assert (world.post(journey.choose, mire, choice="psc").header("Location") or "").startswith("https://psc.test/")
    assert world.psc.begun[-1]["state"]
    world = World()
    mire = world.authorize(prompt="select_account")
    assert world.post(journey.choose, mire, choice="other").status == 400


def test_too_many_journeys_from_one_source_are_slowed_down() -> None:
    world = World()
    world.broker = dataclasses.replace(world.broker, limits=Limits.per_minute(1, 100, world.clock))
    assert world.authorize().status == 302
    assert world.authorize().status == 429


# -- forms: the journey, its step and its CSRF token -------------------------------------------------


def test_a_form_needs_this_browsers_journey_its_csrf_token_and_the_right_step() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    journey_id, csrf = world.form_of(pairing)
    def send(handler: object, query: dict[str, str], form: dict[str, str]) -> int:
        return handler(world.broker, world.request("POST", "/x", query, form)).status  # type: ignore[operator]

    assert send(journey.pair, {"j": journey_id}, {"csrf_token": "wrong", "action": "pair"}) == 403
    assert send(journey.pair, {"j": journey_id}, {"action": "pair"}) == 403
    assert send(journey.pair, {"j": "x" * 43}, {"csrf_token": csrf, "action": "pair"}) == 403
    assert send(journey.confirm, {"j": journey_id}, {"csrf_token": csrf, "action": "confirm"}) == 409  # wrong step
    assert send(journey.pair, {"j": journey_id}, {"csrf_token": csrf, "action": "verify"}) == 400
    world.clock.now += 15 * 60
    assert send(journey.pair, {"j": journey_id}, {"csrf_token": csrf, "action": "pair"}) == 400  # too late
    assert world.tables["bindings"].find(TENANT, "oid-1") is None


def test_the_journey_may_be_named_in_the_form() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    journey_id, csrf = world.form_of(pairing)
    request = world.request("POST", "/pair", {}, {"j": journey_id, "csrf_token": csrf, "action": "pair"})
    assert (journey.pair(world.broker, request).header("Location") or "").startswith("https://psc.test/")


def test_cancelling_the_pairing_goes_back_with_access_denied_and_audits_it() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    answer = landing(world.post(journey.pair, pairing, action="cancel"))
    assert (answer["error"], answer["error_description"], answer["state"]) == (
        "access_denied", "the user cancelled the sign-in", "st")
    assert [row["reason"] for row in audited(world, "login_refused")] == ["cancelled"]


# -- the upstream returns ------------------------------------------------------------------------------


def test_an_upstream_return_without_this_browsers_live_journey_at_that_step_is_session_expired() -> None:
    world = World()
    redirect = world.authorize()
    state = parse_qs(urlsplit(redirect.header("Location") or "").query)["state"][0]
    assert journey.entra_callback(world.broker, world.request("GET", "/callback", {"state": "x" * 43})).status == 400
    assert journey.psc_callback(world.broker, world.request("GET", "/pair/callback", {"state": state})).status == 400
    world.clock.now += 15 * 60
    assert journey.entra_callback(world.broker, world.request("GET", "/callback", {"state": state})).status == 400
    assert world.entra.begun and world.tables["bindings"].rows == {}


def test_a_refusal_shows_a_page_with_a_way_back_carrying_the_error_and_audits_it() -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 3600
    page = world.callback(journey.entra_callback, world.authorize(prompt="login"))
    assert page.status == 403
    back = back_link(page)
    assert (back["error"], back["error_description"], back["state"], back["iss"]) == (
        "access_denied", "the authentication is too old", "st", ISSUER)
    [refused] = audited(world, "login_refused")
    assert (refused["reason"], refused["client_id"]) == ("auth_too_old", "sn")
    assert re.search(r"[0-9a-f]{8}", str(refused["reference"]))


def test_a_client_removed_during_the_journey_ends_it() -> None:
    world = World()
    redirect = world.authorize()
    world.broker = dataclasses.replace(world.broker, settings=dataclasses.replace(world.broker.settings, clients=()))
    page = world.callback(journey.entra_callback, redirect)
    assert page.status == 403
    assert [row["reason"] for row in audited(world, "login_refused")] == ["unknown_client"]


def test_a_direct_psc_sign_in_follows_the_request_s_freshness_rules() -> None:
    world = World()
    mire = world.authorize(prompt="select_account login")
    world.psc.auth_time = int(world.clock()) - 3600  # PSC's SSO session, older than this journey
    page = world.callback(journey.psc_callback, world.post(journey.choose, mire, choice="psc"))
    assert page.status == 403 and back_link(page)["error"] == "access_denied"
    world = World()
    mire = world.authorize(prompt="select_account")
    world.psc.auth_time = int(world.clock()) - 3600
    assert "code" in landing(world.callback(journey.psc_callback, world.post(journey.choose, mire, choice="psc")))


def test_the_redirect_uri_of_the_code_is_the_request_s() -> None:
    world = World()
    location = world.first_sign_in().header("Location") or ""
    assert location.startswith(REDIRECT + "?")
    assert Step.CONFIRM == "confirm"
