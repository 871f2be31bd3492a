"""``GET|POST /userinfo``: PSC-shaped claims for a Bearer access token."""

from __future__ import annotations

import logging

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import InvalidTokenError
from sanscouture.oidc.userinfo import bearer_error_response
from sanscouture.oidc.userinfo import handle_userinfo
from sanscouture.web import Request
from sanscouture.web import Response

log = logging.getLogger("sanscouture.http")

bp = func.Blueprint()


def userinfo(request: Request) -> Response:
    """OIDC Core 5.3; token errors answer with an RFC 6750 3 challenge."""
    wired = services()
    try:
        return handle_userinfo(
            request, issuer=wired.settings.issuer, decoder=wired.key_ring, tokens=wired.tables["tokens"]
        )
    except (InvalidTokenError, InvalidRequestError) as error:
        log.warning("request refused", extra={"error": error.error, "error_detail": error.detail, "route": "userinfo"})
        return bearer_error_response(error)


bp.route(route="userinfo", methods=["GET", "POST"])(endpoint(userinfo))
