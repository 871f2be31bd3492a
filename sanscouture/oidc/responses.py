"""Authorization responses sent back to the relying party (RFC 6749 4.1.2, RFC 9207)."""

from __future__ import annotations

from sanscouture.errors import OAuthError
from sanscouture.models import AuthorizationRequest
from sanscouture.web import Response
from sanscouture.web import add_query


def code_response(request: AuthorizationRequest, code: str, issuer: str, cookies: tuple[str, ...] = ()) -> Response:
    """302 to the redirect_uri with ``code``, ``state`` (when sent) and ``iss`` (RFC 9207 2)."""
    params = {"code": code}
    if request.state is not None:
        params["state"] = request.state
    params["iss"] = issuer
    return Response.redirect(add_query(request.redirect_uri, params), cookies=cookies)


def error_redirect_url(
    redirect_uri: str, state: str | None, issuer: str, error: str, description: str = ""
) -> str:
    """The redirect_uri carrying an error (RFC 6749 4.1.2.1) with ``state`` and ``iss``."""
    params = {"error": error}
    if description:
        params["error_description"] = description
    if state is not None:
        params["state"] = state
    params["iss"] = issuer
    return add_query(redirect_uri, params)


def error_redirect(
    request: AuthorizationRequest, issuer: str, error: OAuthError, cookies: tuple[str, ...] = ()
) -> Response:
    """302 to the validated redirect_uri with the error, ``state`` and ``iss``."""
    return Response.redirect(
        error_redirect_url(request.redirect_uri, request.state, issuer, error.error, error.description),
        cookies=cookies,
    )
