"""Conversions between Azure Functions HTTP objects and the core's :mod:`sanscouture.web` values.

This module and the blueprints are the only code that imports ``azure.functions``. Every handler is
wrapped by :func:`endpoint`, the one place that turns an escaped exception into a response: an
:class:`~sanscouture.errors.OAuthError` becomes its JSON error, anything else a logged 500 that
shows no stack trace.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import azure.functions as func

from sanscouture import scrub
from sanscouture.adapters import telemetry
from sanscouture.error_pages import error_page
from sanscouture.errors import OAuthError
from sanscouture.errors import RequestTooLargeError
from sanscouture.errors import ServerError
from sanscouture.errors import SignInRefused
from sanscouture.errors import TemporarilyUnavailableError
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.web import MAX_FIELDS
from sanscouture.web import NO_STORE
from sanscouture.web import Request
from sanscouture.web import Response
from sanscouture.web import check_limits
from sanscouture.web import first_values
from sanscouture.web import parse_form

log = logging.getLogger("sanscouture.http")
# Every log record of the worker is scrubbed of query strings, tokens and national identifiers.
scrub.install()
# When the worker exports telemetry (Azure: PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY), its spans and log
# records are scrubbed too before they leave; with telemetry off nothing of OpenTelemetry is imported.
if telemetry.enabled():
    telemetry.install_scrubbers()
# Audit events and refusals are INFO/WARNING records of the "sanscouture" loggers: Application Insights
# (through the worker's OpenTelemetry export) keeps them as traces with their fields as custom dimensions.
logging.getLogger("sanscouture").setLevel(logging.INFO)

Handler = Callable[[Request], Response]

# Every response, JSON or page: browsers keep to https for the broker for a year (RFC 6797).
HSTS = "max-age=31536000; includeSubDomains"


def to_request(req: func.HttpRequest) -> Request:
    body = req.get_body() or b""
    headers = {key.lower(): value for key, value in req.headers.items()}
    check_limits(headers, body)
    form, repeated_form = parse_form(body, headers.get("content-type"))
    # Read the query from the URL: the host's params dict hides repeated names (RFC 6749 3.1 forbids them).
    query_text = urlsplit(req.url).query
    if query_text.count("&") >= MAX_FIELDS:
        raise RequestTooLargeError(detail=f"{query_text.count('&') + 1} query parameters")
    query, repeated_query = first_values(parse_qsl(query_text, keep_blank_values=True))
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
    http_response.headers["Strict-Transport-Security"] = HSTS
    return http_response


ErrorRenderer = Callable[[OAuthError], Response]


def error_response(error: OAuthError) -> Response:
    """The JSON error of RFC 6749 5.2, never cached. Endpoints that answer 401 pass their own
    renderer to :func:`endpoint`, with the challenge of the scheme they accept (RFC 9110 11.6.1)."""
    return Response.json(error.body(), status=error.status, headers=NO_STORE)


def endpoint(
    handler: Handler, render_error: ErrorRenderer = error_response
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Adapt a protocol handler: an OAuth error becomes its JSON answer, anything else a logged 500."""

    def respond(error: Exception, route: str) -> Response:
        if isinstance(error, OAuthError):
            log.warning("request refused", extra={"error": error.error, "error_detail": error.detail, "route": route})
            return render_error(error)
        log.exception("unexpected failure", extra={"route": route})
        return error_response(ServerError())

    return _adapt(handler, respond)


def browser_endpoint(handler: Handler) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Adapt a handler of pages a person sees: failures become French error pages.

    An outage (Table Storage, Entra ID, PSC) is a 503 page saying to try again; anything unexpected
    is a 500 page with a short reference that is also in the log, never a stack trace.
    """

    def respond(error: Exception, route: str) -> Response:
        # An outage's record carries its exception (an Application Insights exception, with the failing
        # call's stack) and the reference the page shows, so that support finds one from the other.
        if isinstance(error, UpstreamUnavailableError):
            reference = secrets.token_hex(4)
            log.warning("upstream unavailable", exc_info=error,
                        extra={"error_detail": error.detail, "route": route, "reference": reference})
            return error_page("upstream_unavailable", status=503, reference=reference)
        if isinstance(error, TemporarilyUnavailableError):
            reference = secrets.token_hex(4)
            log.warning("dependency unavailable", exc_info=error,
                        extra={"error_detail": error.detail, "route": route, "reference": reference})
            return error_page("temporarily_unavailable", status=503, reference=reference)
        if isinstance(error, SignInRefused):
            log.warning("sign-in refused", extra={"reason": error.reason, "error_detail": error.detail, "route": route})
            return error_page(error.reason, status=403)
        if isinstance(error, OAuthError):
            log.warning("request refused", extra={"error": error.error, "error_detail": error.detail, "route": route})
            return error_page("invalid_request", status=error.status if error.status < 500 else 400)
        reference = secrets.token_hex(4)
        log.exception("unexpected failure", extra={"route": route, "reference": reference})
        return error_page("server_error", status=500, reference=reference)

    return _adapt(handler, respond)


def _adapt(
    handler: Handler, respond: Callable[[Exception, str], Response]
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """The one place where an exception escaping a handler becomes a response."""

    # No functools.wraps: the Functions worker reads the signature (the binding is named ``req``),
    # and wraps() would make it see the core handler's signature instead.
    def run(req: func.HttpRequest) -> func.HttpResponse:
        try:
            request = to_request(req)
            response = handler(request)
        except Exception as error:
            response = respond(error, handler.__name__)
        if response.status == 302 and req.method.upper() == "POST":
            # After a form POST, 303 See Other: the next request is a GET whatever the browser (RFC 9110 15.4.4).
            response = dataclasses.replace(response, status=303)
        return to_http_response(response)

    run.__name__ = handler.__name__
    run.__qualname__ = handler.__qualname__
    run.__doc__ = handler.__doc__
    return run
