"""The French pages: structure, escaping, forms, no external asset; the labels; the stylesheet handler."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from functions.assets import assets
from sanscouture.pages import render
from sanscouture.web import Request

ROOT = Path(__file__).resolve().parents[3]
EVIL = '<script>alert("x")</script>'
CSRF = "csrf-token-value"


@dataclass
class Button:
    name: str | None
    value: str | None
    type: str | None
    text: str = ""


@dataclass
class Form:
    method: str
    action: str
    hidden: dict[str, str] = field(default_factory=dict)
    buttons: list[Button] = field(default_factory=list)


class PageParser(HTMLParser):
    """Collects what the tests look at: lang, headings, forms, links, scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.h1 = 0
        self.main = 0
        self.scripts = 0
        self.style_attributes = 0
        self.urls: list[str] = []  # every href/src/action value
        self.links: list[tuple[str, str]] = []  # (href, text) of <a>, except in-page (skip) links
        self.forms: list[Form] = []
        self._button: Button | None = None
        self._link: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if "style" in attributes:
            self.style_attributes += 1
        for name in ("href", "src", "action"):
            if name in attributes:
                self.urls.append(attributes[name])
        if tag == "html":
            self.lang = attributes.get("lang")
        elif tag == "h1":
            self.h1 += 1
        elif tag == "main":
            self.main += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "form":
            self.forms.append(Form(attributes.get("method", "get").lower(), attributes.get("action", "")))
        elif tag == "input" and attributes.get("type") == "hidden":
            self.forms[-1].hidden[attributes["name"]] = attributes.get("value", "")
        elif tag == "button":
            self._button = Button(attributes.get("name"), attributes.get("value"), attributes.get("type"))
            self.forms[-1].buttons.append(self._button)
        elif tag == "a" and not attributes.get("href", "").startswith("#"):
            self._link = [attributes.get("href", "")]

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self._button.text = " ".join(self._button.text.split())
            self._button = None
        elif tag == "a" and self._link is not None:
            self.links.append((self._link[0], " ".join("".join(self._link[1:]).split())))
            self._link = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.text += data
        if self._link is not None:
            self._link.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def mire(**overrides: Any) -> str:
    return render.render_mire(**{"client_name": "DPI", "form_action": "/authorize/choice", "csrf_token": CSRF,
                                 **overrides})


def pairing(**overrides: Any) -> str:
    arguments = {"client_name": "DPI", "entra_name": "Claire Martin", "entra_username": "claire@chu.example",
                 "form_action": "/pair", "csrf_token": CSRF, **overrides}
    return render.render_pairing(**arguments)


def confirm(**overrides: Any) -> str:
    arguments = {"client_name": "DPI", "identity_name": "Dr Kit DOC0042788", "profession": "Médecin",
                 "masked_national_id": "7885", "auth_mode_label": "carte CPS",
                 "entra_username": "kit@chu.example", "form_action": "/confirm", "csrf_token": CSRF, **overrides}
    return render.render_confirm(**arguments)


def error(**overrides: Any) -> str:
    arguments = {"title": "Erreur inattendue", "message": "Une erreur est survenue.", "advice": "Réessayez.",
                 **overrides}
    return render.render_error(**arguments)


def logout_confirm(**overrides: Any) -> str:
    return render.render_logout_confirm(**{"client_name": "DPI", "form_action": "/logout", "csrf_token": CSRF,
                                           **overrides})


def logged_out(**overrides: Any) -> str:
    return render.render_logged_out(**{"client_name": "DPI", "return_url": None, **overrides})


VIEW_FIELDS = ("identity_name", "profession", "masked_national_id", "auth_mode_label")
PAIRED_AT = 1_764_592_260  # 2025-12-01 12:31 UTC, 13:31 in Paris
LAST_USED_AT = 1_751_369_400  # 2025-07-01 11:30 UTC, 13:30 in Paris (summer time)


def account(**overrides: Any) -> str:
    view = {"identity_name": "Dr Kit DOC0042788", "profession": "Médecin", "masked_national_id": "********7885",
            "auth_mode_label": "carte CPS", "paired_at": PAIRED_AT, "last_used_at": LAST_USED_AT}
    view.update({key: overrides.pop(key) for key in VIEW_FIELDS if key in overrides})
    arguments = {"entra_name": "Kit Doc", "entra_username": "kit@chu.example", "remove_url": "/compte/supprimer?j=J",
                 "pairing": render.PairingView(**view), **overrides}
    return render.render_account(**arguments)


