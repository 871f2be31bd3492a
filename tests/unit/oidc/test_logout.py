"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 2 and 3) on the journey's fakes: when the
broker ends the session at once, when it asks the person, and what it refuses."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from sanscouture.bindings import BindingStore
from sanscouture.cookies import SESSION_COOKIE
from sanscouture.journeys import JOURNEY_COOKIE_PREFIX
from sanscouture.journeys import Step
from sanscouture.limits import Limits
from sanscouture.models import Client
from sanscouture.oidc.logout import logout
from sanscouture.web import Response
from tests.unit.oidc.fakes import ISSUER
from tests.unit.test_journey import DOCTOR
from tests.unit.test_journey import REDIRECT
from tests.unit.test_journey import TENANT
from tests.unit.test_journey import World

LOGGED_OUT = "https://sn.example.fr/logged-out"
INVALID = "Demande de déconnexion invalide"


class LogoutWorld(World):
    """The journey's world with a client that registered a post-logout redirect URI, signed in once."""

    def __init__(self) -> None:
        super().__init__()
        client = Client(client_id="sn", redirect_uris=(REDIRECT,), client_secret="s", client_name="Agenda partagé",
                        post_logout_redirect_uris=(LOGGED_OUT,))
        other = Client(client_id="other", redirect_uris=("https://other.example.fr/cb",), client_secret="s",
                       client_name="Autre service", post_logout_redirect_uris=("https://other.example.fr/out",))
        settings = dataclasses.replace(self.broker.settings, clients=(client, other))
        self.broker = dataclasses.replace(self.broker, settings=settings)
        self.first_sign_in()

    def hint(self, **claims: Any) -> str:
        return self.keys.sign({"iss": ISSUER, "sub": DOCTOR.sub, "aud": "sn", "iat": int(self.clock()),
                               "exp": int(self.clock()) + 300, **claims})

    def decode(self, token: str) -> dict[str, Any]:
        return self.keys.decode(token, issuer=ISSUER, typ="JWT", verify_exp=False)

    def logout(self, method: str = "GET", query: dict[str, str] | None = None,
               form: dict[str, str] | None = None) -> Response:
        return self.keep_cookies(logout(self.broker, self.request(method, "/logout", query, form), self.decode))

    def session_ended(self) -> bool:
        session = self.broker.sessions.find(self.cookies.get(SESSION_COOKIE))
        if session is None:
            return True
        binding = BindingStore(self.tables["bindings"], self.clock).find(TENANT, "oid-1")
        assert binding is not None
        return binding.session_revoked(session.public_sid, self.clock())

    def logouts_audited(self) -> list[dict[str, Any]]:
        return [row.data for row in self.tables["audit"].rows.values() if row.data.get("event") == "logout"]


def test_a_valid_hint_ends_the_session_at_once_and_returns_with_state() -> None:
    world = LogoutWorld()
    session_cookie = world.cookies[SESSION_COOKIE]
    response = world.logout(query={"id_token_hint": world.hint(), "post_logout_redirect_uri": LOGGED_OUT,
                                   "state": "s 1"})
    assert response.status == 302
    assert response.header("Location") == LOGGED_OUT + "?state=s+1"
    assert SESSION_COOKIE not in world.cookies  # the cookie is cleared
    world.cookies[SESSION_COOKIE] = session_cookie  # a copy kept somewhere is refused too
    assert world.session_ended()
    [audited] = world.logouts_audited()
    assert audited["client_id"] == "sn"


def test_without_state_the_browser_returns_to_the_registered_uri_as_is() -> None:
    world = LogoutWorld()
    response = world.logout(query={"id_token_hint": world.hint(), "post_logout_redirect_uri": LOGGED_OUT})
    assert (response.status, response.header("Location")) == (302, LOGGED_OUT)


def test_a_valid_hint_without_a_return_uri_shows_the_logged_out_page() -> None:
    world = LogoutWorld()
    response = world.logout(query={"id_token_hint": world.hint()})
    assert response.status == 200 and "Agenda partagé" in response.body.decode()
    assert SESSION_COOKIE not in world.cookies
    assert world.logouts_audited()[0]["client_id"] == "sn"


def test_a_hint_with_a_single_audience_in_a_list_names_its_client() -> None:
    world = LogoutWorld()
    response = world.logout(query={"id_token_hint": world.hint(aud=["sn"]), "post_logout_redirect_uri": LOGGED_OUT})
    assert (response.status, response.header("Location")) == (302, LOGGED_OUT)


def test_a_hint_with_several_audiences_names_no_client() -> None:
    world = LogoutWorld()
    response = world.logout(query={"id_token_hint": world.hint(aud=["sn", "other"]),
                                   "post_logout_redirect_uri": LOGGED_OUT})
    assert response.status == 400


def test_an_invalid_hint_is_refused() -> None:
    world = LogoutWorld()
    for hint in ("garbage", world.hint()[:-4] + "AAAA"):
        response = world.logout(query={"id_token_hint": hint})
        assert response.status == 400 and INVALID in response.body.decode()
    assert not world.session_ended() and world.logouts_audited() == []


def test_a_client_id_that_is_not_the_hints_audience_is_refused() -> None:
    world = LogoutWorld()
    response = world.logout(query={"id_token_hint": world.hint(), "client_id": "other"})
    assert response.status == 400 and INVALID in response.body.decode() and not world.session_ended()
    same = world.logout(query={"id_token_hint": world.hint(), "client_id": "sn"})
    assert same.status == 200 and world.logouts_audited()


