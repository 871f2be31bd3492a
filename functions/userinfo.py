"""``GET|POST /userinfo``: PSC-shaped claims for a Bearer access token."""

from __future__ import annotations

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.oidc.userinfo import handle_userinfo
from sanscouture.oidc.userinfo import userinfo_error_response
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def userinfo(request: Request) -> Response:
    """OIDC Core 5.3; token errors answer with an RFC 6750 3 challenge."""
    wired = services()
    return handle_userinfo(request, issuer=wired.settings.issuer, decoder=wired.key_ring, grants=wired.tables["codes"],
                           clock=wired.clock)


bp.route(route="userinfo", methods=["GET", "POST"])(endpoint(userinfo, render_error=userinfo_error_response))
