"""Render the broker's French pages.

One function per page, keyword arguments only, each returning the HTML string; the caller wraps it
with :meth:`sanscouture.web.Response.html`, which adds the strict CSP. The Jinja2 environment is
built on the first render, not at import: ``/token``, ``/jwks`` and ``/assets`` never render a page
and should not pay for importing Jinja2 on a cold start.

Also here: the allow-list of static files served by ``functions/assets.py`` and the helpers that turn
PSC userinfo codes into the words shown to the user.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from jinja2 import Environment

_HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = _HERE / "templates"
STATIC_DIR = _HERE / "static"

# The only files ``/assets/{name}`` serves, name → Content-Type. Only a name from this table ever
# reaches the file system, so no path from a URL can (no traversal to check for).
ASSETS: Mapping[str, str] = MappingProxyType({"broker.css": "text/css; charset=utf-8"})


def asset_path(name: str) -> Path:
    """The file behind an allowed asset name; ``KeyError`` for any other name."""
    if name not in ASSETS:
        raise KeyError(name)
    return STATIC_DIR / name


@functools.cache
def asset_url(name: str) -> str:
    """``/assets/<name>?v=<content hash>``: the stylesheet is cached as immutable, so a new
    deployment must change its URL for browsers to fetch the new version."""
    digest = hashlib.sha256(asset_path(name).read_bytes()).hexdigest()[:12]
    return f"/assets/{name}?v={digest}"


_lock = threading.Lock()
_environment: Environment | None = None


def _env() -> Environment:
    """The worker's Jinja2 environment, built once on first use."""
    global _environment
    if _environment is None:
        with _lock:
            if _environment is None:
                from jinja2 import Environment
                from jinja2 import FileSystemLoader
                from jinja2 import StrictUndefined

                environment = Environment(
                    loader=FileSystemLoader(TEMPLATES_DIR),
                    autoescape=True,
                    undefined=StrictUndefined,  # a missing value is a bug, not an empty string
                    trim_blocks=True,
                    lstrip_blocks=True,
                    auto_reload=False,  # templates only change with a deployment: no stat() per render
                )
                environment.globals["asset_url"] = asset_url
                _environment = environment
    return _environment


def _render(template: str, **context: Any) -> str:
    return _env().get_template(template).render(**context)


def _link(url: str | None) -> str | None:
    """Keep only http(s) URLs for links: a return URL must never become ``javascript:`` or ``data:``."""
    if not url:
        return None
    return url if urlsplit(url).scheme.lower() in {"https", "http"} else None


@dataclass(frozen=True)
class Link:
    """A link an error page offers besides « Retourner au service » (opened in a new tab)."""

    label: str
    url: str


# --- pages ---------------------------------------------------------------------------------------


def render_mire(*, client_name: str, form_action: str, csrf_token: str) -> str:
    """« Choisissez votre moyen de connexion »: Entra ID delegation or Pro Santé Connect directly."""
    return _render("mire.html", client_name=client_name, form_action=form_action, csrf_token=csrf_token)


def render_pairing(
    *, client_name: str, entra_name: str, entra_username: str, form_action: str, csrf_token: str
) -> str:
    """« Appairage du compte »: the Entra account is not linked yet; link it once with the CPS card."""
    return _render(
        "pairing.html",
        client_name=client_name,
        entra_name=entra_name,
        entra_username=entra_username,
        form_action=form_action,
        csrf_token=csrf_token,
    )


def render_confirm(
    *,
    client_name: str,
    identity_name: str,
    profession: str | None,
    masked_national_id: str,
    auth_mode_label: str,
    entra_username: str,
    form_action: str,
    csrf_token: str,
    notice: str | None = None,
) -> str:
    """« Connexion »: who will be signed in, with « Confirmer » first and the shared-workstation way out.

    ``masked_national_id`` is only the last characters of the national identifier (shown after
    « se terminant par … »), never the whole identifier.
    """
    return _render(
        "confirm.html",
        client_name=client_name,
        identity_name=identity_name,
        profession=profession or None,
        masked_national_id=masked_national_id,
        auth_mode_label=auth_mode_label,
        entra_username=entra_username,
        form_action=form_action,
        csrf_token=csrf_token,
        notice=notice or None,
    )


