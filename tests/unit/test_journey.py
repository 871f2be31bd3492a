"""The journey's rules on in-memory fakes with a controlled clock (no network, no storage)."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from sanscouture import journey
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX
from sanscouture.keys import KeyRing
from sanscouture.models import Client
from sanscouture.models import EntraAccount
from sanscouture.models import PscAuthentication
from sanscouture.models import PscIdentity
from sanscouture.models import UpstreamStart
from sanscouture.web import Request
from sanscouture.web import Response
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeOutbox
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import shared_key_source

TENANT = "11111111-2222-3333-4444-555555555555"
REDIRECT = "https://sn.example.fr/cb"
DOCTOR = PscIdentity("f:x:810100000001", "810100000001", "Claire", "MARTIN", "CARD", {"sub": "f:x:810100000001"})
OTHER = PscIdentity("f:x:810100000004", "810100000004", "Nicolas", "MOREAU", "CARD", {"sub": "f:x:810100000004"})


class FakeEntra:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.auth_time: float | None = None
        self.begun: list[dict[str, Any]] = []

    def begin(self, **kwargs: Any) -> UpstreamStart:
        self.begun.append(kwargs)
        state = kwargs["state"]
        return UpstreamStart(url=f"https://entra.test/authorize?state={state}", flow={"state": state})

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> EntraAccount:
        auth_time = int(self.auth_time if self.auth_time is not None else self.clock())
        return EntraAccount(tid=TENANT, oid="oid-1", auth_time=auth_time, name="Dr Claire Martin", acrs=("c1",))


class FakePsc:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.identity = DOCTOR
        self.auth_time: int | None = None  # None: PSC authenticates afresh, now
        self.begun: list[dict[str, Any]] = []

    def begin(self, **kwargs: Any) -> UpstreamStart:
        self.begun.append(kwargs)
        return UpstreamStart(url=f"https://psc.test/auth?state={kwargs['state']}", flow={"state": kwargs["state"]})

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> PscAuthentication:
        auth_time = self.auth_time if self.auth_time is not None else int(self.clock())
        return PscAuthentication(self.identity, auth_time, "eidas1")

    def end_session_url(self) -> str | None:
        return "https://psc.test/logout"


class AllTables:
    def __init__(self, clock: FakeClock) -> None:
        self.stores: dict[str, FakeRowStore] = {}
        self.clock = clock

    def __getitem__(self, name: str) -> FakeRowStore:
        return self.stores.setdefault(name, FakeRowStore(name, self.clock))


class World:
    """A broker on fakes plus one browser's cookie jar."""

    def __init__(self, backchannel_logout_uri: str | None = None) -> None:
        self.clock = FakeClock()
        self.entra = FakeEntra(self.clock)
        self.psc = FakePsc(self.clock)
        self.tables = AllTables(self.clock)
        self.keys = KeyRing(shared_key_source(), clock=self.clock)
        client = Client(client_id="sn", redirect_uris=(REDIRECT,), client_secret="s", client_name="Service",
                        backchannel_logout_uri=backchannel_logout_uri)
        settings = make_settings(client, entra_allowed_tenants=frozenset({TENANT}),
                                 queues="UseDevelopmentStorage=true" if backchannel_logout_uri else None)
        self.outbox = FakeOutbox()
        self.broker = journey.Broker(settings, self.tables, self.entra, self.psc, keys=self.keys, clock=self.clock,
                                     outbox=self.outbox)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, query: dict[str, str] | None = None,
                form: dict[str, str] | None = None) -> Request:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return Request(method=method, url=ISSUER + path, headers={"cookie": cookie}, query=query or {},
                       form=form or {})

    def keep_cookies(self, response: Response) -> Response:
        for name, value in response.headers:
            if name == "Set-Cookie":
                key, _, rest = value.partition("=")
                if "Max-Age=0" in rest:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = rest.split(";")[0]
        return response

    def session_id(self) -> str:
        session = self.broker.sessions.find(self.cookies.get(SESSION_COOKIE))
        assert session is not None
        return session.sid

    def authorize(self, **extra: str) -> Response:
        query = {"client_id": "sn", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
                 "state": "st", "code_challenge": CHALLENGE, "code_challenge_method": "S256", **extra}
        return self.keep_cookies(journey.authorize(self.broker, self.request("GET", "/authorize", query)))

    def form_of(self, page: Response) -> tuple[str, str]:
        html = page.body.decode()
        action = html.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        csrf = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        return action.split("j=", 1)[1], csrf

    def post(self, handler: Any, page: Response, **form: str) -> Response:
        journey_id, csrf = self.form_of(page)
        request = self.request("POST", "/x", {"j": journey_id}, {"csrf_token": csrf, **form})
        return self.keep_cookies(handler(self.broker, request))

    def callback(self, handler: Any, redirect: Response) -> Response:
        state = parse_qs(urlsplit(redirect.header("Location") or "").query)["state"][0]
        return self.keep_cookies(handler(self.broker, self.request("GET", "/cb", {"state": state, "code": "c"})))

    def first_sign_in(self) -> Response:
        pairing = self.callback(journey.entra_callback, self.authorize())
        confirm_page = self.callback(journey.psc_callback, self.post(journey.pair, pairing, action="pair"))
        return self.post(journey.confirm, confirm_page, action="confirm")