def account_remove(**overrides: Any) -> str:
    arguments = {"entra_username": "kit@chu.example", "identity_name": "Dr Kit DOC0042788",
                 "masked_national_id": "********7885", "form_action": "/compte/supprimer?j=J", "csrf_token": CSRF,
                 **overrides}
    return render.render_account_remove(**arguments)


def account_removed(**overrides: Any) -> str:
    return render.render_account_removed(**{"entra_username": "kit@chu.example", **overrides})


PAGES: dict[str, Callable[..., str]] = {
    "account": account,
    "account_empty": lambda **overrides: account(pairing=None, **overrides),
    "account_remove": account_remove,
    "account_removed": account_removed,
    "mire": mire,
    "pairing": pairing,
    "confirm": confirm,
    "error": error,
    "logout_confirm": logout_confirm,
    "logged_out": logged_out,
}

# Where each page shows values that come from outside (relying party registration, Entra, PSC).
UNTRUSTED_FIELDS: list[tuple[str, str]] = [
    ("account", "entra_name"),
    ("account", "entra_username"),
    ("account", "identity_name"),
    ("account", "profession"),
    ("account", "masked_national_id"),
    ("account", "auth_mode_label"),
    ("account_empty", "entra_username"),
    ("account_remove", "entra_username"),
    ("account_remove", "identity_name"),
    ("account_remove", "masked_national_id"),
    ("account_removed", "entra_username"),
    ("mire", "client_name"),
    ("pairing", "client_name"),
    ("pairing", "entra_name"),
    ("pairing", "entra_username"),
    ("confirm", "client_name"),
    ("confirm", "identity_name"),
    ("confirm", "profession"),
    ("confirm", "masked_national_id"),
    ("confirm", "entra_username"),
    ("confirm", "notice"),
    ("error", "title"),
    ("error", "message"),
    ("error", "advice"),
    ("error", "reference"),
    ("error", "status_hint"),
    ("logout_confirm", "client_name"),
    ("logged_out", "client_name"),
]


# --- every page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_page_is_french_with_one_h1_a_main_and_no_script(name: str) -> None:
    page = PAGES[name]()
    parsed = parse(page)
    assert page.startswith("<!doctype html>")
    assert parsed.lang == "fr"
    assert parsed.h1 == 1
    assert parsed.main == 1
    assert parsed.scripts == 0 and "<script" not in page.lower()
    assert parsed.style_attributes == 0  # style-src 'self' would block inline styles
    assert "Pro Santé Connect" in page and "connexion sans couture" in page
    assert '<a class="skip-link" href="#contenu">' in page and '<main id="contenu"' in page


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_nothing_from_another_host(name: str) -> None:
    page = PAGES[name]()
    assert "http://" not in page and "https://" not in page
    assert "//" not in "".join(parse(page).urls)  # no protocol-relative URL either
    assert f'<link rel="stylesheet" href="{render.asset_url("broker.css")}">' in page


@pytest.mark.parametrize(("name", "argument"), UNTRUSTED_FIELDS)
def test_untrusted_values_are_escaped(name: str, argument: str) -> None:
    page = PAGES[name](**{argument: EVIL})
    assert "<script" not in page
    assert "&lt;script&gt;" in page


# --- forms -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "action", "buttons"),
    [
        ("mire", "/authorize/choice", [
            ("choice", "entra", "Délégation : Entra ID Se connecter via le fournisseur d'identité de votre "
                                "établissement"),
            ("choice", "psc", "Pro Santé Connect (carte CPS / e-CPS) S'identifier directement avec la carte CPS "
                              "ou l'application e-CPS"),
        ]),
        ("pairing", "/pair", [
            ("action", "pair", "Appairer un compte avec la carte CPS"),
            ("action", "cancel", "Annuler"),
        ]),
        ("confirm", "/confirm", [
            ("action", "confirm", "Confirmer"),
            ("action", "other", "Se connecter avec une autre identité Pro Santé Connect"),
            ("action", "cancel", "Annuler"),
        ]),
        ("logout_confirm", "/logout", [("action", "logout", "Se déconnecter")]),
        ("account_remove", "/compte/supprimer?j=J", [
            ("action", "remove", "Confirmer la suppression"),
            ("action", "cancel", "Annuler"),
        ]),
    ],
)
def test_form_posts_the_csrf_token_and_the_exact_buttons(
    name: str, action: str, buttons: list[tuple[str, str, str]]
) -> None:
    (form,) = parse(PAGES[name]()).forms
    assert form.method == "post"
    assert form.action == action
    assert form.hidden == {"csrf_token": CSRF}
    assert [(b.name, b.value, b.text.replace("\xa0", " ")) for b in form.buttons] == buttons
    assert all(button.type == "submit" for button in form.buttons)


