"""Every page in chromium, desktop and mobile: axe-core, focus order, reflow at 320 px, the real CSP.

The pages are rendered with realistic data (including very long names and the notice banner) and
served with the broker's real security headers and stylesheet handler by a tiny WSGI app. The
screenshots land in ``.data/screenshots/`` for a human to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page

from functions.assets import assets
from sandbox.servers import free_port
from sandbox.servers import serve
from sanscouture.models import mask_national_id
from sanscouture.pages import render
from sanscouture.web import Request
from sanscouture.web import Response
from sanscouture.web import parse_form
from tests.browser.axe import BLOCKING_IMPACTS
from tests.browser.axe import EVERY_IMPACT
from tests.browser.axe import check_page
from tests.browser.axe import describe
from tests.browser.axe import save_screenshot
from tests.browser.conftest import DESKTOP
from tests.browser.conftest import MOBILE

pytestmark = pytest.mark.browser

FORM = "/echo"
CSRF = "csrf-7f3a9c1e5b2d4f6a8c0e"
RETURN_URL = "https://dpi.chu-exemple.fr/oidc/callback?error=access_denied&state=af0ifjsldkj"
PSC_LOGOUT = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/protocol/openid-connect/logout"

DOCTOR: dict[str, Any] = {
    "given_name": "KIT",
    "family_name": "DOC0042788",
    "SubjectNameID": "899700427885",
    "authMode": "CARD",
    "SubjectRefPro": {
        "codeCivilite": "M",
        "exercices": [
            {"codeProfession": "10", "codeCiviliteDexercice": "DR", "nomDexercice": "DOC0042788",
             "prenomDexercice": "KIT"}
        ],
    },
}
NURSE: dict[str, Any] = {
    "given_name": "MARIE-CHRISTINE",
    "family_name": "DE LA ROCHEFOUCAULD-MONTBEL DES ESSARTS",
    "SubjectNameID": "810002345671",
    "authMode": "MOBILE",
    "SubjectRefPro": {
        "codeCivilite": "MME",
        "exercices": [
            {"codeProfession": "60", "codeCiviliteDexercice": "", "nomDexercice":
             "DE LA ROCHEFOUCAULD-MONTBEL DES ESSARTS", "prenomDexercice": "MARIE-CHRISTINE"}
        ],
    },
}
LONG_CLIENT = "Plateforme régionale de télé-expertise et de coordination des parcours de soins complexes"
LONG_USERNAME = "marie-christine.delarochefoucauld-montbel@groupe-hospitalier-territorial-exemple.fr"


def _confirm(userinfo: dict[str, Any], **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "client_name": "Dossier patient informatisé",
        "identity_name": render.display_name(userinfo),
        "profession": render.profession_label(userinfo),
        "masked_national_id": userinfo["SubjectNameID"][-4:],
        "auth_mode_label": render.auth_mode_label(userinfo["authMode"]),
        "entra_username": "kit.doc@chu-exemple.fr",
        "form_action": FORM,
        "csrf_token": CSRF,
        **overrides,
    }
    return render.render_confirm(**arguments)


def _reverification(userinfo: dict[str, Any], **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "client_name": "Dossier patient informatisé",
        "identity_name": render.display_name(userinfo),
        "profession": render.profession_label(userinfo),
        "masked_national_id": userinfo["SubjectNameID"][-4:],
        "entra_username": "kit.doc@chu-exemple.fr",
        "proven_on": render.french_date(1_733_011_200),
        "days": 365,
        "form_action": FORM,
        "csrf_token": CSRF,
        **overrides,
    }
    return render.render_reverification(**arguments)


def _account(userinfo: dict[str, Any], **overrides: Any) -> str:
    view = render.PairingView(
        identity_name=render.display_name(userinfo),
        profession=render.profession_label(userinfo),
        masked_national_id=mask_national_id(userinfo["SubjectNameID"]),
        auth_mode_label=render.auth_mode_label(userinfo["authMode"]),
        paired_at=1_764_592_260,
        last_used_at=1_764_600_000,
    )
    arguments: dict[str, Any] = {"entra_name": "Kit Doc", "entra_username": "kit.doc@chu-exemple.fr",
                                 "pairing": view, "remove_url": FORM, **overrides}
    return render.render_account(**arguments)


def _known_error(key: str, **options: Any) -> str:
    title, message, advice = render.ERRORS[key]
    return render.render_error(title=title, message=message, advice=advice, **options)


PAGES: dict[str, Callable[[], str]] = {
    "mire": lambda: render.render_mire(client_name="Dossier patient informatisé", form_action=FORM, csrf_token=CSRF),
    "pairing": lambda: render.render_pairing(
        client_name="Dossier patient informatisé",
        entra_name="Claire Martin",
        entra_username="claire.martin@chu-exemple.fr",
        form_action=FORM,
        csrf_token=CSRF,
    ),
    "pairing-long": lambda: render.render_pairing(
        client_name=LONG_CLIENT,
        entra_name="Marie-Christine de La Rochefoucauld-Montbel des Essarts",
        entra_username=LONG_USERNAME,
        form_action=FORM,
        csrf_token=CSRF,
    ),
    "confirm": lambda: _confirm(DOCTOR),
    "confirm-notice-long": lambda: _confirm(
        NURSE,
        client_name=LONG_CLIENT,
        entra_username=LONG_USERNAME,
        notice="Ce compte était déjà appairé à l'identité ci-dessous.",
    ),
    "reverification": lambda: _reverification(DOCTOR),
    "reverification-long": lambda: _reverification(NURSE, client_name=LONG_CLIENT, entra_username=LONG_USERNAME),
    "error-reverification-refused": lambda: _known_error(
        "reverification_refused", reference="5d2a7e10", return_url=RETURN_URL
    ),
    "error": lambda: _known_error("server_error", reference="7c1e9a42-5b3d-4f0e", return_url=RETURN_URL),
    "error-not-compliant": lambda: _known_error("authentication_not_compliant", reference="b91d03fe"),
    "error-unknown-client": lambda: _known_error("unknown_client"),
    "error-psc-session-stale": lambda: _known_error(
        "psc_session_stale", reference="3f9e0c1a", return_url=RETURN_URL,
        extra_link=render.Link(render.CLOSE_PSC_SESSION, PSC_LOGOUT),
    ),
    "logout-confirm": lambda: render.render_logout_confirm(
        client_name="Dossier patient informatisé", form_action=FORM, csrf_token=CSRF
    ),
    "logout-confirm-anonymous": lambda: render.render_logout_confirm(
        client_name=None, form_action=FORM, csrf_token=CSRF
    ),
    "logged-out": lambda: render.render_logged_out(
        client_name="Dossier patient informatisé", return_url="https://dpi.chu-exemple.fr/"
    ),
    "logged-out-anonymous": lambda: render.render_logged_out(client_name=None, return_url=None),
    "account": lambda: _account(DOCTOR),
    "account-long": lambda: _account(NURSE, entra_name="Marie-Christine de La Rochefoucauld-Montbel des Essarts",
                                     entra_username=LONG_USERNAME),
    "account-empty": lambda: render.render_account(
        entra_name="Claire Martin", entra_username="claire.martin@chu-exemple.fr", pairing=None, remove_url=FORM
    ),
    "account-remove": lambda: render.render_account_remove(
        entra_username=LONG_USERNAME, identity_name=render.display_name(NURSE),
        masked_national_id=mask_national_id(NURSE["SubjectNameID"]), form_action=FORM, csrf_token=CSRF,
    ),
    "account-removed": lambda: render.render_account_removed(entra_username="kit.doc@chu-exemple.fr"),
    "error-account-stale": lambda: _known_error("account_auth_stale", reference="5d2a7e10"),
}

VIEWPORTS: dict[str, dict[str, Any]] = {"desktop": DESKTOP, "mobile": MOBILE}

# « Mes appairages » (/compte, issue 10 point 5): axe-core must find no violation at all, of any impact.
ACCOUNT_PAGES = frozenset(name for name in PAGES if name.startswith("account") or name == "error-account-stale")


def _wsgi_app(pages: dict[str, str]) -> Callable[..., Iterable[bytes]]:
    """Pages at ``/<name>`` with the broker's real headers, ``/assets/*`` through the real handler,
    and ``POST /echo`` answering the submitted form as JSON."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/assets/"):
            request = Request(method=method, url=path, route_params={"name": path.removeprefix("/assets/")})
            response = assets(request)
        elif path == FORM and method == "POST":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            form, _ = parse_form(body, environ.get("CONTENT_TYPE"))
            response = Response.json(form)
        elif path.removeprefix("/") in pages:
            response = Response.html(pages[path.removeprefix("/")])
        else:
            response = Response(404, b"Not found", (("Content-Type", "text/plain"),))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", list(response.headers))
        return [response.body]

    return app


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """Base URL of the sample pages, over plain http on 127.0.0.1."""
    server = serve("pages", _wsgi_app({name: build() for name, build in PAGES.items()}), free_port(), tls=None)
    try:
        yield server.url
    finally:
        server.stop()


