"""What the journey issues and records, on the fakes of test_journey: the code's grant, the audit
events and their fields, the forms' refusal pages, and the detail every refusal logs."""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest

from sanscouture import journey
from sanscouture.bindings import BindingStore
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.errors import StorageUnavailableError
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX
from sanscouture.journeys import JOURNEY_TTL
from sanscouture.limits import Limits
from sanscouture.models import Client
from sanscouture.models import EntraAccount
from sanscouture.models import PscAuthentication
from sanscouture.models import UpstreamStart
from sanscouture.oidc.authorize import MAX_BYTES
from sanscouture.pages import render as pages
from sanscouture.web import Request
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import FakeClock
from tests.unit.test_journey import DOCTOR
from tests.unit.test_journey import OTHER
from tests.unit.test_journey import REDIRECT
from tests.unit.test_journey import TENANT
from tests.unit.test_journey import FakeEntra
from tests.unit.test_journey import FakePsc
from tests.unit.test_journey import World
from tests.unit.test_journey import landing

EXPIRED_FORM = "Formulaire expiré"
STALE = "Page déjà utilisée"


def events(world: World, event: str) -> list[dict[str, Any]]:
    return [r.data for r in world.tables["audit"].rows.values() if r.data.get("event") == event]


def all_events(world: World) -> list[dict[str, Any]]:
    return [r.data for r in world.tables["audit"].rows.values()]


def grant(world: World, code: str) -> dict[str, Any]:
    row = world.tables["codes"].find(code.split(".", 1)[0], "grant")
    assert row is not None
    return dict(row.data)


def refusal(caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    [record] = [r for r in caplog.records if r.getMessage() == "sign-in refused"]
    return record.reason, record.error_detail  # type: ignore[attr-defined]


def heading(page: Any) -> str:
    return html.unescape(page.body.decode().split("<h1", 1)[1].split(">", 1)[1].split("</h1>", 1)[0].strip())


def signed_in() -> World:
    world = World()
    assert "code" in landing(world.first_sign_in())
    return world


# -- the code and its audit ----------------------------------------------------------------------------


def test_a_paired_sign_in_s_code_holds_the_request_the_account_and_the_session() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize(nonce="n-1"))
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    answer = landing(world.post(journey.confirm, page, action="confirm"))
    assert (answer["state"], answer["iss"]) == ("st", ISSUER)
    stored = grant(world, answer["code"])
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    assert {k: stored[k] for k in ("client_id", "redirect_uri", "code_challenge", "nonce", "acr", "sid", "tid",
                                   "oid", "auth_time")} == {
        "client_id": "sn", "redirect_uri": REDIRECT, "code_challenge": CHALLENGE, "nonce": "n-1", "acr": "eidas1",
        "sid": session.public_sid, "tid": TENANT, "oid": "oid-1", "auth_time": int(world.clock())}
    assert stored["identity"]["sub"] == DOCTOR.sub
    who = {"national_id": "********0001", "auth_mode": "CARD"}
    assert [{k: v for k, v in e.items() if k != "at"} for e in all_events(world)] == [
        {"event": "pairing_created", "tid": TENANT, "oid": "oid-1", **who},
        {"event": "pairing_confirmed", "tid": TENANT, "oid": "oid-1"},
        {"event": "login_succeeded", "client_id": "sn", "mode": "paired", **who},
    ]


def test_without_enforced_authentication_contexts_a_paired_code_carries_no_acr() -> None:
    world = World()
    world.broker = journey.Broker(dataclasses.replace(world.broker.settings, entra_required_acrs=()), world.tables,
                                  world.entra, world.psc, keys=world.keys, clock=world.clock, outbox=world.outbox)
    assert grant(world, landing(world.first_sign_in())["code"])["acr"] is None