def test_mire_choice_titles() -> None:
    page = mire()
    assert "Choisissez votre moyen de connexion" in page
    assert "Délégation : Entra ID" in page


def test_form_values_are_attribute_escaped() -> None:
    (form,) = parse(pairing(csrf_token='a"b<c', form_action='/pair?x="y"')).forms
    assert form.hidden["csrf_token"] == 'a"b<c'
    assert form.action == '/pair?x="y"'


def test_pairing_explains_the_link_and_shows_the_entra_account() -> None:
    page = pairing()
    assert "<h1>Appairage du compte</h1>" in page
    assert "Claire Martin" in page and "claire@chu.example" in page
    assert "jamais d'après votre nom ou votre adresse e-mail" in page


def test_confirm_names_who_will_be_signed_in_and_puts_confirm_first() -> None:
    page = confirm()
    text = " ".join(page.replace("&nbsp;", " ").split())
    assert "Vous allez être connecté(e) à <strong class=\"name\">DPI</strong> en tant que :" in text
    assert "Dr Kit DOC0042788" in page and "Médecin" in page and "…7885" in page and "carte CPS" in page
    assert "Poste partagé" in page
    assert 'role="status"' not in page
    assert page.index('value="confirm"') < page.index('value="other"') < page.index('value="cancel"')


def test_confirm_shows_the_notice_as_a_status_and_tolerates_no_profession() -> None:
    page = confirm(notice="Ce compte était déjà appairé à l'identité ci-dessous.", profession=None)
    assert re.search(r'role="status"><p>Ce compte était déjà appairé à l&#39;identité ci-dessous\.</p>', page)
    assert "card-subtitle" not in page


# --- error and logout pages ----------------------------------------------------------------------


def test_error_page_without_optional_parts() -> None:
    page = error()
    parsed = parse(page)
    assert parsed.links == [] and "Référence" not in page and "référence" not in page
    assert "Que faire" in page


def test_error_page_with_return_link_and_reference() -> None:
    url = "https://sn.example/cb?error=access_denied&state=s1"
    page = error(return_url=url, reference="ab12-cd34")
    parsed = parse(page)
    assert parsed.links == [(url, "Retourner au service")]
    assert "https://sn.example/cb?error=access_denied&amp;state=s1" in page
    assert "ab12-cd34" in page
    # The only absolute URL in the page is the return link that was given.
    assert re.findall(r"https?://[^\"'<> ]+", page) == ["https://sn.example/cb?error=access_denied&amp;state=s1"]


@pytest.mark.parametrize("url", ["javascript:alert(1)", " javascript:alert(1)", "data:text/html,x", "//evil.example"])
def test_return_links_are_http_only(url: str) -> None:
    assert parse(error(return_url=url)).links == []
    assert parse(logged_out(return_url=url)).links == []


@pytest.mark.parametrize("key", render.ERRORS)
def test_every_catalogued_error_renders(key: str) -> None:
    title, message, advice = render.ERRORS[key]
    assert title and message and advice
    page = render.render_known_error(key, reference="ref-1")
    assert parse(page).h1 == 1 and title.replace("'", "&#39;") in page


def test_error_catalogue_covers_the_journey() -> None:
    required = {
        "unknown_client", "invalid_redirect_uri", "authentication_not_compliant", "tenant_not_allowed",
        "auth_too_old", "session_expired", "psc_refused", "pairing_failed", "csrf", "upstream_unavailable",
        "temporarily_unavailable", "cancelled", "server_error",
    }
    assert required <= set(render.ERRORS)
    assert "Windows Hello" in render.ERRORS["authentication_not_compliant"][2]
    assert "eIDAS substantiel" in render.ERRORS["psc_refused"][1]
    assert render.render_known_error("no-such-key") == render.render_known_error("server_error")


