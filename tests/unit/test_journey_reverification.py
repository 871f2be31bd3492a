"""The periodic re-verification on the journey's fakes: a due pairing is proven again with the same
identity before any sign-in as it; another identity is refused and never replaces it."""

from __future__ import annotations

from sanscouture import journey
from sanscouture.cookies import SESSION_COOKIE
from tests.unit.test_journey import DOCTOR
from tests.unit.test_journey import OTHER
from tests.unit.test_journey import TENANT
from tests.unit.test_journey import World
from tests.unit.test_journey import landing

YEAR = 365 * 86400
REVERIFY = "Vérification périodique"


def due_world() -> World:
    """Signed in once, a year ago: the pairing is due, the broker session long gone."""
    world = World()
    assert "code" in landing(world.first_sign_in())
    world.clock.now += YEAR
    world.cookies.pop(SESSION_COOKIE)
    return world


def row(world: World) -> dict[str, object]:
    found = world.tables["bindings"].find(TENANT, "oid-1")
    assert found is not None
    return dict(found.data)


def events(world: World) -> list[dict[str, object]]:
    return [r.data for r in world.tables["audit"].rows.values()]


def test_a_due_pairing_shows_the_re_verification_page_and_the_same_identity_renews_it() -> None:
    world = due_world()
    page = world.callback(journey.entra_callback, world.authorize())
    assert page.status == 200 and REVERIFY in page.body.decode() and "********0001"[-4:] in page.body.decode()
    to_psc = world.post(journey.pair, page, action="verify")
    assert (world.psc.begun[-1]["prompt"], world.psc.begun[-1]["max_age"]) == ("login", 0)
    answer = landing(world.callback(journey.psc_callback, to_psc))
    assert "code" in answer
    assert row(world)["verified_at"] == int(world.clock())
    renewed = [e for e in events(world) if e["event"] == "pairing_reverified"]
    assert len(renewed) == 1 and renewed[0]["tid"] == TENANT and renewed[0]["oid"] == "oid-1"
    login = [e for e in events(world) if e["event"] == "login_succeeded"][-1]
    assert login["mode"] == "reverified"
    assert world.broker.sessions.find(world.cookies[SESSION_COOKIE]) is not None


def test_another_identity_at_the_re_verification_is_refused_and_replaces_nothing() -> None:
    world = due_world()
    verified_at = row(world)["verified_at"]
    page = world.callback(journey.entra_callback, world.authorize())
    to_psc = world.post(journey.pair, page, action="verify")
    world.psc.identity = OTHER
    refused = world.callback(journey.psc_callback, to_psc)
    assert refused.status == 403
    assert row(world)["verified_at"] == verified_at and row(world)["psc_sub"] == DOCTOR.sub
    [audited] = [e for e in events(world) if e["event"] == "pairing_reverification_refused"]
    assert (audited["paired_national_id"], audited["national_id"]) == ("********0001", "********0004")
    assert [e["reason"] for e in events(world) if e["event"] == "login_refused"] == ["reverification_refused"]


def test_a_pairing_removed_during_its_re_verification_is_not_renewed() -> None:
    world = due_world()
    page = world.callback(journey.entra_callback, world.authorize())
    to_psc = world.post(journey.pair, page, action="verify")
    world.broker.bindings.remove(TENANT, "oid-1")
    refused = world.callback(journey.psc_callback, to_psc)
    assert refused.status == 403 and world.tables["bindings"].find(TENANT, "oid-1") is None
    assert [e["reason"] for e in events(world) if e["event"] == "login_refused"] == ["pairing_failed"]


def test_a_pairing_falling_due_while_its_page_is_open_asks_for_the_re_verification() -> None:
    world = World()
    assert "code" in landing(world.first_sign_in())
    world.clock.now += YEAR - 60
    world.cookies.pop(SESSION_COOKIE)
    page = world.callback(journey.entra_callback, world.authorize())
    assert page.status == 200 and REVERIFY not in page.body.decode()  # « Connexion », not due yet
    world.clock.now += 60  # due now, to the second
    again = world.post(journey.confirm, page, action="confirm")
    assert again.status == 200 and REVERIFY in again.body.decode()
    assert "code" in landing(world.callback(journey.psc_callback, world.post(journey.pair, again, action="verify")))
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    binding = world.broker.bindings.find(TENANT, "oid-1")
    assert session is not None and binding is not None
    assert session.pairing_id == binding.pairing_id != ""  # the session is bound to the pairing renewed


def test_a_pairing_changed_while_its_page_was_open_and_falling_due_is_refused() -> None:
    world = World()
    assert "code" in landing(world.first_sign_in())
    world.clock.now += YEAR - 60
    world.cookies.pop(SESSION_COOKIE)
    page = world.callback(journey.entra_callback, world.authorize())
    world.clock.now += 60
    world.broker.bindings.remove(TENANT, "oid-1")
    refused = world.post(journey.confirm, page, action="confirm")
    assert refused.status == 403 and refused.header("Location") is None
    assert [e["reason"] for e in events(world) if e["event"] == "login_refused"] == ["pairing_failed"]