def _open(new_context: Callable[..., BrowserContext], url: str, **options: Any) -> Page:
    page = new_context(**options).new_page()
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, url
    return page


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("name", PAGES)
def test_no_serious_accessibility_violation(
    new_context: Callable[..., BrowserContext], site: str, name: str, viewport: str
) -> None:
    page = _open(new_context, f"{site}/{name}", **VIEWPORTS[viewport])
    save_screenshot(page, f"{name}-{viewport}")
    violations = check_page(page, EVERY_IMPACT if name in ACCOUNT_PAGES else BLOCKING_IMPACTS)
    assert not violations, describe(violations)


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize(
    ("name", "value", "label"),
    [
        ("pairing", "pair", "Appairer un compte avec la carte CPS"),
        ("pairing-long", "pair", "Appairer un compte avec la carte CPS"),
        ("confirm", "confirm", "Confirmer"),
        ("confirm-notice-long", "confirm", "Confirmer"),
        ("reverification", "verify", "Vérifier avec la carte CPS"),
        ("reverification-long", "verify", "Vérifier avec la carte CPS"),
    ],
)
def test_primary_button_is_the_first_control_after_the_skip_link(
    new_context: Callable[..., BrowserContext], site: str, name: str, value: str, label: str, viewport: str
) -> None:
    page = _open(new_context, f"{site}/{name}", **VIEWPORTS[viewport])
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Tab")
    active = page.evaluate(
        """() => {
            const element = document.activeElement;
            const style = getComputedStyle(element);
            return {
                tag: element.tagName, name: element.name, value: element.value, text: element.textContent.trim(),
                inMain: element.closest('main') !== null,
                outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth),
            };
        }"""
    )
    assert active["tag"] == "BUTTON" and active["inMain"]
    assert (active["name"], active["value"], active["text"]) == ("action", value, label)
    # The keyboard focus is visible: a real outline, at least 2 px (WCAG 2.4.7).
    assert active["outline"] != "none" and active["outlineWidth"] >= 2
    if viewport == "desktop" and name in {"pairing", "confirm"}:
        save_screenshot(page, f"{name}-focus")


