"""« Mes appairages » (``/compte``): a professional sees the pairing of their account and may remove it.

docs/design.md "Mes appairages". The page is reached only through a fresh Entra ID authentication
(``prompt=login``, ``max_age=0``, and an ``auth_time`` after the broker asked: a Windows session left
unlocked on a shared workstation does not open it), carried by a journey exactly like a sign-in's
(:mod:`sanscouture.journeys`): sealed in its own ``__Host-`` cookie, so Entra's return (the shared
``/callback``, whose ``state`` is the journey id) is bound to the browser that started it, and every
form carries the journey's CSRF token. The journey has no relying party's request and lives 15
minutes from ``GET /compte``: past that, the page asks for a new authentication.

Steps: ``GET /compte`` → Entra → ``/callback`` (:func:`entra_returned`) → 303 ``GET /compte?j=`` (the
page, the pairing read) → ``GET /compte/supprimer?j=`` (the confirmation, which remembers the version of
the pairing it showed) → ``POST /compte/supprimer?j=`` (CSRF; the removal, conditional on that version:
:func:`sanscouture.pairings.remove_pairing`) → 303 ``GET /compte?j=`` (the result page).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.entra_policy import check_auth_fresh
from sanscouture.entra_policy import check_required_acrs
from sanscouture.entra_policy import check_tenant_allowed
from sanscouture.error_pages import error_page
from sanscouture.error_pages import too_many_requests_page
from sanscouture.errors import SignInRefused
from sanscouture.journey import UPSTREAM_CLOCK_SKEW
from sanscouture.journey import Broker
from sanscouture.journeys import Journey
from sanscouture.journeys import Step
from sanscouture.limits import SlowDownError
from sanscouture.models import Binding
from sanscouture.models import EntraAccount
from sanscouture.pages import render as pages
from sanscouture.pairings import remove_pairing
from sanscouture.web import Request
from sanscouture.web import Response

log = logging.getLogger("sanscouture.account")

PATH = "/compte"
REMOVE_PATH = "/compte/supprimer"


def account_page(broker: Broker, request: Request) -> Response:
    """``GET /compte``: the page of an authenticated journey (``j``), else a fresh Entra authentication."""
    journey = broker.journeys.load(request.cookies, request.query.get("j"))
    if journey is None or journey.expired(broker.clock()) or journey.step not in (Step.ACCOUNT, Step.ACCOUNT_REMOVED):
        return _start(broker, request)
    assert journey.account is not None
    if journey.step == Step.ACCOUNT_REMOVED:
        return Response.html(pages.render_account_removed(entra_username=journey.account.preferred_username))
    binding = broker.bindings.find(journey.account.tid, journey.account.oid)
    page = pages.render_account(
        entra_name=journey.account.name,
        entra_username=journey.account.preferred_username,
        pairing=_view(binding) if binding is not None else None,
        remove_url=f"{REMOVE_PATH}?j={journey.id}",
    )
    return Response.html(page)


def _start(broker: Broker, request: Request) -> Response:
    """A new journey sent to Entra for a fresh authentication (counted in the per-source limit)."""
    try:
        broker.spend_journey(request)
    except SlowDownError as error:
        return too_many_requests_page(error)
    journey, url = _sent_to_entra(broker, broker.journeys.new(Step.ACCOUNT_ENTRA, None))
    return Response.redirect(url, cookies=broker.journeys.started(request.cookies, journey))


def _sent_to_entra(broker: Broker, journey: Journey) -> tuple[Journey, str]:
    """Entra asked for a new authentication whatever its session (``prompt=login``, ``max_age=0``);
    the second time, the journey remembers that it asked again."""
    start = broker.entra.begin(redirect_uri=broker.url("/callback"), state=journey.id, prompt="login",
                               login_hint=None, max_age=0)
    sent = journey.advance(entra_flow=dict(start.flow), entra_asked_at=int(broker.clock()),
                           entra_fresh_asked=journey.entra_asked_at != 0)
    return sent, start.url


def entra_returned(broker: Broker, journey: Journey, params: Mapping[str, str]) -> Response:
    """Entra's answer to a « Mes appairages » journey (from ``/callback``, which found this browser's
    journey by its ``state``): the account, if Entra authenticated it afresh, then the page."""
    if journey.expired(broker.clock()) or journey.entra_flow is None:
        return error_page("account_expired", status=400, cookies=(broker.journeys.ended(journey),))
    try:
        account = broker.entra.finish(journey.entra_flow, params)
        check_tenant_allowed(account, broker.settings)
        check_auth_fresh(account, broker.settings, broker.clock())
        check_required_acrs(account, broker.settings)
        if not _fresh(journey, account):
            if journey.entra_fresh_asked:  # Entra answered with its session again: the page stays closed
                raise SignInRefused("account_auth_stale", detail="entra: no fresh authentication for /compte")
            again, url = _sent_to_entra(broker, journey)
            return Response.redirect(url, status=303, cookies=(broker.journeys.cookie(again),))
    except SignInRefused as refusal:
        reference = secrets.token_hex(4)
        log.warning("mes appairages refused", extra={"reason": refusal.reason, "error_detail": refusal.detail,
                                                      "reference": reference})
        return error_page(refusal.reason, status=403, reference=reference, cookies=(broker.journeys.ended(journey),))
    authenticated = journey.advance(step=Step.ACCOUNT, account=account, entra_flow=None)
    return Response.redirect(broker.url(f"{PATH}?j={journey.id}"), status=303,
                             cookies=(broker.journeys.cookie(authenticated),))


def _fresh(journey: Journey, account: EntraAccount) -> bool:
    """Authenticated after the broker sent the person to Entra (give or take the clock skew), not
    hours ago from a Windows session or an Entra session that ignored ``prompt=login``."""
    return account.auth_time >= journey.entra_asked_at - UPSTREAM_CLOCK_SKEW


def removal_page(broker: Broker, request: Request) -> Response:
    """``GET /compte/supprimer``: the confirmation; it changes nothing but remembers (in the journey)
    the version of the pairing it shows, the only one « Confirmer la suppression » may remove."""
    journey, failure = _load(broker, request)
    if journey is None:
        return failure
    assert journey.account is not None
    binding = broker.bindings.find(journey.account.tid, journey.account.oid)
    if binding is None:  # nothing to remove: the page says « Aucun appairage »
        return Response.redirect(broker.url(f"{PATH}?j={journey.id}"), status=303)
    shown = journey.advance(shown_sub=binding.identity.sub, shown_etag=binding.etag, shown_identity=None)
    page = pages.render_account_remove(
        entra_username=journey.account.preferred_username,
        identity_name=_name(binding),
        masked_national_id=binding.identity.masked_national_id,
        form_action=f"{REMOVE_PATH}?j={journey.id}",
        csrf_token=journey.csrf,
    )
    return Response.html(page, cookies=(broker.journeys.cookie(shown),))


def remove(broker: Broker, request: Request) -> Response:
    """``POST /compte/supprimer``: « Confirmer la suppression » (CSRF-checked) removes the pairing the
    confirmation showed, then 303 to the result page; « Annuler » goes back to the page."""
    journey, failure = _load(broker, request)
    if journey is None:
        return failure
    if not journey.csrf_ok(request.form.get("csrf_token")):
        return error_page("csrf", status=403)
    assert journey.account is not None
    back = broker.url(f"{PATH}?j={journey.id}")
    action = request.form.get("action")
    if action == "cancel":
        return Response.redirect(back, status=303)
    if action != "remove" or not journey.shown_etag:  # not from the confirmation page
        return error_page("stale_step", status=409)
    account = journey.account
    binding = broker.bindings.find(account.tid, account.oid)
    if binding is None or binding.etag != journey.shown_etag:
        return error_page("account_changed", status=409)
    if remove_pairing(broker.tables, binding, by="professional", clock=broker.clock,
                      outbox=broker.outbox) is None:
        return error_page("account_changed", status=409)  # re-paired or removed between read and delete
    cookies = [broker.journeys.cookie(journey.advance(step=Step.ACCOUNT_REMOVED, shown_etag=None, shown_sub=None))]
    session = broker.sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is not None and (session.account.tid, session.account.oid) == (account.tid, account.oid):
        cookies.append(broker.sessions.cleared())  # this browser's session of the account ends visibly too
    return Response.redirect(back, status=303, cookies=tuple(cookies))


def _load(broker: Broker, request: Request) -> tuple[Journey | None, Response]:
    """This browser's authenticated « Mes appairages » journey named by ``j``, or the page saying why not."""
    journey = broker.journeys.load(request.cookies, request.query.get("j"))
    if journey is None:  # another browser's journey, or none at all
        return None, error_page("csrf", status=403)
    if journey.expired(broker.clock()):
        return None, error_page("account_expired", status=400)
    if journey.step != Step.ACCOUNT or journey.account is None:
        return None, error_page("stale_step", status=409)
    return journey, Response()


def _name(binding: Binding) -> str:
    identity = binding.identity
    return pages.display_name(identity.claims) or f"{identity.given_name} {identity.family_name}".strip()


def _view(binding: Binding) -> pages.PairingView:
    identity = binding.identity
    return pages.PairingView(
        identity_name=_name(binding),
        profession=pages.profession_label(identity.claims),
        masked_national_id=identity.masked_national_id,
        auth_mode_label=pages.auth_mode_label(identity.auth_mode),
        paired_at=binding.paired_at,
        last_used_at=binding.last_used_at,
    )
