"""The telemetry scrubbers: what reaches the exporter from a span or a log record (issue 11).

``otel_providers`` (tests/conftest.py): a real SDK tracer and logger provider of the test's own (never
the global ones), whose first processor is an in-memory exporter's, as the worker registers its batch
processor before the broker's code runs; the scrubbers must still act before it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.trace import NoOpTracerProvider
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode

from sanscouture.adapters import telemetry

ROOT = Path(__file__).resolve().parents[3]

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
IDNAT = "810100000001"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true"}, False),  # nowhere to send it
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}, False),  # the worker's switch is off
        ({"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "True", "APPLICATIONINSIGHTS_CONNECTION_STRING": "x"}, True),
    ],
)
def test_telemetry_is_on_only_with_the_worker_switch_and_a_connection_string(
    env: dict[str, str], expected: bool
) -> None:
    assert telemetry.enabled(env) is expected


def test_a_span_loses_query_strings_credential_headers_tokens_and_national_identifiers(otel_providers: tuple) -> None:
    tracer_provider, spans, _, _ = otel_providers
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("GET /authorize?login_hint=" + IDNAT) as span:
        span.set_attribute("url.full", "https://broker.example.fr/authorize?code=abc&state=xyz")
        span.set_attribute("http.request.header.authorization", ("Bearer " + JWT,))
        span.set_attribute("http.request.header.cookie", ("__Host-session=secret",))
        span.set_attribute("http.response.status_code", 302)
        span.set_attribute("db.statement", f"id_token_hint={JWT} for {IDNAT}")
        span.add_event("exception", {"exception.message": "POST https://psc/token?client_secret=s3cr3t failed"})
        span.set_status(Status(StatusCode.ERROR, f"refused {JWT}"))
    (exported,) = spans.get_finished_spans()
    assert exported.name == "GET /authorize?[query removed]"
    assert dict(exported.attributes or {}) == {
        "url.full": "https://broker.example.fr/authorize?[query removed]",
        "http.response.status_code": 302,
        "db.statement": "id_token_hint=[removed] for …0001",
    }
    assert exported.events[0].attributes == {"exception.message": "POST https://psc/token?[query removed] failed"}
    assert exported.status.description == "refused [token]"


def test_a_log_record_exception_text_is_scrubbed_before_export(otel_providers: tuple) -> None:
    _, _, logger_provider, records = otel_providers
    logger = logging.getLogger("tests.telemetry")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"GET https://broker.example.fr/callback?code=abc&state=xyz for {IDNAT}")
        except ValueError:
            logger.exception("unexpected failure", extra={"reference": "0a1b2c3d", "hint": "login_hint=" + IDNAT})
    finally:
        logger.removeHandler(handler)
    (exported,) = records.get_finished_logs()
    attributes = dict(exported.log_record.attributes or {})
    assert attributes["exception.message"] == "GET https://broker.example.fr/callback?[query removed] for …0001"
    assert "code=abc" not in attributes["exception.stacktrace"] and IDNAT not in attributes["exception.stacktrace"]
    assert (attributes["reference"], attributes["hint"]) == ("0a1b2c3d", "login_hint=[removed]")
    assert exported.log_record.body == "unexpected failure"


def test_the_sandbox_configures_the_exporter_with_the_worker_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's app settings (azure-functions-python-worker constants.py): the connection string and
    ``PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME``, whose default is the root logger ("")."""
    import azure.monitor.opentelemetry

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(azure.monitor.opentelemetry, "configure_azure_monitor", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(telemetry, "install_scrubbers", lambda: True)
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_functions")  # restored after the test
    connection = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    telemetry.configure_like_the_worker({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection,
                                         "PYTHON_APPLICATIONINSIGHTS_LOGGER_NAME": "sanscouture"})
    telemetry.configure_like_the_worker({"APPLICATIONINSIGHTS_CONNECTION_STRING": connection})
    assert calls == [{"connection_string": connection, "logger_name": "sanscouture"},
                     {"connection_string": connection, "logger_name": ""}]


def test_without_sdk_providers_nothing_is_installed() -> None:
    assert telemetry.prepend_scrubbers(NoOpTracerProvider(), LoggerProvider()) is False


def test_with_telemetry_off_importing_the_app_imports_nothing_of_opentelemetry() -> None:
    """The cold start is unchanged when the worker does not export (the default, and every other test)."""
    env = {name: value for name, value in os.environ.items()
           if name not in (telemetry.ENABLE_SETTING, telemetry.CONNECTION_SETTING)}
    probe = ("import sys, function_app; "
             "print(sorted({m.split('.')[0] + '.' + m.split('.')[1] for m in sys.modules "
             "if m.startswith(('opentelemetry.', 'azure.monitor'))}))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "[]"
