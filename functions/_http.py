"""Conversions between Azure Functions HTTP objects and the core's :mod:`sanscouture.web` values.

This module and the blueprints are the only code that imports ``azure.functions``. Every handler is
wrapped by :func:`endpoint`, the one place that turns an escaped exception into a response: an
:class:`~sanscouture.errors.OAuthError` becomes its JSON error, anything else a logged 500 that
shows no stack trace.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import azure.functions as func

from sanscouture.errors import OAuthError
from sanscouture.errors import ServerError
from sanscouture.web import NO_STORE
from sanscouture.web import Request
from sanscouture.web import Response
from sanscouture.web import first_values
from sanscouture.web import parse_form

log = logging.getLogger("sanscouture.http")
# Audit events and refusals are INFO/WARNING records of the "sanscouture" loggers: Application Insights
# (through the worker's OpenTelemetry export) keeps them as traces with their fields as custom dimensions.
logging.getLogger("sanscouture").setLevel(logging.INFO)

Handler = Callable[[Request], Response]


def to_request(req: func.HttpRequest) -> Request:
    body = req.get_body() or b""
    headers = {key.lower(): value for key, value in req.headers.items()}
    form, repeated_form = parse_form(body, headers.get("content-type"))
    # Read the query from the URL: the host's params dict hides repeated names (RFC 6749 3.1 forbids them).
    query, repeated_query = first_values(parse_qsl(urlsplit(req.url).query, keep_blank_values=True))
    return Request(
        method=req.method.upper(),
        url=req.url,
        headers=headers,
        query=query,
        form=form,
        body=body,
        route_params=dict(req.route_params or {}),
        repeated=repeated_query | repeated_form,
    )


def to_http_response(response: Response) -> func.HttpResponse:
    content_type = response.header("Content-Type") or "text/plain; charset=utf-8"
    mimetype = content_type.split(";")[0].strip()
    http_response = func.HttpResponse(body=response.body, status_code=response.status, mimetype=mimetype)
    for name, value in response.headers:
        if name.lower() == "content-type":
            continue
        # werkzeug Headers.add keeps repeated names (several Set-Cookie headers).
        http_response.headers.add(name, value)
    http_response.headers["Content-Type"] = content_type
    return http_response


ErrorRenderer = Callable[[OAuthError], Response]


def error_response(error: OAuthError) -> Response:
    """The JSON error of RFC 6749 5.2, never cached. Endpoints that answer 401 pass their own
    renderer to :func:`endpoint`, with the challenge of the scheme they accept (RFC 9110 11.6.1)."""
    return Response.json(error.body(), status=error.status, headers=NO_STORE)


def endpoint(
    handler: Handler, render_error: ErrorRenderer = error_response
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Adapt a core handler to an Azure Functions HTTP handler, with the last-resort error handling."""

    # No functools.wraps: the Functions worker reads the signature (the binding is named ``req``),
    # and wraps() would make it see the core handler's signature instead.
    def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            response = handler(to_request(req))
        except OAuthError as error:
            log.warning(
                "request refused",
                extra={"error": error.error, "error_detail": error.detail, "route": handler.__name__},
            )
            response = render_error(error)
        except Exception:
            log.exception("unexpected failure", extra={"route": handler.__name__})
            response = error_response(ServerError())
        return to_http_response(response)

    run.__name__ = handler.__name__
    run.__qualname__ = handler.__qualname__
    run.__doc__ = handler.__doc__
    return run


def browser_endpoint(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Like :func:`endpoint`, for pages a person sees: failures become French error pages.

    An outage (Table Storage, Entra ID, PSC) is a 503 page saying to try again; anything unexpected
    is a 500 page with a short reference that is also in the log, never a stack trace.
    """
    from sanscouture.error_pages import error_page
    from sanscouture.errors import SignInRefused
    from sanscouture.errors import TemporarilyUnavailableError
    from sanscouture.errors import UpstreamUnavailableError

    def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            response = handler(to_request(req))
        except UpstreamUnavailableError as error:
            log.warning("upstream unavailable", extra={"error_detail": error.detail, "route": handler.__name__})
            response = error_page("upstream_unavailable", status=503)
        except TemporarilyUnavailableError as error:
            log.warning("dependency unavailable", extra={"error_detail": error.detail, "route": handler.__name__})
            response = error_page("temporarily_unavailable", status=503)
        except SignInRefused as refusal:
            log.warning("sign-in refused", extra={"reason": refusal.reason, "error_detail": refusal.detail})
            response = error_page(refusal.reason, status=403)
        except OAuthError as error:
            log.warning("request refused", extra={"error": error.error, "error_detail": error.detail})
            response = error_page("invalid_request", status=400)
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("unexpected failure", extra={"route": handler.__name__, "reference": reference})
            response = error_page("server_error", status=500, reference=reference)
        return to_http_response(response)

    run.__name__ = handler.__name__
    run.__qualname__ = handler.__qualname__
    run.__doc__ = handler.__doc__
    return run