def landing(response: Response) -> dict[str, str]:
    location = response.header("Location") or ""
    assert location.startswith(REDIRECT), (response.status, response.body[:300])
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_first_sign_in_pairs_and_issues_a_code_with_a_session() -> None:
    world = World()
    assert "code" in landing(world.first_sign_in())
    assert world.broker.sessions.find(world.cookies[SESSION_COOKIE]) is not None
    assert not any(world.cookies.get(name) for name in world.cookies if name.startswith(JOURNEY_COOKIE_PREFIX))
    # Pairing needs a fresh CPS authentication, asked for in both the ways Keycloak honours.
    assert (world.psc.begun[0]["prompt"], world.psc.begun[0]["max_age"]) == ("login", 0)


def test_a_session_is_never_renewed_past_four_hours_by_confirming_again() -> None:
    world = World()
    world.first_sign_in()
    first_sid = world.session_id()
    for _ in range(9):  # every 25 minutes for 3 h 45
        world.clock.now += 25 * 60
        page = world.authorize()
        assert page.status == 200  # the confirmation page, from the session
        assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
        assert world.session_id() == first_sid
    world.clock.now += 25 * 60  # 4 h 10 after the Entra authentication
    assert landing(world.authorize(prompt="none"))["error"] == "login_required"
    assert (world.authorize().header("Location") or "").startswith("https://entra.test/")


def test_prompt_none_with_a_hint_about_someone_else_is_login_required() -> None:
    world = World()
    world.first_sign_in()
    someone_else = world.keys.sign({"iss": ISSUER, "sub": OTHER.sub, "aud": "sn", "iat": 1, "exp": 2})
    mine = world.keys.sign({"iss": ISSUER, "sub": DOCTOR.sub, "aud": "sn", "iat": 1, "exp": 2})
    assert landing(world.authorize(prompt="none", id_token_hint=someone_else))["error"] == "login_required"
    assert landing(world.authorize(prompt="none", id_token_hint="not-a-token"))["error"] == "login_required"
    assert "code" in landing(world.authorize(prompt="none", id_token_hint=mine))


def test_prompt_login_wins_over_select_account_upstream() -> None:
    world = World()
    page = world.authorize(prompt="login select_account")
    assert page.status == 200  # the mire
    world.post(journey.choose, page, choice="entra")
    assert world.entra.begun[-1]["prompt"] == "login"


