"""The request telemetry of the sandbox's Functions host (imported only when telemetry is on).

In Azure, the Functions host (``"telemetryMode": "OpenTelemetry"``) records one request per
invocation and the worker's spans and logs are its children. The sandbox's host does the same with the
global tracer that :func:`sanscouture.adapters.telemetry.configure_like_the_worker` set up: a server span named
``<METHOD> /<route template>``, with the route, the status code and the URL without its query.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode

_tracer = trace.get_tracer("sandbox.host")


@contextmanager
def invocation_span(template: str, environ: dict[str, Any]) -> Iterator[Callable[[int], None]]:
    """A server span around one invocation; yields the function that records the response status."""
    method = environ["REQUEST_METHOD"].upper()
    route = "/" + template
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    attributes = {
        "http.request.method": method,
        "http.route": route,
        "url.scheme": environ.get("wsgi.url_scheme", "https"),
        # The path only: the query of /authorize, /callback… carries codes, states and login hints.
        "url.full": f"{environ.get('wsgi.url_scheme', 'https')}://{host}{environ.get('PATH_INFO', '/')}",
    }
    with _tracer.start_as_current_span(f"{method} {route}", kind=SpanKind.SERVER, attributes=attributes) as span:

        def record(status: int) -> None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))

        yield record
