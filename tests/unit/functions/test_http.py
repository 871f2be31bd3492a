"""The one place where an exception escaping a handler becomes a response (functions/_http.py)."""

from __future__ import annotations

import json
import logging
import re

import azure.functions as func
import pytest

from functions._http import browser_endpoint
from functions._http import endpoint
from sanscouture.errors import InvalidGrantError
from sanscouture.errors import SignInRefused
from sanscouture.errors import StorageUnavailableError
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.web import Request
from sanscouture.web import Response


def call(adapted: object, url: str = "https://broker.example/x?a=1&a=2") -> func.HttpResponse:
    request = func.HttpRequest(method="GET", url=url, headers={}, params={"a": "1"}, body=b"")
    return adapted(request)  # type: ignore[operator]


def raising(error: Exception):  # type: ignore[no-untyped-def]
    def handler(request: Request) -> Response:
        raise error

    return handler


def test_protocol_errors_are_json_and_bugs_are_a_bare_server_error() -> None:
    refused = call(endpoint(raising(InvalidGrantError())))
    assert refused.status_code == 400 and json.loads(refused.get_body())["error"] == "invalid_grant"
    assert refused.headers["Cache-Control"] == "no-store"
    bug = call(endpoint(raising(RuntimeError("secret detail"))))
    assert bug.status_code == 500 and json.loads(bug.get_body()) == {
        "error": "server_error", "error_description": "the broker could not complete the request"}


def test_an_endpoint_may_render_its_own_errors() -> None:
    response = call(endpoint(raising(InvalidGrantError()), render_error=lambda e: Response(418)))
    assert response.status_code == 418


def test_pages_turn_failures_into_french_pages_without_stack_traces() -> None:
    cases = [
        (UpstreamUnavailableError(), 503, "indisponible"),
        (StorageUnavailableError(), 503, "indisponible"),
        (SignInRefused("tenant_not_allowed"), 403, "Organisation non autorisée"),
        (InvalidGrantError(), 400, "Demande invalide"),
        (RuntimeError("secret detail"), 500, "Erreur inattendue"),
    ]
    for error, status, words in cases:
        response = call(browser_endpoint(raising(error)))
        page = response.get_body().decode()
        assert response.status_code == status, error
        assert words in page and "secret detail" not in page and "Traceback" not in page
        assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("error", "status", "level", "message"),
    [
        (RuntimeError("secret detail"), 500, logging.ERROR, "unexpected failure"),
        (UpstreamUnavailableError(detail="psc: connection refused"), 503, logging.WARNING, "upstream unavailable"),
        (StorageUnavailableError(detail="table codes: 503"), 503, logging.WARNING, "dependency unavailable"),
    ],
)
def test_the_reference_a_page_shows_is_the_one_its_log_record_carries_with_the_exception(
    error: Exception, status: int, level: int, message: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Support finds the record (an Application Insights exception) from the reference a person reads."""
    caplog.set_level(logging.INFO, logger="sanscouture.http")
    response = call(browser_endpoint(raising(error)))
    assert response.status_code == status
    page = response.get_body().decode()
    shown = re.findall(r'indiquez cette référence&nbsp;: <span class="code">([^<]*)</span>', page)
    assert len(shown) == 1 and re.fullmatch(r"[0-9a-f]{8}", shown[0])
    (record,) = [record for record in caplog.records if record.name == "sanscouture.http"]
    assert (record.levelno, record.getMessage(), record.route) == (level, message, "handler")
    assert record.reference == shown[0]
    assert record.exc_info is not None and record.exc_info[1] is error


def test_repeated_query_parameters_are_seen_even_when_the_host_keeps_one() -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response()

    call(endpoint(handler))
    assert seen[0].query == {"a": "1"} and seen[0].repeated == frozenset({"a"})
