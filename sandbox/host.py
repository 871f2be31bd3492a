"""A local stand-in for the Azure Functions host: serves a ``func.FunctionApp`` over WSGI.

Functions Core Tools cannot be installed here, so this host dispatches requests to the very
functions that ``app.get_functions()`` returns, with the route templates and methods they declare
(``routePrefix`` is "" as in ``host.json``). It passes method, route parameters, query, headers,
body and status through unchanged, and keeps repeated response headers such as several
``Set-Cookie``. There is no copy of the routes: add a function to the app and it is served.

Route templates follow the Functions host (ASP.NET Core routing): ``{name}``, ``{name?}``,
``{name:constraint}`` and the catch-all ``{*rest}``. Literal segments match case-insensitively, as
in the real host.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

log = logging.getLogger("sandbox.host")

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]+)?(\??)\}")


@dataclass(frozen=True)
class Route:
    """One HTTP function of the app, with its compiled route template."""

    name: str
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    handler: Callable[..., Any]
    param_name: str


def compile_template(template: str) -> re.Pattern[str]:
    """Turn a Functions route template into a regular expression with named groups."""
    pattern = ""
    position = 0
    for match in _PARAM.finditer(template):
        literal = template[position : match.start()]
        pattern += re.escape(literal)
        catch_all, name, optional = match.groups()
        if catch_all:
            pattern += f"(?P<{name}>.*)"
        elif optional:
            # An optional last segment also makes its leading slash optional.
            if pattern.endswith("/"):
                pattern = pattern[:-1] + f"(?:/(?P<{name}>[^/]+))?"
            else:
                pattern += f"(?P<{name}>[^/]*)"
        else:
            pattern += f"(?P<{name}>[^/]+)"
        position = match.end()
    pattern += re.escape(template[position:])
    return re.compile(f"^{pattern}/?$", re.IGNORECASE)


_indexed: dict[int, list[Any]] = {}


def functions_of(app: func.FunctionApp) -> list[Any]:
    """``app.get_functions()``, indexed once per app.

    ``FunctionApp.get_functions()`` may be called only once per app (a second call sees the app's
    own functions as duplicates), as the real worker indexes an app once.
    """
    if id(app) not in _indexed:
        _indexed[id(app)] = app.get_functions()
    return _indexed[id(app)]


def routes_of(app: func.FunctionApp) -> list[Route]:
    """Every HTTP-triggered function of ``app``."""
    routes = []
    for function in functions_of(app):
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        template = (trigger.route or function.get_function_name()).strip("/")
        methods = frozenset(
            str(getattr(method, "value", method)).upper() for method in (trigger.methods or [])
        ) or frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
        routes.append(
            Route(
                name=function.get_function_name(),
                template=template,
                pattern=compile_template(template),
                methods=methods,
                handler=function.get_user_function(),
                param_name=trigger.name,
            )
        )
    # Literal routes before parameterised ones, as ASP.NET Core orders by specificity.
    routes.sort(key=lambda route: (route.template.count("{"), -len(route.template)))
    return routes


class FunctionsHost:
    """A WSGI application that invokes the app's HTTP functions.

    With ``traced``, each invocation is an OpenTelemetry server span (an Application Insights request)
    named by the method and route template, as the Functions host records one in OpenTelemetry mode:
    never the raw URL, whose query carries codes and states.
    """

    def __init__(self, app: func.FunctionApp, *, traced: bool = False) -> None:
        self.routes = routes_of(app)
        self.traced = traced

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").strip("/")
        method = environ["REQUEST_METHOD"].upper()
        matched = [(route, route.pattern.match(path)) for route in self.routes]
        candidates = [(route, match) for route, match in matched if match]
        if not candidates:
            return _plain(start_response, 404, "Not Found")
        allowed = [(route, match) for route, match in candidates if method in route.methods]
        if not allowed:
            return _plain(start_response, 405, "Method Not Allowed")
        route, match = allowed[0]
        if not self.traced:
            return self._invoke(route, match, environ, start_response)
        from sandbox.host_tracing import invocation_span

        with invocation_span(route.template, environ) as record_status:
            return self._invoke(route, match, environ, _recording(start_response, record_status))

    def _invoke(
        self, route: Route, match: re.Match[str], environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _to_http_request(environ, {k: v for k, v in match.groupdict().items() if v is not None})
        try:
            response = route.handler(**{route.param_name: request})
        except Exception:
            # The real host answers 500 with no body; the stack trace goes to the log only.
            log.error("function %s failed:\n%s", route.name, traceback.format_exc())
            return _plain(start_response, 500, "")
        headers = list(response.headers.to_wsgi_list())
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", f"{response.mimetype}; charset={response.charset}"))
        body = response.get_body() or b""
        start_response(f"{response.status_code} {_reason(response.status_code)}", headers)
        return [body]


def _recording(start_response: Callable[..., Any], record: Callable[[int], None]) -> Callable[..., Any]:
    def start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        record(int(status.split(" ", 1)[0]))
        return start_response(status, headers, *args)

    return start


def _to_http_request(environ: dict[str, Any], route_params: dict[str, str]) -> func.HttpRequest:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    # The platform's front end appends the client's address to X-Forwarded-For, as App Service does.
    client = environ.get("REMOTE_ADDR", "")
    if client:
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {client}" if forwarded else client
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    scheme = environ.get("wsgi.url_scheme", "https")
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    query_string = environ.get("QUERY_STRING", "")
    url = f"{scheme}://{host}{environ.get('PATH_INFO', '/')}" + (f"?{query_string}" if query_string else "")
    # The real host gives the first value of a repeated query parameter.
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        params.setdefault(key, value)
    return func.HttpRequest(
        method=environ["REQUEST_METHOD"].upper(),
        url=url,
        headers=headers,
        params=params,
        route_params=route_params,
        body=body,
    )


def _plain(start_response: Callable[..., Any], status: int, text: str) -> list[bytes]:
    start_response(f"{status} {_reason(status)}", [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
