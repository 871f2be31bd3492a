"""``POST /token``: authorization code → tokens.

GET is routed too, so that the core answers ``invalid_request`` (RFC 6749 3.2) the same way on the
Functions host and in the sandbox, instead of a host-specific 404 or 405.
"""

from __future__ import annotations

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.oidc.token import TokenEndpoint
from sanscouture.oidc.token import handle_token_request
from sanscouture.oidc.token import token_error_response
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def token(request: Request) -> Response:
    """RFC 6749 4.1.3; invalid_client answers with its Basic challenge (RFC 6749 5.2)."""
    wired = services()
    context = TokenEndpoint(
        settings=wired.settings, tables=wired.tables, signer=wired.key_ring, client_jwks=wired.client_jwks,
        failed_client_auth=wired.limits.failed_client_auth, clock=wired.clock,
    )
    return handle_token_request(request, context)


bp.route(route="token", methods=["GET", "POST"])(endpoint(token, render_error=token_error_response))
