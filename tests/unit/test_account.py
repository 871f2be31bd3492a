"""« Mes appairages » (sanscouture/account.py) on the journey's fakes with a controlled clock."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from sanscouture import account
from sanscouture import journey
from sanscouture.limits import Limits
from sanscouture.web import Response
from tests.unit.oidc.fakes import ISSUER
from tests.unit.test_journey import TENANT
from tests.unit.test_journey import World


def authenticated(world: World) -> str:
    """GET /compte, Entra's answer at /callback: the journey id the page is at."""
    start = world.keep_cookies(account.account_page(world.broker, world.request("GET", "/compte")))
    assert start.status == 302 and (start.header("Location") or "").startswith("https://entra.test/")
    back = world.callback(journey.entra_callback, start)
    assert back.status == 303, back.body
    location = back.header("Location") or ""
    assert location.startswith(f"{ISSUER}/compte?j=")
    return parse_qs(urlsplit(location).query)["j"][0]


def page(world: World, journey_id: str) -> Response:
    return world.keep_cookies(account.account_page(world.broker, world.request("GET", "/compte", {"j": journey_id})))


def removal_page(world: World, journey_id: str) -> Response:
    request = world.request("GET", "/compte/supprimer", {"j": journey_id})
    return world.keep_cookies(account.removal_page(world.broker, request))


def text(response: Response) -> str:
    return response.body.decode()


def test_entra_is_asked_for_a_fresh_authentication_returning_to_the_shared_callback() -> None:
    world = World()
    authenticated(world)
    (asked,) = world.entra.begun
    assert (asked["prompt"], asked["max_age"], asked["redirect_uri"]) == ("login", 0, f"{ISSUER}/callback")


def test_an_authentication_older_than_the_request_is_asked_again_once_then_refused() -> None:
    world = World()
    world.entra.auth_time = world.clock() - 60  # a Windows session, or an Entra that ignored prompt=login
    start = world.keep_cookies(account.account_page(world.broker, world.request("GET", "/compte")))
    again = world.callback(journey.entra_callback, start)
    assert again.status == 303 and (again.header("Location") or "").startswith("https://entra.test/")
    assert [(b["prompt"], b["max_age"]) for b in world.entra.begun] == [("login", 0), ("login", 0)]
    refused = world.callback(journey.entra_callback, again)
    assert refused.status == 403 and "une authentification récente" in text(refused)
    assert not any(name.startswith("__Host-sc-j-") for name in world.cookies)  # the journey is over


def test_a_fresh_answer_to_the_second_request_opens_the_page() -> None:
    world = World()
    world.entra.auth_time = world.clock() - 60
    start = world.keep_cookies(account.account_page(world.broker, world.request("GET", "/compte")))
    again = world.callback(journey.entra_callback, start)
    world.entra.auth_time = None  # Windows Hello's prompt this time
    back = world.callback(journey.entra_callback, again)
    assert back.status == 303 and "/compte?j=" in (back.header("Location") or "")


def test_an_unpaired_account_sees_aucun_appairage_and_nothing_to_remove() -> None:
    world = World()
    journey_id = authenticated(world)
    shown = page(world, journey_id)
    assert shown.status == 200 and "Aucun appairage" in text(shown) and "/compte/supprimer" not in text(shown)
    assert removal_page(world, journey_id).status == 303


def test_the_page_shows_the_pairing_masked_and_the_confirmation_removes_it() -> None:
    world = World()
    world.first_sign_in()
    journey_id = authenticated(world)
    shown = page(world, journey_id)
    assert "********0001" in text(shown) and "810100000001" not in text(shown)
    confirmation = removal_page(world, journey_id)
    assert confirmation.status == 200 and "Confirmer la suppression" in text(confirmation)
    assert world.broker.bindings.find(TENANT, "oid-1") is not None  # showing it removed nothing
    done = world.post(account.remove, confirmation, action="remove")
    assert done.status == 303 and world.broker.bindings.find(TENANT, "oid-1") is None
    assert "__Host-sc-session" not in world.cookies  # this browser's session of the account is cleared
    assert "Appairage supprimé" in text(page(world, journey_id))


def test_a_pairing_changed_after_the_confirmation_was_shown_is_not_removed() -> None:
    world = World()
    world.first_sign_in()
    journey_id = authenticated(world)
    confirmation = removal_page(world, journey_id)
    binding = world.broker.bindings.find(TENANT, "oid-1")
    assert binding is not None and binding.etag is not None
    assert world.broker.bindings.use_if_unchanged(TENANT, "oid-1", binding.etag)  # a sign-in elsewhere meanwhile
    refused = world.post(account.remove, confirmation, action="remove")
    assert refused.status == 409 and "modifié entre-temps" in text(refused)
    assert world.broker.bindings.find(TENANT, "oid-1") is not None


def test_cancel_goes_back_and_an_unknown_action_removes_nothing() -> None:
    world = World()
    world.first_sign_in()
    journey_id = authenticated(world)
    confirmation = removal_page(world, journey_id)
    assert world.post(account.remove, confirmation, action="cancel").header("Location") == \
        f"{ISSUER}/compte?j={journey_id}"
    assert world.post(account.remove, confirmation, action="supprimer").status == 409
    assert world.broker.bindings.find(TENANT, "oid-1") is not None


def test_a_sign_in_journey_cannot_reach_the_removal() -> None:
    world = World()
    world.first_sign_in()
    confirm_page = world.authorize()  # a session: the Connexion page of a sign-in journey
    sign_in_journey, _ = world.form_of(confirm_page)
    assert removal_page(world, sign_in_journey).status == 409


def test_past_fifteen_minutes_the_page_asks_for_authentication_again_and_the_form_is_refused() -> None:
    world = World()
    world.first_sign_in()
    journey_id = authenticated(world)
    confirmation = removal_page(world, journey_id)
    world.clock.now += 15 * 60
    assert world.post(account.remove, confirmation, action="remove").status == 400
    restarted = page(world, journey_id)
    assert restarted.status == 302 and (restarted.header("Location") or "").startswith("https://entra.test/")
    assert world.broker.bindings.find(TENANT, "oid-1") is not None


def test_starting_counts_in_the_per_source_journey_limit() -> None:
    world = World()
    world.broker = dataclasses.replace(world.broker, limits=Limits.per_minute(1, 10))
    assert account.account_page(world.broker, world.request("GET", "/compte")).status == 302
    refused = account.account_page(world.broker, world.request("GET", "/compte"))
    assert refused.status == 429 and refused.header("Retry-After")