def test_prompt_login_refuses_an_entra_authentication_older_than_the_journey() -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 3600
    page = world.callback(journey.entra_callback, world.authorize(prompt="login"))
    assert page.status == 403
    back = html.unescape(re.search(r'href="(https://sn\.example\.fr/cb[^"]*)"', page.body.decode()).group(1))
    assert parse_qs(urlsplit(back).query)["error"] == ["access_denied"]


def test_confirm_refuses_when_the_pairing_changed_while_the_page_was_open() -> None:
    world = World()
    world.first_sign_in()
    world.cookies.pop(SESSION_COOKIE)
    page = world.callback(journey.entra_callback, world.authorize())
    bindings = world.tables["bindings"]
    row = bindings.find(TENANT, "oid-1")
    assert row is not None
    bindings.save(TENANT, "oid-1", {**row.data, "identity": OTHER.to_dict(), "psc_sub": OTHER.sub}, None)
    refused = world.post(journey.confirm, page, action="confirm")
    assert refused.status == 403 and not (refused.header("Location") or "")


def test_another_identity_asks_psc_for_a_fresh_login_and_keeps_the_pairing() -> None:
    world = World()
    world.first_sign_in()
    world.cookies.pop(SESSION_COOKIE)
    page = world.callback(journey.entra_callback, world.authorize())
    world.psc.identity = OTHER
    code = landing(world.callback(journey.psc_callback, world.post(journey.confirm, page, action="other")))
    assert "code" in code
    assert (world.psc.begun[-1]["prompt"], world.psc.begun[-1]["max_age"]) == ("login", 0)
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and row.data["psc_sub"] == DOCTOR.sub


def test_a_psc_authentication_older_than_the_request_shows_the_stale_session_page_and_pairs_nothing() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    world.psc.auth_time = int(world.clock()) - journey.PSC_CLOCK_SKEW - 1  # the wallet's earlier session
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    assert page.status == 403 and "Session Pro Santé Connect déjà ouverte" in page.body.decode()
    assert 'href="https://psc.test/logout" target="_blank"' in page.body.decode()
    assert world.tables["bindings"].find(TENANT, "oid-1") is None
    refused = [row.data for row in world.tables["audit"].rows.values() if row.data.get("event") == "login_refused"]
    assert [row["reason"] for row in refused] == ["psc_session_stale"]
    assert len(world.psc.begun) == 1  # no second try


def test_clock_skew_within_the_allowance_is_a_fresh_authentication() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    world.psc.auth_time = int(world.clock()) - journey.PSC_CLOCK_SKEW
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    assert page.status == 200 and "Connexion" in page.body.decode()


def test_a_double_submitted_confirmation_issues_one_code() -> None:
    world = World()
    pairing = world.callback(journey.entra_callback, world.authorize())
    page = world.callback(journey.psc_callback, world.post(journey.pair, pairing, action="pair"))
    jar = dict(world.cookies)  # two submissions in flight at once carry the same cookies
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
    world.cookies = jar
    again = world.post(journey.confirm, page, action="confirm")
    assert again.status == 409 and again.header("Location") is None  # the journey's one code is taken


def test_audit_and_logs_never_hold_the_full_national_identifier() -> None:
    world = World()
    world.first_sign_in()
    for row in world.tables["audit"].rows.values():
        assert DOCTOR.subject_name_id not in repr(row.data)
        assert hashlib.sha256(b"").hexdigest() not in repr(row.data)


def test_a_fresh_authentication_replaces_the_session_and_ends_the_old_one() -> None:
    world = World()
    world.first_sign_in()
    old_cookie, old_sid = world.cookies[SESSION_COOKIE], world.session_id()
    world.clock.now += 60
    page = world.callback(journey.entra_callback, world.authorize(prompt="login"))
    assert "code" in landing(world.post(journey.confirm, page, action="confirm"))
    assert world.session_id() != old_sid
    world.cookies[SESSION_COOKIE] = old_cookie  # a copy of the old cookie, kept somewhere
    assert landing(world.authorize(prompt="none"))["error_description"] == "the broker session has ended"


