"""More of the journey's rules on the fakes of test_journey: what a session may still do, what a
prompt=none code carries, the mire's choices, the second Entra authentication before a pairing, and
what a refusal records and logs."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from sanscouture import journey
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX
from tests.unit.oidc.fakes import ISSUER
from tests.unit.test_journey import OTHER
from tests.unit.test_journey import TENANT
from tests.unit.test_journey import World
from tests.unit.test_journey import landing

STALE = "Page déjà utilisée"


def signed_in() -> World:
    world = World()
    assert "code" in landing(world.first_sign_in())
    return world


def events(world: World, event: str) -> list[dict[str, Any]]:
    return [r.data for r in world.tables["audit"].rows.values() if r.data.get("event") == event]


def goes_to_entra(response: Any) -> bool:
    return response.status in (302, 303) and (response.header("Location") or "").startswith("https://entra.test/")


# -- a session's page ------------------------------------------------------------------------------


def test_a_session_whose_pairing_now_names_someone_else_goes_back_to_entra() -> None:
    world = signed_in()
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None
    world.tables["bindings"].save(TENANT, "oid-1", {**row.data, "identity": OTHER.to_dict(), "psc_sub": OTHER.sub},
                                  None)  # same paired_at: only the identity changed
    assert goes_to_entra(world.authorize())


def test_an_ended_session_goes_back_to_entra() -> None:
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.broker.bindings.revoke_session(TENANT, "oid-1", session.public_sid, int(world.clock()) + 3600)
    assert goes_to_entra(world.authorize())


def test_confirming_the_page_of_a_session_costs_one_conditional_write() -> None:
    world = signed_in()
    page = world.authorize()
    bindings = world.tables["bindings"]
    bindings.calls.clear()
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
    assert bindings.calls == ["merge_if_unchanged"]  # the row the page showed, recording the use


def test_confirming_after_the_row_changed_reads_it_again_and_signs_in_as_it_still_is() -> None:
    world = signed_in()
    page = world.authorize()
    world.broker.bindings.use_if_unchanged(TENANT, "oid-1", world.tables["bindings"].rows[(TENANT, "oid-1")].etag)
    bindings = world.tables["bindings"]
    bindings.calls.clear()
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
    assert bindings.calls == ["merge_if_unchanged", "find"]


def test_the_confirmation_page_can_be_cancelled_or_left_for_another_identity() -> None:
    world = signed_in()
    answer = landing(world.post(journey.confirm, world.authorize(), action="cancel"))
    assert (answer["error"], answer["iss"]) == ("access_denied", ISSUER)
    [cancelled] = [e for e in events(world, "login_refused") if e["reason"] == "cancelled"]
    assert cancelled["client_id"] == "sn"
    assert not any(name.startswith(JOURNEY_COOKIE_PREFIX) for name in world.cookies)  # the journey is over
    page = world.authorize()
    assert (world.post(journey.confirm, page, action="other").header("Location") or "").startswith("https://psc.test/")
    stale = world.post(journey.confirm, world.authorize(), action="approve")
    assert stale.status == 400 and STALE in stale.body.decode()


# -- prompt=none ---------------------------------------------------------------------------------------


def test_prompt_none_refusals_carry_the_issuer() -> None:
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.broker.bindings.revoke_session(TENANT, "oid-1", session.public_sid, int(world.clock()) + 3600)
    assert landing(world.authorize(prompt="none"))["iss"] == ISSUER
    world = signed_in()
    world.broker.bindings.remove(TENANT, "oid-1")
    assert landing(world.authorize(prompt="none"))["iss"] == ISSUER
    world = signed_in()
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None
    world.tables["bindings"].save(TENANT, "oid-1", {**row.data, "verified_at": 1, "paired_at": 1}, None)
    assert landing(world.authorize(prompt="none"))["iss"] == ISSUER


def test_a_prompt_none_code_carries_the_sessions_authentication_and_renews_its_cookie() -> None:
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.clock.now += 60
    response = world.authorize(prompt="none")
    answer = landing(response)
    assert answer["iss"] == ISSUER and re.fullmatch(r"[0-9a-f]{32}\.[A-Za-z0-9_-]{43}", answer["code"])
    grant = world.tables["codes"].find(answer["code"].split(".")[0], "grant")
    assert grant is not None
    assert (grant.data["auth_time"], grant.data["sid"]) == (session.auth_time, session.public_sid)
    assert (grant.data["tid"], grant.data["oid"]) == (TENANT, "oid-1")
    assert any(name == "Set-Cookie" and value.startswith(SESSION_COOKIE) for name, value in response.headers)


def test_an_access_token_is_no_id_token_hint() -> None:
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    access = world.keys.sign({"iss": ISSUER, "sub": session.sub, "aud": ISSUER, "iat": 1, "exp": 2}, typ="at+jwt")
    assert landing(world.authorize(prompt="none", id_token_hint=access))["error"] == "login_required"


# -- the mire --------------------------------------------------------------------------------------------


def test_choosing_entra_at_the_mire_continues_to_the_pairing_page() -> None:
    world = World()
    mire = world.authorize(prompt="select_account")
    to_entra = world.post(journey.choose, mire, choice="entra")
    assert goes_to_entra(to_entra)
    pairing = world.callback(journey.entra_callback, to_entra)
    assert pairing.status == 200 and "Appairer un compte" in pairing.body.decode()


def test_an_entra_authentication_older_than_the_mire_choice_is_asked_again_before_pairing() -> None:
    world = World()
    mire = world.authorize(prompt="select_account")
    started = world.clock.now
    world.clock.now += 300  # the person read the mire for five minutes
    to_entra = world.post(journey.choose, mire, choice="entra")
    world.entra.auth_time = started + 100  # after the journey began, before the broker sent them to Entra
    again = world.callback(journey.entra_callback, to_entra)
    assert goes_to_entra(again) and world.entra.begun[-1]["prompt"] == "login"


def test_the_mire_psc_choice_is_a_direct_one_off_sign_in() -> None:
    world = World()
    mire = world.authorize(prompt="select_account")
    assert "code" in landing(world.callback(journey.psc_callback, world.post(journey.choose, mire, choice="psc")))
    assert events(world, "login_succeeded")[-1]["mode"] == "direct"
    stale = World()
    page = stale.post(journey.choose, stale.authorize(prompt="select_account"), choice="nothing")
    assert page.status == 400 and STALE in page.body.decode()


def test_the_second_entra_authentication_must_follow_the_second_request() -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 600  # the Windows logon
    redirect = world.authorize()
    started = world.clock.now
    world.clock.now += 300
    again = world.callback(journey.entra_callback, redirect)  # asked afresh now
    assert goes_to_entra(again)
    world.entra.auth_time = started + 100  # not after the second request
    refused = world.callback(journey.entra_callback, again)
    assert refused.status == 403 and world.tables["bindings"].find(TENANT, "oid-1") is None


# -- refusals ------------------------------------------------------------------------------------------


def test_a_refusal_is_logged_with_its_reason_detail_and_reference(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 3600
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        page = world.callback(journey.entra_callback, world.authorize(prompt="login"))
    [record] = [r for r in caplog.records if r.getMessage() == "sign-in refused"]
    assert (record.reason, record.client_id) == ("auth_too_old", "sn")  # type: ignore[attr-defined]
    assert record.error_detail == "prompt=login but the upstream authentication is older"  # type: ignore[attr-defined]
    assert re.fullmatch(r"[0-9a-f]{8}", record.reference)  # type: ignore[attr-defined]
    assert record.reference in page.body.decode()  # type: ignore[attr-defined]
    [audited] = events(world, "login_refused")
    assert audited["reference"] == record.reference  # type: ignore[attr-defined]
    assert not any(name.startswith(JOURNEY_COOKIE_PREFIX) for name in world.cookies)


def test_a_hint_naming_someone_else_than_who_signs_in_is_refused_with_login_required() -> None:
    world = World()
    hint = world.keys.sign({"iss": ISSUER, "sub": OTHER.sub, "aud": "sn", "iat": 1, "exp": 2})
    pairing = world.callback(journey.entra_callback, world.authorize(id_token_hint=hint))
    confirm_page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    refused = world.post(journey.confirm, confirm_page, action="confirm")
    assert refused.status == 403
    back = re.search(r'href="(https://sn\.example\.fr/cb[^"]*)"', refused.body.decode())
    assert back is not None
    query = parse_qs(urlsplit(back.group(1).replace("&amp;", "&")).query)
    assert query["error"] == ["login_required"]
    assert [e["reason"] for e in events(world, "login_refused")] == ["hint_mismatch"]
