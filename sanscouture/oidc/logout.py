"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0, section 2 and 3).

With a valid ``id_token_hint`` (signed by the broker, possibly expired), the session ends at once and
the browser goes to the ``post_logout_redirect_uri`` registered for the hint's client, with ``state``.
Without one, the broker never redirects (an attacker could otherwise log people out through any
site): it asks the person to confirm, with a CSRF-protected form, and shows the logged-out page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

from sanscouture.cookies import SESSION_COOKIE
from sanscouture.cookies import clear_cookie
from sanscouture.error_pages import error_page
from sanscouture.error_pages import too_many_requests_page
from sanscouture.journey import end_session
from sanscouture.journeys import Step
from sanscouture.journeys import cookieless_post_as_get
from sanscouture.limits import SlowDownError
from sanscouture.pages import render as pages
from sanscouture.web import Request
from sanscouture.web import Response
from sanscouture.web import add_query

if TYPE_CHECKING:
    from sanscouture.journey import Broker

log = logging.getLogger("sanscouture.logout")

HintDecoder = Callable[[str], dict[str, Any]]


def logout(broker: Broker, request: Request, decode_hint: HintDecoder) -> Response:
    """GET/POST /logout: the RP's request, or the person's confirmation (POST with csrf_token)."""
    if _is_confirmation(request):
        return _confirmed(broker, request)
    as_get = cookieless_post_as_get(request, broker.settings.issuer, "/logout")
    if as_get is not None:
        return as_get
    params = request.params
    hint = params.get("id_token_hint")
    claims = _verified_hint(hint, decode_hint) if hint else None
    if hint and claims is None:
        return error_page("logout_invalid", status=400)
    client_id = params.get("client_id") or (claims or {}).get("aud")
    if isinstance(client_id, list):
        client_id = client_id[0] if len(client_id) == 1 else None
    client = broker.settings.client(client_id) if isinstance(client_id, str) else None
    if claims is not None and params.get("client_id") and params.get("client_id") != claims.get("aud"):
        return error_page("logout_invalid", status=400)
    redirect = params.get("post_logout_redirect_uri")
    if redirect is not None and (client is None or redirect not in client.post_logout_redirect_uris):
        return error_page("logout_invalid", status=400)
    session = broker.sessions.find(request.cookies.get(SESSION_COOKIE))
    if claims is None or (session is not None and session.sub != claims.get("sub")):
        # No hint, or a hint about someone else than who is signed in here: the person decides (section 2).
        return _ask_confirmation(broker, request, client.client_name if client else None)
    _end_session(broker, request, client_id=client.client_id if client else "")
    cookies = (clear_cookie(SESSION_COOKIE),)
    if redirect is not None:
        target = add_query(redirect, {"state": params["state"]}) if params.get("state") else redirect
        return Response.redirect(target, cookies=cookies)
    return Response.html(pages.render_logged_out(client_name=client.client_name if client else None,
                                                 return_url=None), cookies=cookies)


def _is_confirmation(request: Request) -> bool:
    """A POST of the confirmation form: it names its journey (``j``, never an RP logout parameter), so
    that one without its CSRF token is a refused confirmation (403, docs/design.md "Pages, cookies and
    CSRF"), not a new RP request."""
    return request.method == "POST" and ("j" in request.query or "j" in request.form or "csrf_token" in request.form)


def _verified_hint(hint: str, decode_hint: HintDecoder) -> dict[str, Any] | None:
    try:
        return decode_hint(hint)
    except Exception as error:
        log.info("logout: id_token_hint refused", extra={"error_detail": type(error).__name__})
        return None


def _ask_confirmation(broker: Broker, request: Request, client_name: str | None) -> Response:
    try:
        broker.spend_journey(request)  # the confirmation is a journey of its own
    except SlowDownError as error:
        return too_many_requests_page(error)
    journeys = broker.journeys
    journey = journeys.new(Step.LOGOUT, None)
    page = pages.render_logout_confirm(client_name=client_name, form_action=f"/logout?j={journey.id}",
                                      csrf_token=journey.csrf)
    return Response.html(page, cookies=journeys.started(request.cookies, journey))


def _confirmed(broker: Broker, request: Request) -> Response:
    journey = broker.journeys.load(request.cookies, request.query.get("j") or request.form.get("j"))
    if (
        journey is None
        or journey.expired(broker.clock())
        or journey.step != Step.LOGOUT
        or not journey.csrf_ok(request.form.get("csrf_token"))
    ):
        return error_page("csrf", status=403)
    _end_session(broker, request, client_id="")
    page = pages.render_logged_out(client_name=None, return_url=None)
    return Response.html(page, cookies=(clear_cookie(SESSION_COOKIE), broker.journeys.ended(journey)))


def _end_session(broker: Broker, request: Request, *, client_id: str) -> None:
    """The browser's session ends: listed in its pairing's row until it would have expired (a copy
    of its cookie is refused too), then audited."""
    session = broker.sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return
    # Listed as ended in its pairing's row, and announced on the back-channel logout queue to the
    # relying parties it signed in to (delivered later by the queue trigger: never waited on here).
    end_session(broker, session)
    broker.audit.record("logout", client_id=client_id, national_id=session.national_id)


