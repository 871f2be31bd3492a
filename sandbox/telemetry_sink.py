"""A local Application Insights ingestion endpoint: what the broker's telemetry would show in Azure.

The Azure Monitor exporter posts envelopes to ``<IngestionEndpoint>/v2.1/track`` (older exporters:
``/v2/track``): a JSON array, or newline-delimited JSON envelopes, possibly gzip'd. The sink accepts
both, answers as the ingestion API does (``{"itemsReceived": n, "itemsAccepted": n, "errors": []}``),
keeps the envelopes in memory and in ``telemetry.jsonl`` of the sandbox data directory, and shows
them: ``/`` lists requests, dependencies, traces and exceptions with their custom dimensions;
``/api/envelopes`` returns them as JSON (tests poll it); ``DELETE /api/envelopes`` forgets them.
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import os
import threading
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

# Telemetry type of an envelope (``data.baseType``) → what the portal calls it.
KINDS: Mapping[str, str] = {
    "RequestData": "request",
    "RemoteDependencyData": "dependency",
    "MessageData": "trace",
    "ExceptionData": "exception",
    "EventData": "event",
    "MetricData": "metric",
}


def connection_string(sink_url: str) -> str:
    """A connection string whose ingestion endpoint is the sink (the instrumentation key is made up)."""
    return (f"InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint={sink_url}/;"
            f"LiveEndpoint={sink_url}/")


def exporter_environment(sink_url: str) -> dict[str, str]:
    """The app settings that turn the worker's telemetry on, aimed at the sink, and nothing sent elsewhere.

    Statsbeat (the exporter's own usage metrics) and the OneSettings control plane would call Microsoft
    endpoints; sampling keeps every span (the default limits traces per second); the batch delays are
    kept when already set (tests shorten them).  Flask's instrumentation is off: the simulators and the
    demo service are Flask apps, not the broker.
    """
    return {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(sink_url),
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "flask",
        "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "1000"),
        "OTEL_BLRP_SCHEDULE_DELAY": os.environ.get("OTEL_BLRP_SCHEDULE_DELAY", "1000"),
    }


# Loggers of the sandbox's own machinery (the development servers' access log, the host stand-in):
# in Azure there is no such log, so it stays on the console and out of the broker's telemetry.
SANDBOX_LOGGERS = ("werkzeug", "sandbox")


def keep_sandbox_logs_out() -> None:
    """Filter the sandbox's own loggers out of the OpenTelemetry handler(s) on the root logger."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    def broker_only(record: logging.LogRecord) -> bool:
        return not any(record.name == name or record.name.startswith(name + ".") for name in SANDBOX_LOGGERS)

    for handler in logging.getLogger().handlers:
        if isinstance(handler, LoggingHandler):
            handler.addFilter(broker_only)


def decode(body: bytes, content_encoding: str = "") -> list[dict[str, Any]]:
    """The envelopes of one ingestion request: gzip'd or not, a JSON array or JSON lines."""
    if content_encoding.lower() == "gzip" or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8").strip()
    if not text:
        return []
    if text.startswith("["):
        parsed = json.loads(text)
        return [item for item in parsed if isinstance(item, dict)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def kind(envelope: Mapping[str, Any]) -> str:
    return KINDS.get(str(envelope.get("data", {}).get("baseType", "")), "other")


def base_data(envelope: Mapping[str, Any]) -> dict[str, Any]:
    data = envelope.get("data", {}).get("baseData", {})
    return dict(data) if isinstance(data, Mapping) else {}


class TelemetrySink:
    """The WSGI application of the sink, with the envelopes received so far."""

    def __init__(self, journal: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._envelopes: list[dict[str, Any]] = []
        self._journal = journal

    def envelopes(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._envelopes)

    def receive(self, envelopes: Iterable[dict[str, Any]]) -> int:
        received = list(envelopes)
        with self._lock:
            self._envelopes.extend(received)
            if self._journal is not None:
                with self._journal.open("a", encoding="utf-8") as journal:
                    journal.writelines(json.dumps(item, sort_keys=True) + "\n" for item in received)
        return len(received)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if request.method == "POST" and path in ("/v2.1/track", "/v2/track"):
            try:
                received = self.receive(decode(request.get_data(), request.headers.get("Content-Encoding", "")))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                return _json({"itemsReceived": 0, "itemsAccepted": 0,
                              "errors": [{"index": 0, "statusCode": 400, "message": str(error)}]}, 400)
            return _json({"itemsReceived": received, "itemsAccepted": received, "errors": []})
        if path.startswith("/QuickPulseService.svc"):
            # Live metrics polls here; nobody is watching (the portal's live view is not simulated).
            return Response(status=200, headers={"x-ms-qps-subscribed": "false"})
        if path == "/api/envelopes" and request.method == "GET":
            return _json(self.envelopes())
        if path == "/api/envelopes" and request.method == "DELETE":
            with self._lock:
                self._envelopes.clear()
            return Response(status=204)
        if path == "" and request.method == "GET":
            return Response(render(self.envelopes()), content_type="text/html; charset=utf-8")
        return Response("Not Found", status=404)


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, content_type="application/json")


def _summary(envelope: Mapping[str, Any]) -> str:
    data = base_data(envelope)
    what = kind(envelope)
    if what == "request":
        return f"{data.get('name', '')} → {data.get('responseCode', '')} ({data.get('duration', '')})"
    if what == "dependency":
        return f"{data.get('type', '')} {data.get('target', '')}: {data.get('name', '')} → {data.get('resultCode', '')}"
    if what == "exception":
        details = data.get("exceptions") or [{}]
        return f"{details[0].get('typeName', '')}: {details[0].get('message', '')}"
    return str(data.get("message") or data.get("name") or "")


def render(envelopes: list[dict[str, Any]]) -> str:
    """The page: one table per telemetry type, newest first, custom dimensions beside each item."""
    sections = []
    for title, wanted in (("Requêtes", "request"), ("Dépendances", "dependency"), ("Traces", "trace"),
                          ("Exceptions", "exception")):
        rows = []
        for envelope in reversed([item for item in envelopes if kind(item) == wanted]):
            tags = envelope.get("tags", {})
            dimensions = base_data(envelope).get("properties") or {}
            rows.append(
                "<tr><td>{time}</td><td><code>{operation}</code></td><td>{summary}</td><td>{dims}</td></tr>".format(
                    time=html.escape(str(envelope.get("time", ""))),
                    operation=html.escape(str(tags.get("ai.operation.id", ""))),
                    summary=html.escape(_summary(envelope)),
                    dims="<br>".join(f"<b>{html.escape(str(k))}</b> = {html.escape(str(v))}"
                                     for k, v in sorted(dimensions.items())),
                )
            )
        sections.append(
            f"<h2>{title} ({len(rows)})</h2><table><thead><tr><th>Heure</th><th>Opération</th><th>Élément</th>"
            f"<th>Dimensions personnalisées</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return (
        '<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Télémétrie du broker (bac à sable)'
        "</title><style>body{font-family:sans-serif;margin:1rem}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #ccc;padding:.25rem;vertical-align:top;text-align:left;font-size:.85rem}</style>"
        "</head><body><main><h1>Télémétrie reçue (Application Insights local)</h1>"
        f"<p>{len(envelopes)} éléments reçus. JSON : <a href=\"/api/envelopes\">/api/envelopes</a>.</p>"
        + "".join(sections)
        + "</main></body></html>"
    )
