"""Telemetry to Application Insights: the worker's OpenTelemetry export, scrubbed before it leaves.

In Azure the Functions Python worker exports telemetry itself: with the app setting
``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` (and ``"telemetryMode": "OpenTelemetry"`` in
host.json) it calls ``configure_azure_monitor(connection_string=APPLICATIONINSIGHTS_CONNECTION_STRING,
logger_name=PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME or "")`` once at start-up, before the app is indexed
(azure-functions-python-worker ``constants.py``); the host records one request per invocation. The
broker adds only :func:`install_scrubbers`: processors put *first* in the worker's tracer and logger
providers, so that no span or log record reaches the exporter with a query string, an
``Authorization`` / ``Cookie`` header, a token, a code or a full national identifier
(:mod:`sanscouture.scrub`).

The worker's own set-up cannot run outside Azure, so the sandbox (and only it: never in Azure, where
the worker already did it) calls :func:`configure_like_the_worker`, the same call with the same
arguments. Nothing here is imported unless telemetry is on: the cold start with it off is unchanged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any

from sanscouture.scrub import scrub

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk._logs import LogRecordProcessor
    from opentelemetry.sdk._logs import ReadWriteLogRecord
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace import Span
    from opentelemetry.sdk.trace import SpanProcessor

log = logging.getLogger("sanscouture.telemetry")

ENABLE_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
CONNECTION_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
LOGGER_NAME_SETTING = "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME"

# Attribute names whose value is a credential whatever it looks like (HTTP headers as instrumentations
# record them: ``http.request.header.authorization``).
_SECRET_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization")


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    """The worker exports telemetry: the switch is on and there is somewhere to send it."""
    return env.get(ENABLE_SETTING, "").strip().lower() == "true" and bool(env.get(CONNECTION_SETTING, "").strip())


def configure_like_the_worker(env: Mapping[str, str] = os.environ) -> None:
    """Sandbox only: what the Functions Python worker does at start-up in Azure, then the scrubbers.

    azure-functions-python-worker ``initialize_azure_monitor``: the Functions resource detector, then
    ``configure_azure_monitor`` with the connection string and logger name of the app settings.
    """
    from azure.monitor.opentelemetry import configure_azure_monitor

    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")
    configure_azure_monitor(
        connection_string=env[CONNECTION_SETTING], logger_name=env.get(LOGGER_NAME_SETTING, "")
    )
    install_scrubbers()


@contextmanager
def exported_from_a_tool(env: Mapping[str, str] = os.environ) -> Iterator[None]:
    """An administrator's tool run (``python -m tools.pairings``): its audit records reach Application
    Insights too when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, as the broker's do.

    The component accepts Entra-authenticated ingestion only: with
    ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD`` the administrator's ``az login``
    identity signs in (it needs *Monitoring Metrics Publisher* on the component). Everything is flushed
    before the tool exits. Without the connection string, nothing of OpenTelemetry is imported.
    """
    connection_string = env.get(CONNECTION_SETTING, "").strip()
    if not connection_string:
        yield
        return
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import trace
    from opentelemetry._logs import get_logger_provider

    credential = None
    if "authorization=aad" in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "").replace(" ", "").lower():
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    configure_azure_monitor(connection_string=connection_string, credential=credential, logger_name="sanscouture",
                            enable_live_metrics=False, disable_metrics=True)
    install_scrubbers()
    logging.getLogger("sanscouture").setLevel(logging.INFO)  # audit records are INFO, as in the broker
    try:
        yield
    finally:
        for provider in (get_logger_provider(), trace.get_tracer_provider()):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                flush()


_installed = False


def install_scrubbers() -> bool:
    """Put the scrubbing processors first in the global providers, once; False if they are not the SDK's."""
    global _installed
    if _installed:
        return True
    from opentelemetry import trace
    from opentelemetry._logs import get_logger_provider

    _installed = prepend_scrubbers(trace.get_tracer_provider(), get_logger_provider())
    return _installed


def prepend_scrubbers(tracer_provider: object, logger_provider: object) -> bool:
    """Put the scrubbing processors before every other processor of these providers.

    They must run before the batch processors that hand spans and log records to the exporter, which
    the worker registered first; ``add_*_processor`` only appends, so they are put at the front of the
    providers' processor tuples. Returns False when the providers are not the SDK's (telemetry off).
    """
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(tracer_provider, TracerProvider) or not isinstance(logger_provider, LoggerProvider):
        log.warning("telemetry scrubbers not installed: no OpenTelemetry SDK providers")
        return False
    spans = tracer_provider._active_span_processor  # no public way to prepend
    with spans._lock:
        spans._span_processors = (_span_scrubber(), *spans._span_processors)
    records = logger_provider._multi_log_record_processor
    with records._lock:
        records._log_record_processors = (_log_scrubber(), *records._log_record_processors)
    return True


def scrub_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes with credential headers dropped and every string value scrubbed."""
    clean: dict[str, Any] = {}
    for name, value in (attributes or {}).items():
        if any(name.lower().endswith(header) for header in _SECRET_HEADERS):
            continue
        if isinstance(value, str):
            clean[name] = scrub(value)
        elif isinstance(value, (list, tuple)):
            clean[name] = tuple(scrub(item) if isinstance(item, str) else item for item in value)
        else:
            clean[name] = value
    return clean


def _span_scrubber() -> SpanProcessor:
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace import Status
    from opentelemetry.sdk.trace import StatusCode

    class ScrubbingSpanProcessor(SpanProcessor):
        """Scrubs an ended span's name, attributes, status and events before it is exported.

        An ended span is read-only through the API; the SDK's own fields are replaced, as Azure
        Monitor's documentation does to filter telemetry ("Modify telemetry: add a span processor").
        """

        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            del span, parent_context

        def on_end(self, span: ReadableSpan) -> None:
            span._name = scrub(span.name)
            span._attributes = scrub_attributes(span.attributes)  # type: ignore[assignment]
            if span.status.description:
                span._status = Status(span.status.status_code or StatusCode.UNSET,
                                      scrub(span.status.description))
            for event in span.events:
                event._attributes = scrub_attributes(event.attributes)  # type: ignore[assignment]

    return ScrubbingSpanProcessor()


def _log_scrubber() -> LogRecordProcessor:
    from opentelemetry.sdk._logs import LogRecordProcessor

    class ScrubbingLogRecordProcessor(LogRecordProcessor):
        """Scrubs a log record's body and attributes, the exception's message and stack trace included
        (the log records themselves were scrubbed when made, their exceptions' texts were not)."""

        def on_emit(self, log_record: ReadWriteLogRecord) -> None:
            record = log_record.log_record
            if isinstance(record.body, str):
                record.body = scrub(record.body)
            record.attributes = scrub_attributes(record.attributes)  # type: ignore[assignment]

        def shutdown(self) -> None:
            return None

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            del timeout_millis
            return True

    return ScrubbingLogRecordProcessor()