def render_error(
    *,
    title: str,
    message: str,
    advice: str,
    reference: str | None = None,
    return_url: str | None = None,
    status_hint: str | None = None,
    extra_link: Link | None = None,
) -> str:
    """An error page: what happened, what to do, an optional link back to the service and a
    support reference. ``status_hint`` is a short secondary line (never the main message);
    ``extra_link`` is the step the advice asks for (closing the PSC session), in a new tab so that
    the way back to the service stays on this page."""
    extra = extra_link if extra_link is not None and _link(extra_link.url) else None
    return _render(
        "error.html",
        title=title,
        message=message,
        advice=advice,
        reference=reference or None,
        return_url=_link(return_url),
        status_hint=status_hint or None,
        extra_link=extra,
    )


def render_known_error(key: str, *, reference: str | None = None, return_url: str | None = None) -> str:
    """:func:`render_error` with the wording of :data:`ERRORS` (``server_error`` for an unknown key)."""
    title, message, advice = ERRORS.get(key, ERRORS["server_error"])
    return render_error(title=title, message=message, advice=advice, reference=reference, return_url=return_url)


def render_logout_confirm(*, client_name: str | None, form_action: str, csrf_token: str) -> str:
    """« Voulez-vous vous déconnecter ? », for an RP-initiated logout without a valid id_token_hint."""
    return _render(
        "logout_confirm.html", client_name=client_name or None, form_action=form_action, csrf_token=csrf_token
    )


def render_logged_out(*, client_name: str | None, return_url: str | None) -> str:
    """« Vous êtes déconnecté(e) », with the shared-workstation advice and an optional link back."""
    return _render("logged_out.html", client_name=client_name or None, return_url=_link(return_url))


@dataclass(frozen=True)
class PairingView:
    """A pairing as « Mes appairages » shows it: words and dates, the national identifier masked."""

    identity_name: str
    profession: str | None
    masked_national_id: str  # sanscouture.models.mask_national_id: never the whole identifier
    auth_mode_label: str
    paired_at: int  # epoch seconds
    last_used_at: int

    @property
    def paired_at_text(self) -> str:
        return french_datetime(self.paired_at)

    @property
    def last_used_at_text(self) -> str:
        return french_datetime(self.last_used_at)


def render_account(*, entra_name: str, entra_username: str, pairing: PairingView | None, remove_url: str) -> str:
    """« Mes appairages »: the pairing of the account (or « Aucun appairage ») and « Supprimer l'appairage »."""
    view = None
    if pairing is not None:
        view = {
            "identity_name": pairing.identity_name,
            "profession": pairing.profession or None,
            "masked_national_id": pairing.masked_national_id,
            "auth_mode_label": pairing.auth_mode_label,
            "paired_at": pairing.paired_at_text,
            "paired_at_iso": iso_datetime(pairing.paired_at),
            "last_used_at": pairing.last_used_at_text,
            "last_used_at_iso": iso_datetime(pairing.last_used_at),
        }
    return _render("account.html", entra_name=entra_name, entra_username=entra_username, pairing=view,
                   remove_url=remove_url)


def render_account_remove(
    *, entra_username: str, identity_name: str, masked_national_id: str, form_action: str, csrf_token: str
) -> str:
    """« Supprimer l'appairage ? »: what a removal does, « Confirmer la suppression » and « Annuler »."""
    return _render("account_remove.html", entra_username=entra_username, identity_name=identity_name,
                   masked_national_id=masked_national_id, form_action=form_action, csrf_token=csrf_token)


def render_account_removed(*, entra_username: str) -> str:
    """« Appairage supprimé »: the result of a removal, and what the next sign-in will ask."""
    return _render("account_removed.html", entra_username=entra_username)


_MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre")