def test_another_identity_s_code_is_one_off_and_ends_the_browser_s_session() -> None:
    world = signed_in()
    old = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert old is not None
    page = world.authorize()  # the confirmation page, from the session
    world.psc.identity = OTHER
    answer = landing(world.callback(journey.psc_callback, world.post(journey.confirm, page, action="other")))
    stored = grant(world, answer["code"])
    assert (stored["tid"], stored["oid"], stored["acr"], stored["identity"]["sub"]) == (None, None, "eidas1", OTHER.sub)
    assert len(stored["sid"]) == 22 and stored["sid"] != old.public_sid  # token_urlsafe(16), no session's
    assert SESSION_COOKIE not in world.cookies  # the previous person's session cookie is cleared
    assert len(events(world, "pairing_confirmed")) == 1  # the first sign-in's only
    assert {k: v for k, v in events(world, "login_succeeded")[-1].items() if k != "at"} == {
        "event": "login_succeeded", "client_id": "sn", "mode": "other", "national_id": "********0004",
        "auth_mode": "CARD"}


def test_a_pairing_made_meanwhile_is_kept_shown_and_signed_in_as() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    to_psc = world.post(journey.pair, pairing, action="pair")
    account = EntraAccount(tid=TENANT, oid="oid-1", auth_time=int(world.clock()))
    world.broker.bindings.create(account, OTHER)  # another browser paired the account first
    page = world.callback(journey.psc_callback, to_psc)
    body = page.body.decode()
    assert page.status == 200 and journey.ALREADY_PAIRED_NOTICE.replace("'", "&#39;") in body
    assert "Nicolas MOREAU" in body and "0004" in body
    assert {k: v for k, v in events(world, "pairing_existing")[0].items() if k != "at"} == {
        "event": "pairing_existing", "tid": TENANT, "oid": "oid-1", "national_id": "********0004",
        "auth_mode": "CARD"}
    assert not events(world, "pairing_created")
    answer = landing(world.post(journey.confirm, page, action="confirm"))
    assert grant(world, answer["code"])["identity"]["sub"] == OTHER.sub


def test_a_new_pairing_s_page_has_no_already_paired_notice_and_its_row_keeps_the_audit_entry() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    assert page.status == 200 and "déjà appairé" not in page.body.decode()
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and "pairing_created" in repr(row.data)