def test_an_unpaired_account_authenticated_before_the_journey_is_asked_to_authenticate_again() -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 600  # Windows-session SSO: the logon, 10 minutes ago
    again = world.callback(journey.entra_callback, world.authorize())
    assert (again.header("Location") or "").startswith("https://entra.test/")
    assert (world.entra.begun[-1]["prompt"], world.entra.begun[-1]["max_age"]) == ("login", 0)
    world.entra.auth_time = None  # the fresh authentication, now
    pairing = world.callback(journey.entra_callback, again)
    assert pairing.status == 200 and "Appairer un compte" in pairing.body.decode()


def test_an_entra_that_answers_with_its_old_session_again_is_refused_not_asked_forever() -> None:
    world = World()
    world.entra.auth_time = world.clock.now - 600
    again = world.callback(journey.entra_callback, world.authorize())
    refused = world.callback(journey.entra_callback, again)
    assert refused.status == 403 and len(world.entra.begun) == 2
    assert world.tables["bindings"].find(TENANT, "oid-1") is None
    reasons = [row.data.get("reason") for row in world.tables["audit"].rows.values()]
    assert reasons == ["auth_too_old"]


def test_a_paired_account_needs_no_fresh_authentication_to_confirm() -> None:
    world = World()
    world.first_sign_in()
    world.cookies.pop(SESSION_COOKIE)
    world.entra.auth_time = world.clock.now - 600
    page = world.callback(journey.entra_callback, world.authorize())
    assert page.status == 200 and len(world.entra.begun) == 2  # the confirmation, Entra asked once


def test_acr_is_eidas1_only_when_the_authentication_met_it() -> None:
    world = World()
    assert journey._acr(world.broker, None) == "eidas1"  # PSC: its acr eidas1 was checked
    account = EntraAccount(tid=TENANT, oid="oid-1", auth_time=0)
    assert journey._acr(world.broker, account) == "eidas1"  # Entra: an enforced c1 was checked
    unchecked = journey.Broker(dataclasses.replace(world.broker.settings, entra_required_acrs=()),
                               world.tables, world.entra, world.psc, keys=world.keys, clock=world.clock)
    assert journey._acr(unchecked, account) is None  # the sandbox without acrs: the level is not known


def test_a_session_records_its_back_channel_clients_and_announces_its_end_to_them() -> None:
    """Back-Channel Logout: the client is kept in the session's cookie and recorded in the pairing's row;
    the session ended by « autre identité » in this browser is announced once, and its entry leaves the row."""
    from sanscouture.oidc.backchannel import LogoutNotice

    world = World(backchannel_logout_uri="https://sn.example.fr/bcl")
    world.first_sign_in()
    session = world.broker.sessions.find(world.cookies[SESSION_COOKIE])
    assert session is not None and session.bcl_clients == ("sn",)
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and row.data[f"bcl_{session.public_sid}"]["clients"] == ["sn"]
    assert "code" in landing(world.authorize(prompt="none"))  # the same client again: not recorded twice
    assert world.tables["bindings"].calls.count("merge") == 1 and world.outbox.sent == []

    page = world.authorize()  # the Connexion page, from the session
    world.psc.identity = OTHER
    world.callback(journey.psc_callback, world.post(journey.confirm, page, action="other"))
    assert world.outbox.sent == [LogoutNotice("sn", DOCTOR.sub, session.public_sid).to_message()]
    row = world.tables["bindings"].find(TENANT, "oid-1")
    assert row is not None and f"bcl_{session.public_sid}" not in row.data


def test_a_client_without_a_back_channel_uri_is_neither_recorded_nor_told() -> None:
    world = World()
    world.first_sign_in()
    page = world.authorize()
    world.psc.identity = OTHER
    world.callback(journey.psc_callback, world.post(journey.confirm, page, action="other"))
    assert world.outbox.sent == [] and "merge" not in world.tables["bindings"].calls