@pytest.mark.parametrize("name", PAGES)
def test_reflows_at_320px_with_large_targets(new_context: Callable[..., BrowserContext], site: str, name: str) -> None:
    """WCAG 1.4.10: no horizontal scrolling at 320 CSS px; 2.5.5: every control at least 44 × 44 px."""
    page = _open(new_context, f"{site}/{name}", viewport={"width": 320, "height": 640}, is_mobile=True)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name} scrolls horizontally by {overflow}px at 320px"
    small = page.evaluate(
        """() => [...document.querySelectorAll('main button, main a')]
            .map((element) => ({text: element.textContent.trim(), box: element.getBoundingClientRect()}))
            .filter(({box}) => box.height < 44 || box.width < 44)
            .map(({text, box}) => `${text}: ${Math.round(box.width)}×${Math.round(box.height)}`)"""
    )
    assert not small, small
    save_screenshot(page, f"{name}-320")


@pytest.mark.parametrize("name", PAGES)
def test_renders_under_the_real_csp_with_no_external_request(
    new_context: Callable[..., BrowserContext], site: str, name: str
) -> None:
    """Without bypass_csp: no CSP report or console error, the stylesheet applies, all requests stay local."""
    context = new_context(bypass_csp=False)
    page = context.new_page()
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in {"error", "warning"} else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    response = page.goto(f"{site}/{name}", wait_until="load")
    assert response is not None and response.headers["content-security-policy"].startswith("default-src 'none'")
    assert not problems, problems
    assert all(url.startswith((site, "data:")) for url in requests), requests
    # The stylesheet was allowed and applied: the header carries its blue brand border.
    border = page.evaluate("() => getComputedStyle(document.querySelector('.brand')).borderLeftColor")
    assert border == "rgb(0, 0, 145)"


@pytest.mark.parametrize(
    ("name", "button", "expected"),
    [
        ("mire", "Pro Santé Connect (carte CPS / e-CPS)", {"choice": "psc"}),
        ("pairing", "Appairer un compte avec la carte CPS", {"action": "pair"}),
        ("reverification", "Vérifier avec la carte CPS", {"action": "verify"}),
        ("reverification", "Annuler", {"action": "cancel"}),
        ("confirm", "Confirmer", {"action": "confirm"}),
        ("confirm", "Se connecter avec une autre identité Pro Santé Connect", {"action": "other"}),
        ("logout-confirm", "Se déconnecter", {"action": "logout"}),
    ],
)
def test_buttons_post_their_choice_with_the_csrf_token(
    new_context: Callable[..., BrowserContext], site: str, name: str, button: str, expected: dict[str, str]
) -> None:
    page = _open(new_context, f"{site}/{name}", bypass_csp=False)
    with page.expect_request(f"{site}{FORM}") as posted:
        page.get_by_role("button", name=button).click()
    request = posted.value
    assert request.method == "POST"
    form, _ = parse_form((request.post_data or "").encode(), request.headers.get("content-type"))
    assert form == {"csrf_token": CSRF, **expected}