def test_a_pairing_removed_while_being_created_is_refused(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    to_psc = world.post(journey.pair, pairing, action="pair")

    def removed(*args: Any, **kwargs: Any) -> Any:
        raise LookupError("removed")

    monkeypatch.setattr(BindingStore, "create", removed)
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        page = world.callback(journey.psc_callback, to_psc)
    assert (page.status, heading(page)) == (403, "Appairage impossible")
    assert refusal(caplog) == ("pairing_failed", "pairing removed while being created")


# -- the forms -----------------------------------------------------------------------------------------


def test_a_form_without_its_journey_or_with_a_wrong_token_is_an_expired_form() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    journey_id, csrf = world.form_of(pairing)
    wrong = world.request("POST", "/pair", {"j": journey_id}, {"csrf_token": csrf + "x", "action": "pair"})
    page = journey.pair(world.broker, wrong)
    assert (page.status, heading(page)) == (403, EXPIRED_FORM)
    for name in [n for n in world.cookies if n.startswith(JOURNEY_COOKIE_PREFIX)]:
        world.cookies.pop(name)
    page = world.post(journey.pair, pairing, action="pair")
    assert (page.status, heading(page)) == (403, EXPIRED_FORM)


def test_an_expired_journey_s_form_says_so() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    world.clock.now += JOURNEY_TTL
    page = world.post(journey.pair, pairing, action="pair")
    assert (page.status, heading(page)) == (400, "Délai dépassé")


def test_a_form_of_another_step_or_an_unknown_action_is_a_used_page() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    page = world.post(journey.confirm, pairing, action="confirm")  # the pairing page is not the confirmation
    assert (page.status, heading(page)) == (409, STALE)
    page = world.post(journey.pair, pairing, action="verify")  # not the re-verification page either
    assert (page.status, heading(page)) == (400, STALE)


def test_a_double_submitted_confirmation_shows_the_used_page() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    jar = dict(world.cookies)
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
    world.cookies = jar
    again = world.post(journey.confirm, page, action="confirm")
    assert (again.status, heading(again)) == (409, STALE)


# -- what refusals log ---------------------------------------------------------------------------------


def test_a_hint_mismatch_logs_its_detail(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    hint = world.keys.sign({"iss": ISSUER, "sub": OTHER.sub, "aud": "sn", "iat": 1, "exp": 2})
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        pairing = world.callback(journey.entra_callback, world.authorize(id_token_hint=hint))
        page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
        world.post(journey.confirm, page, action="confirm")
    assert refusal(caplog) == ("hint_mismatch", "id_token_hint names another subject")


def test_a_pairing_changed_while_the_confirmation_was_open_logs_its_detail(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    world.broker.bindings.remove(TENANT, "oid-1")
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        refused = world.post(journey.confirm, page, action="confirm")
    assert (refused.status, heading(refused)) == (403, "Appairage impossible")
    assert refusal(caplog) == ("pairing_failed", "pairing changed during the journey")
    assert [e["reason"] for e in events(world, "login_refused")] == ["pairing_failed"]


def test_a_psc_authentication_older_than_the_psc_request_is_stale_even_if_newer_than_the_journey(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    world.clock.now += 300  # the pairing page stayed open five minutes: PSC is asked now
    to_psc = world.post(journey.pair, pairing, action="pair")
    world.psc.auth_time = int(world.clock()) - journey.PSC_CLOCK_SKEW - 1
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        page = world.callback(journey.psc_callback, to_psc)
    assert (page.status, heading(page)) == (403, "Session Pro Santé Connect déjà ouverte")
    assert f"noreferrer\">{pages.CLOSE_PSC_SESSION}</a>" in html.unescape(page.body.decode())
    assert refusal(caplog) == ("psc_session_stale", f"PSC returned an authentication {journey.PSC_CLOCK_SKEW + 1}s "
                                                    "older than asked")


def test_the_mire_s_psc_sign_in_follows_the_request_s_max_age(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    mire = world.authorize(prompt="select_account", max_age="60")
    to_psc = world.post(journey.choose, mire, choice="psc")
    world.psc.auth_time = int(world.clock()) - 100
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        page = world.callback(journey.psc_callback, to_psc)
    assert page.status == 403
    assert refusal(caplog) == ("auth_too_old", "upstream authentication older than the RP's max_age")


# -- /authorize's own refusals -------------------------------------------------------------------------


def test_an_unknown_client_or_redirect_uri_is_a_400_page_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    with caplog.at_level(logging.INFO, logger="sanscouture.journey"):
        unknown = world.authorize(client_id="nobody")
        foreign = world.authorize(redirect_uri="https://evil.example/cb")
    assert (unknown.status, heading(unknown)) == (400, "Service inconnu")
    assert (foreign.status, heading(foreign)) == (400, "Adresse de retour non autorisée")
    logged = [(r.getMessage(), r.error) for r in caplog.records if r.name == "sanscouture.journey"]  # type: ignore[attr-defined]
    assert logged == [("authorization request refused", "invalid_client"),
                      ("authorization request refused", "invalid_request")]
    assert all(r.error_detail for r in caplog.records if r.name == "sanscouture.journey")  # type: ignore[attr-defined]


def test_a_refused_request_to_a_known_redirect_uri_is_logged_and_redirected(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    with caplog.at_level(logging.INFO, logger="sanscouture.journey"):
        answer = landing(world.authorize(scope="profile"))
    assert (answer["error"], answer["state"], answer["iss"]) == ("invalid_scope", "st", ISSUER)
    [record] = [r for r in caplog.records if r.name == "sanscouture.journey"]
    assert (record.getMessage(), record.error, record.client_id) == (  # type: ignore[attr-defined]
        "authorization request rejected", "invalid_scope", "sn")


def test_a_state_is_echoed_up_to_its_limit_and_left_out_beyond(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    longest = "s" * MAX_BYTES["state"]
    assert landing(world.authorize(scope="profile", state=longest))["state"] == longest
    assert "state" not in landing(world.authorize(scope="profile", state=longest + "s"))


def test_an_unknown_request_uri_is_logged_and_shows_its_page(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    with caplog.at_level(logging.INFO, logger="sanscouture.journey"):
        page = world.authorize(request_uri="urn:ietf:params:oauth:request_uri:nothing")
    assert (page.status, heading(page)) == (400, "Demande de connexion expirée")
    [record] = [r for r in caplog.records if r.name == "sanscouture.journey"]
    assert (record.getMessage(), record.error) == (  # type: ignore[attr-defined]
        "pushed authorization request refused", "invalid_request_uri")
    assert record.error_detail  # type: ignore[attr-defined]


def test_a_cross_site_post_is_answered_with_the_same_parameters_as_a_get() -> None:
    world = World()
    form = {"client_id": "sn", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid", "state": "st",
            "code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    body = urlencode(form)
    post = Request(method="POST", url=ISSUER + "/authorize", form=form, body=body.encode())
    answer = journey.authorize(world.broker, post)
    assert (answer.status, answer.header("Location")) == (303, f"{ISSUER}/authorize?{body}")


# -- the upstream returns and the PSC leg ----------------------------------------------------------------


def test_psc_is_asked_to_return_to_the_broker_s_pairing_callback() -> None:
    world = World()
    world.post(journey.pair, world.callback(journey.entra_callback, world.authorize()), action="pair")
    assert world.psc.begun[-1]["redirect_uri"] == ISSUER + "/pair/callback"


def test_the_mire_s_psc_sign_in_passes_on_the_request_s_prompt_and_max_age() -> None:
    world = World()
    world.post(journey.choose, world.authorize(prompt="select_account"), choice="psc")
    assert (world.psc.begun[-1]["prompt"], world.psc.begun[-1]["max_age"]) == (None, None)
    world.post(journey.choose, world.authorize(prompt="select_account login", max_age="60"), choice="psc")
    assert (world.psc.begun[-1]["prompt"], world.psc.begun[-1]["max_age"]) == ("login", 60)


def test_the_mire_s_psc_sign_in_issues_a_one_off_code_at_psc_s_auth_time() -> None:
    world = World()
    to_psc = world.post(journey.choose, world.authorize(prompt="select_account"), choice="psc")
    world.psc.auth_time = int(world.clock()) - 5
    answer = landing(world.callback(journey.psc_callback, to_psc))
    stored = grant(world, answer["code"])
    assert (stored["auth_time"], stored["tid"]) == (int(world.clock()) - 5, None)
    assert events(world, "login_succeeded")[-1]["mode"] == "direct"


def test_a_psc_return_without_its_journey_or_after_it_expired_says_the_delay_passed() -> None:
    world = World()
    to_psc = world.post(journey.pair, world.callback(journey.entra_callback, world.authorize()), action="pair")
    world.clock.now += JOURNEY_TTL
    page = world.callback(journey.psc_callback, to_psc)
    assert (page.status, heading(page)) == (400, "Délai dépassé")
    page = journey.psc_callback(world.broker, world.request("GET", "/pair/callback", {"state": "nope", "code": "c"}))
    assert (page.status, heading(page)) == (400, "Délai dépassé")


def test_an_entra_return_without_its_journey_says_the_delay_passed() -> None:
    world = World()
    page = journey.entra_callback(world.broker, world.request("GET", "/callback", {"state": "nope", "code": "c"}))
    assert (page.status, heading(page)) == (400, "Délai dépassé")


def test_an_entra_form_post_return_is_read_from_the_form() -> None:
    world = World()
    redirect = world.authorize()
    state = parse_qs(urlsplit(redirect.header("Location") or "").query)["state"][0]
    post = world.request("POST", "/callback", {}, {"state": state, "code": "c"})
    page = world.keep_cookies(journey.entra_callback(world.broker, post))
    assert page.status == 200 and "Appairer un compte" in page.body.decode()


def test_a_refusal_after_entra_records_the_account_and_hands_the_service_a_generic_description() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    world.broker.bindings.remove(TENANT, "oid-1")
    refused = world.post(journey.confirm, page, action="confirm")
    [audited] = events(world, "login_refused")
    assert (audited["tid"], audited["oid"], audited["reason"]) == (TENANT, "oid-1", "pairing_failed")
    body = html.unescape(refused.body.decode())
    assert "error_description=the+authentication+was+refused" in body or \
        "error_description=the%20authentication%20was%20refused" in body
    assert "psc.test/logout" not in body


def test_a_stale_psc_session_without_an_end_session_endpoint_shows_no_closing_link() -> None:
    world = World()
    world.psc.end_session_url = lambda: None  # type: ignore[method-assign]
    pairing = world.callback(journey.entra_callback, world.authorize())
    world.psc.auth_time = int(world.clock()) - journey.PSC_CLOCK_SKEW - 1
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    assert page.status == 403 and "Fermer la session Pro Santé Connect</a>" not in page.body.decode()


# -- what the upstream adapters are given, and the pages built from their answers ------------------------

USERNAME = "claire.martin@chu.example.fr"


class RecordingEntra(FakeEntra):
    """FakeEntra that records what it is asked to finish and names the account's user."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.finished: list[tuple[Any, Any]] = []

    def begin(self, **kwargs: Any) -> UpstreamStart:
        start = super().begin(**kwargs)
        return dataclasses.replace(start, flow={**start.flow, "attempt": len(self.begun)})

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> EntraAccount:
        self.finished.append((flow, response))
        return dataclasses.replace(super().finish(flow, response), preferred_username=USERNAME)


class RecordingPsc(FakePsc):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.finished: list[tuple[Any, Any]] = []

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> PscAuthentication:
        self.finished.append((dict(flow), dict(response)))
        return super().finish(flow, response)


def recording_world() -> tuple[World, RecordingEntra, RecordingPsc]:
    world = World()
    entra, psc = RecordingEntra(world.clock), RecordingPsc(world.clock)
    world.entra, world.psc = entra, psc
    world.broker = journey.Broker(world.broker.settings, world.tables, entra, psc, keys=world.keys,
                                  clock=world.clock, outbox=world.outbox)
    return world, entra, psc


def test_the_upstreams_finish_the_journey_s_own_flow_with_the_callback_s_parameters() -> None:
    world, entra, psc = recording_world()
    pairing = world.callback(journey.entra_callback, world.authorize())
    [(flow, response)] = entra.finished
    assert flow == {"state": response["state"], "attempt": 1} and response["code"] == "c"
    to_psc = world.post(journey.pair, pairing, action="pair")
    world.callback(journey.psc_callback, to_psc)
    [(flow, response)] = psc.finished
    assert flow == {"state": response["state"], "asked_at": int(world.clock())} and response["code"] == "c"


DOCTOR_WITH_ROLE = dataclasses.replace(DOCTOR, claims={**DOCTOR.claims, "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"]})


def test_the_pairing_and_confirmation_pages_show_the_service_the_account_and_the_identity() -> None:
    world, _, psc = recording_world()
    psc.identity = DOCTOR_WITH_ROLE
    pairing = world.callback(journey.entra_callback, world.authorize())
    body = pairing.body.decode()
    assert '<strong class="name">Service</strong>' in body and "Dr Claire Martin" in body and USERNAME in body
    body = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair")).body.decode()
    assert '<strong class="name">Service</strong>' in body and '<p class="card-title name">Claire MARTIN</p>' in body
    assert '<span class="nowrap">…0001</span>' in body and "<dd>carte CPS</dd>" in body
    assert '<p class="card-subtitle">Médecin</p>' in body
    assert f'<dd class="name">{USERNAME}</dd>' in body


def test_the_re_verification_page_shows_the_service_the_identity_and_when_it_was_proven() -> None:
    world, _, psc = recording_world()
    psc.identity = DOCTOR_WITH_ROLE
    assert "code" in landing(world.first_sign_in())
    proven = int(world.clock())
    world.clock.now += 365 * 86400
    world.cookies.pop(SESSION_COOKIE)
    body = world.callback(journey.entra_callback, world.authorize()).body.decode()
    assert "Vérification périodique" in body and '<strong class="name">Service</strong>' in body
    assert f"vérifié pour la dernière fois le {pages.french_date(proven)}." in body
    assert "tous les 365&nbsp;jours" in body and '<p class="card-subtitle">Médecin</p>' in body
    assert '<p class="card-title name">Claire MARTIN</p>' in body and '<span class="nowrap">…0001</span>' in body
    assert f'<dd class="name">{USERNAME}</dd>' in body


# -- the periodic re-verification's refusals -----------------------------------------------------------


def due_page(world: World) -> Any:
    assert "code" in landing(world.first_sign_in())
    world.clock.now += 365 * 86400
    world.cookies.pop(SESSION_COOKIE)
    return world.callback(journey.entra_callback, world.authorize())


def test_a_re_verification_by_another_identity_is_audited_with_both_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    page = due_page(world)
    world.psc.identity = OTHER
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        refused = world.callback(journey.psc_callback, world.post(journey.pair, page, action="verify"))
    assert (refused.status, heading(refused)) == (403, "Identité différente de celle de l'appairage")
    assert refusal(caplog) == ("reverification_refused", "PSC proved another identity than the pairing's")
    assert {k: v for k, v in events(world, "pairing_reverification_refused")[0].items() if k != "at"} == {
        "event": "pairing_reverification_refused", "tid": TENANT, "oid": "oid-1", "national_id": "********0004",
        "auth_mode": "CARD", "paired_national_id": "********0001"}


def test_a_pairing_replaced_during_its_re_verification_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    page = due_page(world)
    to_psc = world.post(journey.pair, page, action="verify")
    world.broker.bindings.remove(TENANT, "oid-1")
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        refused = world.callback(journey.psc_callback, to_psc)
    assert (refused.status, heading(refused)) == (403, "Appairage impossible")
    assert refusal(caplog) == ("pairing_failed", "pairing removed or replaced during its re-verification")


def test_a_pairing_changed_when_it_fell_due_on_an_open_page_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    assert "code" in landing(world.first_sign_in())
    world.cookies.pop(SESSION_COOKIE)
    world.clock.now += 365 * 86400 - 60  # due in a minute
    page = world.callback(journey.entra_callback, world.authorize())
    assert "Connexion" in page.body.decode()
    world.clock.now += 120
    world.broker.bindings.remove(TENANT, "oid-1")
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        refused = world.post(journey.confirm, page, action="confirm")
    assert (refused.status, heading(refused)) == (403, "Appairage impossible")
    assert refusal(caplog) == ("pairing_failed", "pairing changed during the journey")


def test_a_client_removed_when_the_pairing_fell_due_on_an_open_page_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    assert "code" in landing(world.first_sign_in())
    world.cookies.pop(SESSION_COOKIE)
    world.clock.now += 365 * 86400 - 60
    page = world.callback(journey.entra_callback, world.authorize())
    world.clock.now += 120
    world.broker = journey.Broker(dataclasses.replace(world.broker.settings, clients=()), world.tables, world.entra,
                                  world.psc, keys=world.keys, clock=world.clock, outbox=world.outbox)
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        refused = world.post(journey.confirm, page, action="confirm")
    assert (refused.status, heading(refused)) == (403, "Service inconnu")
    assert refusal(caplog) == ("unknown_client", "client removed during the journey")
    assert [e["reason"] for e in events(world, "login_refused")] == ["unknown_client"]


def test_a_second_entra_authentication_is_finished_with_its_own_flow() -> None:
    world, entra, _ = recording_world()
    entra.auth_time = world.clock.now - 600  # the Windows logon's: asked again before a pairing
    again = world.callback(journey.entra_callback, world.authorize())
    entra.auth_time = None
    world.callback(journey.entra_callback, again)
    assert [flow["attempt"] for flow, _ in entra.finished] == [1, 2]


def test_an_entra_authentication_at_the_edge_of_the_clock_skew_is_fresh_enough_to_pair() -> None:
    world = World()
    world.entra.auth_time = world.clock.now - journey.UPSTREAM_CLOCK_SKEW
    page = world.callback(journey.entra_callback, world.authorize())
    assert page.status == 200 and "Appairer un compte" in page.body.decode()


def test_a_session_exactly_as_old_as_the_re_authentication_limit_is_still_used() -> None:
    world = World()
    world.broker = journey.Broker(dataclasses.replace(world.broker.settings, entra_max_auth_age=1200), world.tables,
                                  world.entra, world.psc, keys=world.keys, clock=world.clock, outbox=world.outbox)
    assert "code" in landing(world.first_sign_in())
    world.clock.now += 1200  # within the session's idle timeout
    assert "code" in landing(world.authorize(prompt="none"))
    world.clock.now += 1
    assert landing(world.authorize(prompt="none"))["error_description"] == "no broker session"


def test_a_hint_that_names_nobody_puts_no_constraint_on_who_signs_in() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize(id_token_hint="not-a-token"))
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))


def test_the_psc_leg_is_a_303_after_a_form_and_the_mire_names_the_service() -> None:
    world = World()
    mire = world.authorize(prompt="select_account")
    assert '<strong class="name">Service</strong>' in mire.body.decode()
    to_psc = world.post(journey.choose, mire, choice="psc")
    assert to_psc.status == 303


def test_a_storage_outage_after_validation_goes_back_to_the_service_and_is_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = signed_in()

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailableError(detail="bindings: 503")

    monkeypatch.setattr(world.tables["bindings"], "find", unreachable)
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        answer = landing(world.authorize())
    assert (answer["error"], answer["error_description"], answer["state"], answer["iss"]) == (
        "temporarily_unavailable", "storage is temporarily unavailable, try again", "st", ISSUER)
    [record] = [r for r in caplog.records if r.name == "sanscouture.journey"]
    assert (record.getMessage(), record.error, record.error_detail) == (  # type: ignore[attr-defined]
        "authorize: request not completed", "temporarily_unavailable", "bindings: 503")


def test_a_session_whose_pairing_fell_due_shows_the_re_verification_page() -> None:
    world = signed_in()
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None
    world.tables["bindings"].save(TENANT, "oid-1", {**row.data, "verified_at": int(world.clock()) - 400 * 86400,
                                                   "paired_at": int(world.clock()) - 400 * 86400}, None)
    page = world.authorize()
    assert page.status == 200 and "Vérification périodique" in page.body.decode()
    assert "tous les 365&nbsp;jours" in page.body.decode()


def test_a_prompt_none_code_holds_the_request_and_the_session_s_sign_in() -> None:
    world = signed_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None
    world.clock.now += 60
    answer = landing(world.authorize(prompt="none", nonce="n-2"))
    assert (answer["state"], answer["iss"]) == ("st", ISSUER)
    stored = grant(world, answer["code"])
    assert {k: stored[k] for k in ("client_id", "redirect_uri", "code_challenge", "nonce", "acr", "sid", "tid",
                                   "oid", "auth_time")} == {
        "client_id": "sn", "redirect_uri": REDIRECT, "code_challenge": CHALLENGE, "nonce": "n-2", "acr": "eidas1",
        "sid": session.public_sid, "tid": TENANT, "oid": "oid-1", "auth_time": session.auth_time}
    assert stored["identity"]["sub"] == DOCTOR.sub
    assert {k: v for k, v in events(world, "login_succeeded")[-1].items() if k != "at"} == {
        "event": "login_succeeded", "client_id": "sn", "mode": "session", "national_id": "********0001",
        "auth_mode": "CARD"}
    touched = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert touched is not None and touched.sid == session.sid and touched.last_seen == int(world.clock())


def test_an_entra_that_answers_with_its_old_session_again_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 600
    again = world.callback(journey.entra_callback, world.authorize())
    with caplog.at_level(logging.WARNING, logger="sanscouture.journey"):
        refused = world.callback(journey.entra_callback, again)
    assert (refused.status, heading(refused)) == (403, "Authentification à renouveler")
    assert refusal(caplog) == ("auth_too_old", "entra: no fresh authentication for a pairing, even with prompt=login")


def test_a_session_s_back_channel_entry_and_its_ending_are_kept_until_it_would_have_expired() -> None:
    world = World(backchannel_logout_uri="https://sn.example.fr/bcl")
    world.first_sign_in()
    first = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert first is not None
    expires = world.broker.sessions.expires_at(first)
    assert expires == int(world.clock()) + 4 * 3600
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and row.data[f"bcl_{first.public_sid}"] == {"until": expires, "clients": ["sn"]}
    world.clock.now += 60
    page = world.callback(journey.entra_callback, world.authorize(prompt="login"))
    world.post(journey.confirm, page, action="confirm")  # a newer sign-in ends the first session
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and row.data["revoked_sessions"] == {first.public_sid: expires}


def test_a_hint_of_exactly_the_length_limit_is_read() -> None:
    world = World()
    limit = MAX_BYTES["id_token_hint"]
    hint = ""
    for pad in range(limit * 3 // 4 - 600, limit * 3 // 4):
        for extra in ("", "y"):
            candidate = world.keys.sign({"iss": ISSUER, "sub": OTHER.sub, "aud": "sn", "iat": 1, "exp": 2,
                                         "pad": "x" * pad, "e": extra})
            if len(candidate) == limit:
                hint = candidate
                break
        if hint:
            break
    assert len(hint.encode()) == limit
    pairing = world.callback(journey.entra_callback, world.authorize(prompt="login", id_token_hint=hint))
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    refused = world.post(journey.confirm, page, action="confirm")  # the hint names another person
    assert (refused.status, heading(refused)) == (403, "Autre personne que celle attendue")


def test_the_journey_rate_limit_counts_each_source_apart() -> None:
    world = World()
    world.broker = dataclasses.replace(world.broker, limits=Limits.per_minute(1, 10))
    query = {"client_id": "sn", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid", "state": "st",
             "code_challenge": CHALLENGE, "code_challenge_method": "S256"}

    def from_address(address: str) -> int:
        request = Request(method="GET", url=ISSUER + "/authorize", headers={"x-forwarded-for": address}, query=query)
        return journey.authorize(world.broker, request).status

    assert [from_address("192.0.2.1"), from_address("192.0.2.1"), from_address("192.0.2.2")] == [302, 429, 302]


def test_the_account_page_s_entra_return_is_finished_with_the_callback_s_parameters() -> None:
    from sanscouture import account

    world, entra, _ = recording_world()
    start = world.keep_cookies(account.account_page(world.broker, world.request("GET", "/compte")))
    back = world.callback(journey.entra_callback, start)
    assert back.status == 303
    [(_, response)] = entra.finished
    assert response["code"] == "c" and response["state"]


def test_a_prompt_none_sign_in_to_another_back_channel_client_is_recorded_in_the_session() -> None:
    world = World(backchannel_logout_uri="https://sn.example.fr/bcl")
    world.first_sign_in()
    other = Client(client_id="app2", redirect_uris=("https://app2.example.fr/cb",), client_secret="s",
                   client_name="App 2", backchannel_logout_uri="https://app2.example.fr/bcl")
    settings = world.broker.settings
    world.broker = dataclasses.replace(world.broker, settings=dataclasses.replace(
        settings, clients=(*settings.clients, other)))
    answer = world.keep_cookies(world.authorize(prompt="none", client_id="app2",
                                                redirect_uri="https://app2.example.fr/cb"))
    assert (answer.header("Location") or "").startswith("https://app2.example.fr/cb?code=")
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None and session.bcl_clients == ("sn", "app2")
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and row.data[f"bcl_{session.public_sid}"]["clients"] == ["sn", "app2"]
