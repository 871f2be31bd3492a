"""``POST /par``: pushed authorization requests (RFC 9126).

GET is routed too, so that the core answers 405 with ``Allow: POST`` (RFC 9126 2.3) the same way on
the Functions host and in the sandbox.
"""

from __future__ import annotations

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.oidc.par import ParEndpoint
from sanscouture.oidc.par import handle_par_request
from sanscouture.oidc.par import par_error_response
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def par(request: Request) -> Response:
    """RFC 9126 2: authenticate the client as /token does, validate and keep the request for 60 s."""
    wired = services()
    context = ParEndpoint(
        settings=wired.settings, tables=wired.tables, client_jwks=wired.client_jwks,
        failed_client_auth=wired.limits.failed_client_auth,
    )
    return handle_par_request(request, context)


bp.route(route="par", methods=["GET", "POST"])(endpoint(par, render_error=par_error_response))