def test_a_return_uri_not_registered_for_the_client_is_refused() -> None:
    world = LogoutWorld()
    for query in ({"id_token_hint": world.hint(), "post_logout_redirect_uri": "https://evil.example/"},
                  {"id_token_hint": world.hint(), "post_logout_redirect_uri": "https://other.example.fr/out"},
                  {"post_logout_redirect_uri": LOGGED_OUT},  # no client at all: nothing to check it against
                  {"client_id": "nobody", "post_logout_redirect_uri": LOGGED_OUT}):
        response = world.logout(query=query)
        assert response.status == 400 and INVALID in response.body.decode()
    assert not world.session_ended()


def confirmation_form(response: Response) -> tuple[str, str]:
    body = response.body.decode()
    action = body.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    csrf = body.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return parse_qs(urlsplit(action).query)["j"][0], csrf


def test_without_a_hint_the_person_confirms_and_nobody_is_redirected() -> None:
    world = LogoutWorld()
    page = world.logout(query={"client_id": "sn"})
    assert page.status == 200 and "Agenda partagé" in page.body.decode() and not world.session_ended()
    journey_id, csrf = confirmation_form(page)
    assert any(name.startswith(JOURNEY_COOKIE_PREFIX) for name in world.cookies)
    done = world.logout("POST", {"j": journey_id}, {"csrf_token": csrf})
    assert done.status == 200 and done.header("Location") is None
    assert SESSION_COOKIE not in world.cookies
    assert not any(name.startswith(JOURNEY_COOKIE_PREFIX) for name in world.cookies)  # the journey is over
    [audited] = world.logouts_audited()
    assert "client_id" not in audited  # no relying party asked
    assert audited["national_id"] == "********0001"  # masked, never the full identifier


def test_the_journey_may_be_named_in_the_form_too() -> None:
    world = LogoutWorld()
    journey_id, csrf = confirmation_form(world.logout())
    assert world.logout("POST", form={"j": journey_id, "csrf_token": csrf}).status == 200
    assert SESSION_COOKIE not in world.cookies


def test_a_hint_about_someone_else_than_the_signed_in_person_asks_for_confirmation() -> None:
    world = LogoutWorld()
    page = world.logout(query={"id_token_hint": world.hint(sub="f:x:810100000004"),
                               "post_logout_redirect_uri": LOGGED_OUT})
    assert page.status == 200 and 'name="csrf_token"' in page.body.decode()
    assert not world.session_ended() and world.logouts_audited() == []


def test_a_confirmation_without_the_right_csrf_token_or_journey_is_refused() -> None:
    world = LogoutWorld()
    journey_id, csrf = confirmation_form(world.logout())
    for query, form in (({"j": journey_id}, {"csrf_token": "wrong"}), ({"j": journey_id}, {}),
                        ({"j": "unknown"}, {"csrf_token": csrf}), ({}, {"csrf_token": csrf})):
        response = world.logout("POST", query, form)
        assert response.status == 403 and "Formulaire expiré" in response.body.decode()
    assert not world.session_ended()


def test_a_confirmation_of_an_expired_or_other_journey_is_refused() -> None:
    world = LogoutWorld()
    journey_id, csrf = confirmation_form(world.logout())
    world.clock.now += 3600
    assert world.logout("POST", {"j": journey_id}, {"csrf_token": csrf}).status == 403
    other = world.broker.journeys.new(Step.PAIRING, None)
    world.cookies.update(dict(c.split(";")[0].split("=", 1)
                              for c in world.broker.journeys.started({}, other)))
    assert world.logout("POST", {"j": other.id}, {"csrf_token": other.csrf}).status == 403


def test_a_cross_site_post_without_cookies_is_answered_as_a_get() -> None:
    world = LogoutWorld()
    world.cookies.clear()
    request = world.request("POST", "/logout", form={"client_id": "sn"})
    request = dataclasses.replace(request, body=b"client_id=sn")
    response = logout(world.broker, request, world.decode)
    assert (response.status, response.header("Location")) == (303, f"{ISSUER}/logout?client_id=sn")


def test_too_many_confirmations_from_one_source_are_slowed_down() -> None:
    world = LogoutWorld()
    world.broker = dataclasses.replace(world.broker, limits=Limits.per_minute(1, 100, world.clock))
    assert world.logout().status == 200
    assert world.logout().status == 429


def test_a_hint_for_a_client_no_longer_registered_still_ends_the_session() -> None:
    world = LogoutWorld()
    response = world.logout(query={"id_token_hint": world.hint(aud="removed-client")})
    assert response.status == 200 and SESSION_COOKIE not in world.cookies
    [audited] = world.logouts_audited()
    assert "client_id" not in audited and audited["national_id"] == "********0001"


def test_a_confirmation_naming_its_journey_in_the_form_without_csrf_is_refused() -> None:
    world = LogoutWorld()
    journey_id, _ = confirmation_form(world.logout())
    response = world.logout("POST", form={"j": journey_id})
    assert response.status == 403 and not world.session_ended()


def test_a_refused_hint_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    world = LogoutWorld()
    with caplog.at_level(logging.INFO, logger="sanscouture.logout"):
        world.logout(query={"client_id": "sn"})
        assert [r for r in caplog.records if r.name == "sanscouture.logout"] == []  # no hint, nothing refused
        world.logout(query={"id_token_hint": "garbage-token"})
    [record] = [r for r in caplog.records if r.name == "sanscouture.logout"]
    assert record.getMessage() == "logout: id_token_hint refused"
    assert record.error_detail == "DecodeError"  # type: ignore[attr-defined]
    assert "garbage-token" not in record.getMessage()