def test_the_stale_psc_session_page_says_what_happened_and_links_to_psc_logout_in_a_new_tab() -> None:
    title, message, advice = render.ERRORS["psc_session_stale"]
    assert title == "Session Pro Santé Connect déjà ouverte"
    assert "peut-être par une autre personne" in message and "aucun compte n'a été appairé" in message
    assert "Fermer la session Pro Santé Connect" in advice and "fermez toutes les fenêtres du navigateur" in advice
    logout = "https://psc.example/auth/realms/esante-wallet/protocol/openid-connect/logout"
    page = error(title=title, message=message, advice=advice, return_url="https://sn.example/cb?error=access_denied",
                 extra_link=render.Link(render.CLOSE_PSC_SESSION, logout))
    assert parse(page).links == [
        (logout, "Fermer la session Pro Santé Connect (nouvel onglet)"),
        ("https://sn.example/cb?error=access_denied", "Retourner au service"),
    ]
    assert f'href="{logout}" target="_blank" rel="noopener noreferrer"' in page
    unsafe = error(extra_link=render.Link(render.CLOSE_PSC_SESSION, "javascript:alert(1)"))
    assert parse(unsafe).links == []


def test_logout_pages() -> None:
    assert "Voulez-vous vous déconnecter" in logout_confirm(client_name=None)
    page = logged_out(client_name=None, return_url="https://sn.example/")
    assert "Vous êtes déconnecté(e)" in page and "Fermez toutes les fenêtres du navigateur" in page
    assert parse(page).links == [("https://sn.example/", "Retourner au service")]
    assert parse(logged_out()).links == []


# --- labels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "label"),
    [("CARD", "carte CPS"), ("card", "carte CPS"), ("MOBILE", "e-CPS"), ("EXTERNAL_APP", "e-CPS"),
     ("E_CPS", "e-CPS"), ("", "non précisé"), (None, "non précisé"), ("OTP", "non précisé")],
)
def test_auth_mode_label(mode: str | None, label: str) -> None:
    assert render.auth_mode_label(mode) == label


def userinfo(code: str | None = "10", civility: str = "DR", gender: str = "M", **top: Any) -> dict[str, Any]:
    exercice = {"codeProfession": code, "codeCiviliteDexercice": civility, "nomDexercice": "DOC0042788",
                "prenomDexercice": "KIT"}
    return {"SubjectRefPro": {"codeCivilite": gender, "exercices": [exercice]}, **top}


@pytest.mark.parametrize(
    ("info", "label"),
    [
        (userinfo("10"), "Médecin"),
        (userinfo("21"), "Pharmacien"),
        (userinfo("21", gender="MME"), "Pharmacienne"),
        (userinfo("60", gender="MME"), "Infirmière"),
        (userinfo("60"), "Infirmier"),
        (userinfo("40"), "Chirurgien-dentiste"),
        (userinfo("50", gender="MME"), "Sage-femme"),
        (userinfo("70"), "Masseur-kinésithérapeute"),
        (userinfo("95"), "Diététicien"),
        (userinfo("96"), "Psychomotricien"),
        (userinfo("98"), "Manipulateur en électroradiologie médicale"),
        (userinfo("99"), None),
        (userinfo(None), None),
        ({}, None),
        ({"SubjectRefPro": "oops"}, None),
        ({"SubjectRefPro": {"exercices": []}}, None),
        ({"SubjectRole": ["10^1.2.250.1.213.1.1.5.5"]}, "Médecin"),
        # EDIT identities of late 2023: codeCivilite at the top level, SubjectRefPro without it.
        ({"codeCivilite": "MME", "SubjectRefPro": {"exercices": [{"codeProfession": "60"}]}}, "Infirmière"),
        ({"codeCivilite": "M", "SubjectRefPro": {"exercices": [{"codeProfession": "21"}]}}, "Pharmacien"),
    ],
)
def test_profession_label(info: dict[str, Any], label: str | None) -> None:
    assert render.profession_label(info) == label


def test_civility_and_display_name() -> None:
    assert render.civility_prefix(userinfo(civility="DR")) == "Dr"
    assert render.civility_prefix(userinfo(civility="")) is None
    assert render.civility_prefix(userinfo(civility="MC")) is None
    assert render.display_name(userinfo()) == "Dr Kit DOC0042788"
    assert render.display_name(userinfo(civility="")) == "Kit DOC0042788"
    assert render.display_name({"given_name": "Jean-Marie", "family_name": "DUPONT"}) == "Jean-Marie DUPONT"
    assert render.display_name({"SubjectRefPro": {"exercices": [{"codeCiviliteDexercice": "DR"}]}}) == ""