def _paris(epoch: int) -> datetime:
    """Metropolitan French time (the hospitals' time zone); UTC where the zone database is missing."""
    try:
        from zoneinfo import ZoneInfo

        return datetime.fromtimestamp(epoch, ZoneInfo("Europe/Paris"))
    except (ImportError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return datetime.fromtimestamp(epoch, UTC)


def french_datetime(epoch: int) -> str:
    """« 1 décembre 2026 à 12 h 31 » (French typography, Europe/Paris time)."""
    when = _paris(epoch)
    return f"{when.day} {_MONTHS[when.month - 1]} {when.year} à {when.hour} h {when.minute:02d}"


def iso_datetime(epoch: int) -> str:
    """The machine-readable form of :func:`french_datetime` (the ``datetime`` of ``<time>``)."""
    return _paris(epoch).isoformat(timespec="minutes")


# --- error wording -------------------------------------------------------------------------------

# key → (title, message, advice). Plain words for a health professional in a hurry: what happened,
# then what to do. No error codes; the page adds the support reference itself when there is one.
ERRORS: dict[str, tuple[str, str, str]] = {
    "unknown_client": (
        "Service inconnu",
        "Le lien que vous avez suivi ne correspond à aucun service autorisé à utiliser cette connexion.",
        "Le lien est probablement erroné. Revenez au service que vous vouliez utiliser ; si le problème "
        "persiste, contactez l'équipe qui gère ce service.",
    ),
    "invalid_redirect_uri": (
        "Adresse de retour non autorisée",
        "Le service qui vous a envoyé ici a indiqué une adresse de retour qui n'est pas enregistrée. "
        "Par sécurité, la connexion s'arrête ici.",
        "Contactez l'équipe qui gère ce service et signalez-lui ce problème.",
    ),
    "authentication_not_compliant": (
        "Authentification insuffisante",
        "Votre connexion au compte de votre établissement (Entra ID) n'atteint pas le niveau de sécurité "
        "exigé pour accéder à ce service.",
        "Connectez-vous avec votre carte CPx, Windows Hello ou une clé de sécurité FIDO2, puis réessayez. "
        "Si vous n'en disposez pas, contactez le support informatique de votre établissement.",
    ),
    "tenant_not_allowed": (
        "Organisation non autorisée",
        "Votre organisation n'est pas autorisée à utiliser ce service de connexion.",
        "Vérifiez que vous utilisez bien le compte de votre établissement. Sinon, contactez le support "
        "informatique de votre établissement.",
    ),
    "auth_too_old": (
        "Authentification à renouveler",
        "Votre dernière authentification est trop ancienne pour accéder à ce service.",
        "Revenez au service et relancez la connexion : il vous sera demandé de vous authentifier à nouveau.",
    ),
    "entra_claim_missing": (
        "Configuration de la connexion incomplète",
        "Le compte de votre établissement (Entra ID) n'a pas transmis une information indispensable à la "
        "connexion. Ce n'est pas de votre fait : l'application Entra ID du service de connexion est "
        "incomplètement configurée.",
        "Contactez le support informatique de votre établissement en lui indiquant la référence ci-dessous.",
    ),
    "hint_mismatch": (
        "Autre personne que celle attendue",
        "Le service attendait la connexion d'une autre personne que celle qui vient de s'authentifier. "
        "Par sécurité, la connexion s'arrête ici.",
        "Revenez au service : il vous proposera de vous connecter avec votre propre identité.",
    ),
    "session_expired": (
        "Délai dépassé",
        "Votre connexion a pris trop de temps et n'est plus valable.",
        "Revenez au service que vous vouliez utiliser et relancez la connexion.",
    ),
    "psc_refused": (
        "Identité non confirmée",
        "Pro Santé Connect n'a pas confirmé votre identité avec le niveau exigé (eIDAS substantiel : "
        "carte CPS ou e-CPS).",
        "Réessayez avec votre carte CPS ou l'application e-CPS. Si le problème persiste, contactez le "
        "support informatique de votre établissement.",
    ),
    "psc_session_stale": (
        "Session Pro Santé Connect déjà ouverte",
        "Pro Santé Connect n'a pas demandé votre carte CPS ou votre e-CPS : il a renvoyé une authentification "
        "faite plus tôt sur ce navigateur, peut-être par une autre personne. Par sécurité, elle n'a pas été "
        "utilisée : aucun compte n'a été appairé et personne n'a été connecté.",
        "Fermez d'abord la session Pro Santé Connect ouverte sur ce navigateur : utilisez le bouton « Fermer la "
        "session Pro Santé Connect », ou fermez toutes les fenêtres du navigateur. Revenez ensuite au service et "
        "reconnectez-vous : votre carte CPS ou votre e-CPS vous sera demandée.",
    ),
    "pairing_failed": (
        "Appairage impossible",
        "Le compte de votre établissement n'a pas pu être relié à votre identité Pro Santé Connect.",
        "Revenez au service et relancez la connexion. Si le problème persiste, contactez le support "
        "informatique de votre établissement.",
    ),
    "csrf": (
        "Formulaire expiré",
        "Ce formulaire a expiré ou a déjà été envoyé.",
        "Revenez au service et relancez la connexion, sans utiliser le bouton « Précédent » du navigateur.",
    ),
    "upstream_unavailable": (
        "Service momentanément indisponible",
        "Un service nécessaire à votre connexion (Entra ID ou Pro Santé Connect) ne répond pas pour le moment.",
        "Réessayez dans quelques minutes.",
    ),
    "too_many_requests": (
        "Trop de tentatives",
        "De très nombreuses connexions ont été lancées depuis votre poste ou votre réseau en peu de temps : "
        "par sécurité, les suivantes sont suspendues quelques instants.",
        "Patientez une minute, puis relancez la connexion depuis le service.",
    ),
    "temporarily_unavailable": (
        "Service momentanément indisponible",
        "Le service de connexion est momentanément indisponible.",
        "Réessayez dans quelques minutes.",
    ),
    "entra_refused": (
        "Connexion Entra ID interrompue",
        "Le fournisseur d'identité de votre établissement (Entra ID) n'a pas confirmé votre connexion : "
        "elle a été annulée, ou bloquée par une règle d'accès de l'établissement.",
        "Recommencez depuis le service. Si le problème persiste, contactez le support informatique de "
        "votre établissement.",
    ),
    "invalid_request_uri": (
        "Demande de connexion expirée",
        "Le lien de connexion que vous avez suivi a expiré ou a déjà été utilisé : il n'est valable qu'une "
        "fois, pendant une minute.",
        "Revenez au service que vous vouliez utiliser et relancez la connexion.",
    ),
    "invalid_request": (
        "Demande invalide",
        "Le service de connexion a reçu une demande qu'il ne peut pas traiter.",
        "Recommencez depuis le service. Si le problème persiste, contactez le support du service.",
    ),
    "stale_step": (
        "Page déjà utilisée",
        "Cette page a déjà été validée (double clic, retour arrière du navigateur ou autre onglet) : "
        "elle ne peut pas l'être une seconde fois.",
        "Recommencez la connexion depuis le service. Si vous étiez déjà connecté(e), vous pouvez "
        "simplement revenir au service.",
    ),
    "cancelled": (
        "Connexion annulée",
        "Vous avez annulé la connexion.",
        "Vous pouvez fermer cette page, ou revenir au service pour vous connecter à nouveau.",
    ),
    "logout_invalid": (
        "Demande de déconnexion invalide",
        "Le service qui vous a envoyé ici a fait une demande de déconnexion qui ne peut pas être acceptée.",
        "Pour vous déconnecter, revenez au service et utilisez son bouton de déconnexion, ou fermez toutes "
        "les fenêtres du navigateur.",
    ),
    "account_expired": (
        "Délai dépassé",
        "La page « Mes appairages » n'est plus valable : elle ne reste ouverte que quelques minutes après "
        "votre authentification, ou elle a été ouverte dans un autre navigateur.",
        "Rouvrez « Mes appairages » : votre authentification vous sera demandée à nouveau.",
    ),
    "account_auth_stale": (
        "Authentification à renouveler",
        "Entra ID n'a pas demandé de nouvelle authentification : il a renvoyé une connexion faite plus tôt sur "
        "ce poste. Par sécurité, la page « Mes appairages » ne s'ouvre qu'après une authentification récente.",
        "Fermez toutes les fenêtres du navigateur, puis rouvrez « Mes appairages » et authentifiez-vous "
        "(Windows Hello, carte CPx ou clé de sécurité).",
    ),
    "account_changed": (
        "Appairage modifié entre-temps",
        "L'appairage de votre compte a été modifié depuis l'affichage de la page (par exemple depuis un autre "
        "poste) : par sécurité, rien n'a été supprimé.",
        "Rouvrez « Mes appairages » pour voir l'appairage actuel, puis recommencez si besoin.",
    ),
    "server_error": (
        "Erreur inattendue",
        "Une erreur inattendue a empêché votre connexion.",
        "Réessayez dans quelques minutes. Si le problème persiste, contactez le support informatique de "
        "votre établissement.",
    ),
}


CLOSE_PSC_SESSION = "Fermer la session Pro Santé Connect (nouvel onglet)"
"""The label of the ``psc_session_stale`` page's link to PSC's end_session_endpoint."""


# --- user-facing labels from PSC userinfo --------------------------------------------------------

AUTH_MODE_UNKNOWN = "non précisé"


def auth_mode_label(auth_mode: str | None) -> str:
    """PSC ``authMode`` in words: ``CARD`` → « carte CPS », the mobile modes → « e-CPS ».

    Several observed userinfo layouts have no ``authMode`` at all (the EDIT samples of
    prosanteconnect/proof-of-concept HelperTest.java): absent or
    unknown, the page says « non précisé » rather than guess.
    """
    mode = (auth_mode or "").strip().upper()
    if "CARD" in mode:
        return "carte CPS"
    if mode in {"MOBILE", "EXTERNAL_APP"} or "CPS" in mode:
        return "e-CPS"
    return AUTH_MODE_UNKNOWN


# TRE_G15-ProfessionSante (ANS nomenclature), the common codes only: code → (masculine, feminine).
_PROFESSIONS: dict[str, tuple[str, str]] = {
    "10": ("Médecin", "Médecin"),
    "21": ("Pharmacien", "Pharmacienne"),
    "26": ("Audioprothésiste", "Audioprothésiste"),
    "28": ("Opticien-lunetier", "Opticienne-lunetière"),
    "40": ("Chirurgien-dentiste", "Chirurgienne-dentiste"),
    "50": ("Sage-femme", "Sage-femme"),
    "60": ("Infirmier", "Infirmière"),
    "70": ("Masseur-kinésithérapeute", "Masseuse-kinésithérapeute"),
    "80": ("Pédicure-podologue", "Pédicure-podologue"),
    "91": ("Orthophoniste", "Orthophoniste"),
    "92": ("Orthoptiste", "Orthoptiste"),
    "94": ("Ergothérapeute", "Ergothérapeute"),
    "95": ("Diététicien", "Diététicienne"),
    "96": ("Psychomotricien", "Psychomotricienne"),
    "98": ("Manipulateur en électroradiologie médicale", "Manipulatrice en électroradiologie médicale"),
}

# TRE_R11-CiviliteExercice: only the titles written before a name (MC, MG, PC, PG are ranks).
_CIVILITIES: dict[str, str] = {"DR": "Dr", "PR": "Pr"}


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _first_exercice(userinfo: Mapping[str, Any]) -> Mapping[str, Any]:
    """``SubjectRefPro.exercices[0]``, or an empty mapping when userinfo has another shape."""
    ref = userinfo.get("SubjectRefPro")
    exercices = ref.get("exercices") if isinstance(ref, Mapping) else None
    if isinstance(exercices, list) and exercices and isinstance(exercices[0], Mapping):
        return exercices[0]
    return {}


def profession_label(userinfo: Mapping[str, Any]) -> str | None:
    """The profession of the first exercise (« Médecin », « Infirmière »…), or None when unknown.

    Falls back to ``SubjectRole`` (``"10^1.2.250.1.213.1.1.5.5"``) when ``SubjectRefPro`` is absent.
    The feminine form follows ``codeCivilite`` (MME, MLLE), wherever the layout puts it.
    """
    code = _text(_first_exercice(userinfo).get("codeProfession"))
    if not code:
        roles = userinfo.get("SubjectRole")
        if isinstance(roles, list) and roles and isinstance(roles[0], str):
            code = roles[0].split("^", 1)[0].strip()
    labels = _PROFESSIONS.get(code)
    if labels is None:
        return None
    return labels[1] if _civility(userinfo) in {"MME", "MLLE"} else labels[0]


def _civility(userinfo: Mapping[str, Any]) -> str:
    """``codeCivilite``: inside ``SubjectRefPro`` (BAS samples) or at the top level (EDIT identities
    of late 2023, ad2ien/prosante-connect-synapse-module tests/test_mapping.py)."""
    ref = userinfo.get("SubjectRefPro")
    inside = _text(ref.get("codeCivilite")) if isinstance(ref, Mapping) else ""
    return (inside or _text(userinfo.get("codeCivilite"))).upper()


def civility_prefix(userinfo: Mapping[str, Any]) -> str | None:
    """« Dr » (or « Pr ») from ``codeCiviliteDexercice``; None otherwise."""
    return _CIVILITIES.get(_text(_first_exercice(userinfo).get("codeCiviliteDexercice")).upper())


def display_name(userinfo: Mapping[str, Any]) -> str:
    """« Dr Kit DOC0042788 »: civility, first name, family name as the PS practises under them.

    The exercise names come first (they are what colleagues know), then ``given_name`` and
    ``family_name``. An all-capitals first name is put in title case; the family name keeps PSC's
    capitals, as French usage writes it. Empty when userinfo carries no name at all.
    """
    exercice = _first_exercice(userinfo)
    given = _text(exercice.get("prenomDexercice")) or _text(userinfo.get("given_name"))
    family = _text(exercice.get("nomDexercice")) or _text(userinfo.get("family_name"))
    if not (given or family):
        return ""
    if given.isupper():
        given = given.title()
    return " ".join(part for part in (civility_prefix(userinfo), given, family) if part)
