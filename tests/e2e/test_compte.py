"""« Mes appairages » over HTTPS (issue 10 point 5): a fresh Entra authentication opens the page, which
shows the pairing with the national identifier masked; removal needs the confirmation and its CSRF
token, then the account's sessions and refresh tokens are dead and the next sign-in pairs again."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
import requests

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sandbox.switches import switched
from sanscouture.adapters.tables import Tables
from sanscouture.cookies import SESSION_COOKIE
from tests.e2e.pairings import binding_row
from tests.e2e.pairings import persona_oid
from tests.e2e.pairings import unpair
from tests.e2e.test_outages import storage_down  # noqa: F401 - the fixture, used by name

ENTRA, PSC = "cpx-urgences", "infirmier-ecps"
NATIONAL_ID = "810100000002"  # infirmier-ecps, sandbox/psc_sim/personas.py
MASKED = "********0002"


def party(sandbox: Sandbox, client_id: str = "rp-basic") -> RelyingParty:
    return RelyingParty(sandbox, next(c for c in sandbox.clients if c.client_id == client_id))


def browser(sandbox: Sandbox) -> Browser:
    return Browser(sandbox, entra_persona=ENTRA, psc_persona=PSC)


def paired(sandbox: Sandbox, client_id: str = "rp-basic") -> tuple[Browser, RelyingParty, Landing, Pkce]:
    """A browser that just paired the account and signed in to ``client_id`` (a broker session)."""
    unpair(sandbox, ENTRA)
    signed, rp, pkce = browser(sandbox), party(sandbox, client_id), Pkce()
    landing = sign_in(signed, rp, pkce)
    assert binding_row(sandbox, persona_oid(sandbox, ENTRA)) is not None
    return signed, rp, landing, pkce


def open_compte(user: Browser) -> Page:
    page = user.go(f"{user.sandbox.broker_url}/compte")
    assert isinstance(page, Page) and page.status == 200, getattr(page, "html", page)
    assert page.h1 == "Mes appairages"
    return page


def confirmation(user: Browser, page: Page) -> Page:
    shown = user.go(f"{user.sandbox.broker_url}{page.link('Supprimer')}")
    assert isinstance(shown, Page) and shown.status == 200 and shown.h1 == "Supprimer l'appairage\xa0?", shown.h1
    return shown


def entra_requests(user: Browser) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            for url in user.visited if "/oauth2/v2.0/authorize" in url]


def removal_audit(sandbox: Sandbox, before: frozenset[tuple[str, str]] = frozenset()) -> list[dict[str, Any]]:
    """The account's pairing_removed rows, except those in ``before`` (keys of rows already written:
    other tests remove the account too, some with the broker's clock moved ahead, so a time filter is not
    enough)."""
    rows = Tables.from_connection_string(sandbox.azurite_connection or "")["audit"].all_rows()
    oid = persona_oid(sandbox, ENTRA)
    return [dict(row.data) | {"_key": (row.partition, row.row)} for row in rows
            if row.data.get("event") == "pairing_removed" and row.data.get("oid") == oid
            and (row.partition, row.row) not in before]


def audit_keys(rows: list[dict[str, Any]]) -> frozenset[tuple[str, str]]:
    return frozenset(row["_key"] for row in rows)


def test_the_page_needs_a_fresh_entra_authentication_and_shows_the_pairing_masked(sandbox: Sandbox) -> None:
    user, _, _, _ = paired(sandbox)
    page = open_compte(user)
    (asked,) = entra_requests(user)[-1:]
    expected = ("login", "0", f"{sandbox.broker_url}/callback")
    assert (asked["prompt"], asked["max_age"], asked["redirect_uri"]) == expected
    assert MASKED in page.html and NATIONAL_ID not in page.html
    assert "e-CPS" in page.html and "Infirmier" in page.html and "THOMAS BERNARD" in page.html.upper()
    assert "Appairé le" in page.html and "Dernière utilisation" in page.html
    assert page.headers["Cache-Control"] == "no-store"


def test_an_old_entra_authentication_is_sent_back_to_entra_then_refused(sandbox: Sandbox) -> None:
    user = browser(sandbox)
    # Entra answers with an auth_time a minute before the broker asked (within MSAL's 2-minute skew for
    # max_age=0, beyond the broker's 10 s): asked once more, then the page stays closed.
    with switched(sandbox.entra_url, clock_offset=-60):
        page = user.go(f"{sandbox.broker_url}/compte")
    assert isinstance(page, Page) and page.status == 403
    assert page.h1 == "Authentification à renouveler"
    assert "ne s&#39;ouvre qu&#39;après une authentification récente" in page.html
    assert [(r["prompt"], r["max_age"]) for r in entra_requests(user)] == [("login", "0"), ("login", "0")]
    assert "Mes appairages" not in page.h1 and MASKED not in page.html


def test_the_entra_return_replayed_in_another_browser_is_refused(sandbox: Sandbox) -> None:
    paired(sandbox)
    user = browser(sandbox)
    landing = user.go(f"{sandbox.broker_url}/compte", stop_at=f"{sandbox.broker_url}/callback")
    assert isinstance(landing, Landing) and "code" in landing.params
    thief = browser(sandbox)
    page = thief.go(landing.url)
    assert isinstance(page, Page) and page.status == 400 and page.h1 == "Délai dépassé"
    assert all("/compte?j=" not in url for url in thief.visited)


def test_removal_needs_the_confirmation_page_and_its_csrf_token(sandbox: Sandbox) -> None:
    user, _, _, _ = paired(sandbox)
    oid, before = persona_oid(sandbox, ENTRA), audit_keys(removal_audit(sandbox))
    page = open_compte(user)
    shown = confirmation(user, page)  # a GET: shows, removes nothing
    assert binding_row(sandbox, oid) is not None
    assert MASKED in shown.html and NATIONAL_ID not in shown.html
    form = shown.forms[0]
    assert {(value, label) for _, value, label in form.buttons} == {
        ("remove", "Confirmer la suppression"), ("cancel", "Annuler")}
    action = f"{sandbox.broker_url}{form.action}"

    no_csrf = user.session.post(action, data={"action": "remove"}, allow_redirects=False, timeout=30)
    wrong_csrf = user.session.post(action, data={"action": "remove", "csrf_token": "x" * 43},
                                   allow_redirects=False, timeout=30)
    other_browser = requests.post(action, data={"action": "remove", **form.fields}, allow_redirects=False,
                                  timeout=30)
    assert (no_csrf.status_code, wrong_csrf.status_code, other_browser.status_code) == (403, 403, 403)
    no_action = user.session.post(action, data=form.fields, allow_redirects=False, timeout=30)
    assert no_action.status_code == 409
    assert binding_row(sandbox, oid) is not None and removal_audit(sandbox, before) == []

    back = user.submit(shown, "cancel")
    assert isinstance(back, Page) and back.h1 == "Mes appairages" and binding_row(sandbox, oid) is not None

    removed = user.session.post(action, data={"action": "remove", **form.fields}, allow_redirects=False, timeout=30)
    assert removed.status_code == 303 and removed.headers["Location"].startswith(f"{sandbox.broker_url}/compte?j=")
    result = user.go(removed.headers["Location"])
    assert isinstance(result, Page) and result.status == 200 and result.h1 == "Appairage supprimé"
    assert binding_row(sandbox, oid) is None
    (audit,) = removal_audit(sandbox, before)
    assert {key: audit[key] for key in ("by", "national_id")} == {"by": "professional", "national_id": MASKED}
    assert NATIONAL_ID not in str(audit)

    again = user.session.post(action, data={"action": "remove", **form.fields}, allow_redirects=False, timeout=30)
    assert again.status_code == 409  # the journey is past the removal: a replayed form does nothing


def test_without_a_pairing_the_page_says_aucun_appairage(sandbox: Sandbox) -> None:
    unpair(sandbox, ENTRA)
    user = browser(sandbox)
    page = open_compte(user)
    assert "Aucun appairage" in page.html and "carte CPS" in page.html
    assert not any("Supprimer" in text for _, text in page.links)
    j = parse_qs(urlsplit(page.url).query)["j"][0]
    nothing = user.go(f"{sandbox.broker_url}/compte/supprimer?j={j}")
    assert isinstance(nothing, Page) and nothing.h1 == "Mes appairages"  # 303 back: nothing to confirm


def test_after_removal_sessions_end_and_the_next_sign_in_pairs_again(sandbox: Sandbox) -> None:
    user, rp, _, _ = paired(sandbox)
    copy = browser(sandbox)  # the session's cookie copied elsewhere (another workstation, a thief)
    copy.session.cookies.set(SESSION_COOKIE, user.session.cookies.get(SESSION_COOKIE), domain=urlsplit(
        sandbox.broker_url).hostname)
    silent = copy.go(rp.authorization_url(Pkce(), prompt="none"), stop_at=rp.redirect_uri)
    assert isinstance(silent, Landing) and "code" in silent.params  # the copy works before the removal

    user.submit(confirmation(user, open_compte(user)), "remove")
    assert user.session.cookies.get(SESSION_COOKIE) is None  # this browser's session is cleared

    for attempt in (copy, user):
        silent = attempt.go(rp.authorization_url(Pkce(), prompt="none"), stop_at=rp.redirect_uri)
        assert isinstance(silent, Landing) and silent.params["error"] == "login_required"
    page = copy.go(rp.authorization_url(Pkce()), stop_at=rp.redirect_uri)
    assert isinstance(page, Page) and page.h1 == "Appairage du compte"  # not the one-click Connexion page

    # Paired again at once, with the same identity (often within the second of the removal here): the
    # copied session was opened through the removed pairing, and the new one does not admit it.
    sign_in(user, rp, Pkce())
    assert binding_row(sandbox, persona_oid(sandbox, ENTRA)) is not None
    silent = copy.go(rp.authorization_url(Pkce(), prompt="none"), stop_at=rp.redirect_uri)
    assert isinstance(silent, Landing) and silent.params["error"] == "login_required"  # never revived


def test_the_account_refresh_tokens_are_refused_after_removal_even_once_paired_again(sandbox: Sandbox) -> None:
    user, rp, landing, pkce = paired(sandbox, "rp-refresh")
    tokens = rp.redeem(landing.params["code"], pkce).json()
    assert tokens.get("refresh_token"), tokens

    user.submit(confirmation(user, open_compte(user)), "remove")
    sign_in(user, rp, Pkce())  # the same identity paired again at once: the old family stays dead
    answer = requests.post(f"{sandbox.broker_url}/token", auth=(rp.client.client_id, rp.client.secret or ""),
                           data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_a_storage_outage_is_a_french_503_page(sandbox: Sandbox, request: pytest.FixtureRequest) -> None:
    user = browser(sandbox)
    request.getfixturevalue("storage_down")
    page = user.go(f"{sandbox.broker_url}/compte")  # Entra answers; reading the pairing fails
    assert isinstance(page, Page) and page.status == 503
    assert 'lang="fr"' in page.html and "indisponible" in page.html