# --- stylesheet and its handler --------------------------------------------------------------------


def test_stylesheet_has_no_external_reference() -> None:
    css = re.sub(r"/\*.*?\*/", "", render.asset_path("broker.css").read_text(encoding="utf-8"), flags=re.S)
    assert "@import" not in css
    assert "@font-face" not in css
    assert re.findall(r"url\(", css) == []
    assert "http:" not in css and "https:" not in css


def test_asset_url_changes_with_the_content() -> None:
    digest = hashlib.sha256(render.asset_path("broker.css").read_bytes()).hexdigest()[:12]
    assert render.asset_url("broker.css") == f"/assets/broker.css?v={digest}"


def _get_asset(name: str) -> Any:
    return assets(Request(method="GET", url=f"https://broker.example/assets/{name}", route_params={"name": name}))


def test_assets_serves_the_stylesheet_with_long_cache() -> None:
    response = _get_asset("broker.css")
    assert response.status == 200
    assert response.header("Content-Type") == "text/css; charset=utf-8"
    assert response.header("Cache-Control") == "public, max-age=86400, immutable"
    assert response.header("X-Content-Type-Options") == "nosniff"
    assert response.body == render.asset_path("broker.css").read_bytes()


@pytest.mark.parametrize(
    "name",
    ["", "unknown.css", "../render.py", "..%2Frender.py", "../templates/base.html", "..", "/etc/passwd",
     "static/broker.css", "BROKER.CSS", "broker.css/", "broker.css%00", "__init__.py"],
)
def test_assets_refuses_anything_else(name: str) -> None:
    response = _get_asset(name)
    assert response.status == 404
    assert response.header("Cache-Control") == "no-store"
    with pytest.raises(KeyError):
        render.asset_path(name)


# --- cold start --------------------------------------------------------------------------------------


def test_importing_the_pages_and_assets_does_not_import_jinja2() -> None:
    code = "import sys, functions.assets, sanscouture.pages.render; print('jinja2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "False"


def test_templates_fail_loudly_on_a_missing_value() -> None:
    from jinja2 import UndefinedError

    with pytest.raises(UndefinedError):
        render._render("confirm.html", client_name="DPI")


# --- « Mes appairages » ------------------------------------------------------------------------------


def test_account_shows_the_pairing_in_french_and_links_to_the_removal_confirmation() -> None:
    page = account()
    parsed = parse(page)
    assert "<h1>Mes appairages</h1>" in page and "Identité Pro Santé Connect appairée" in page
    assert "********7885" in page and "carte CPS" in page and "Médecin" in page
    assert '<time datetime="2025-12-01T13:31+01:00">1 décembre 2025 à 13 h 31</time>' in page
    assert '<time datetime="2025-07-01T13:30+02:00">1 juillet 2025 à 13 h 30</time>' in page
    assert ("/compte/supprimer?j=J", "Supprimer l'appairage") in parsed.links
    assert parsed.forms == []  # showing the pairing changes nothing: the removal has its own page


def test_account_without_a_pairing_says_so_and_how_to_pair() -> None:
    page = account(pairing=None)
    assert "Aucun appairage" in page and 'role="status"' in page
    assert "Appairage du compte" in page and "e-CPS" in page
    assert not any("Supprimer" in text for _, text in parse(page).links)


def test_account_removal_pages_say_what_happens() -> None:
    confirmation = account_remove()
    assert "<h1>Supprimer l'appairage&nbsp;?</h1>" in confirmation and "sur tous les postes" in confirmation
    assert "********7885" in confirmation
    removed = account_removed()
    assert "<h1>Appairage supprimé</h1>" in removed and "Appairage du compte" in removed


def test_the_confirmation_page_footer_links_to_mes_appairages() -> None:
    footer = confirm().split('<footer class="site-footer">', 1)[1]
    assert '<a href="/compte">Mes appairages</a>' in footer
    assert "/compte" not in pairing() and "/compte" not in error()  # only where an account is signed in


@pytest.mark.parametrize(
    ("epoch", "text"),
    [(0, "1 janvier 1970 à 1 h 00"), (1_773_536_400, "15 mars 2026 à 2 h 00"),
     (1_774_746_000, "29 mars 2026 à 3 h 00")],  # 01:00 UTC on the day summer time starts: 03:00 in Paris
)
def test_french_datetime_in_paris_time(epoch: int, text: str) -> None:
    assert render.french_datetime(epoch) == text
