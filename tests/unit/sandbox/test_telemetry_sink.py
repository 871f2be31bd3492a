"""The sandbox's ingestion sink answers the Azure Monitor exporter as the ingestion API does (issue 11)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from azure.monitor.opentelemetry.exporter._connection_string_parser import ConnectionStringParser
from werkzeug.test import Client

from sandbox.telemetry_sink import TelemetrySink
from sandbox.telemetry_sink import connection_string
from sandbox.telemetry_sink import decode

REQUEST = {"name": "Microsoft.ApplicationInsights.Request", "time": "2026-12-01T10:00:00Z",
           "tags": {"ai.operation.id": "abc"},
           "data": {"baseType": "RequestData", "baseData": {"name": "GET /authorize", "responseCode": "302",
                                                            "duration": "00:00:00.010", "properties": {}}}}
TRACE = {"name": "Microsoft.ApplicationInsights.Message", "time": "2026-12-01T10:00:01Z", "tags": {},
         "data": {"baseType": "MessageData", "baseData": {"message": "audit login_refused",
                                                          "properties": {"audit_event": "login_refused",
                                                                         "reason": "psc_refused"}}}}


def test_the_exporter_reads_the_sinks_connection_string_as_its_ingestion_endpoint() -> None:
    parsed = ConnectionStringParser(connection_string("https://127.0.0.1:7074"))
    assert parsed.endpoint == "https://127.0.0.1:7074/"  # as in a real connection string
    assert parsed.live_endpoint == "https://127.0.0.1:7074/"


def test_envelopes_are_read_gzipped_or_not_as_a_json_array_or_json_lines() -> None:
    array = json.dumps([REQUEST, TRACE]).encode()
    lines = (json.dumps(REQUEST) + "\n" + json.dumps(TRACE) + "\n").encode()
    assert decode(array) == decode(gzip.compress(array), "gzip") == decode(lines) == [REQUEST, TRACE]


def test_track_answers_like_the_ingestion_api_keeps_journals_and_shows_the_envelopes(tmp_path: Path) -> None:
    journal = tmp_path / "telemetry.jsonl"
    client = Client(TelemetrySink(journal))
    response = client.post("/v2.1/track", data=gzip.compress(json.dumps([REQUEST, TRACE]).encode()),
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json == {"itemsReceived": 2, "itemsAccepted": 2, "errors": []}
    assert client.post("/v2/track", data=json.dumps(TRACE)).json == {"itemsReceived": 1, "itemsAccepted": 1,
                                                                    "errors": []}
    assert client.get("/api/envelopes").json == [REQUEST, TRACE, TRACE]
    assert [json.loads(line) for line in journal.read_text().splitlines()] == [REQUEST, TRACE, TRACE]

    page = client.get("/").get_data(as_text=True)
    assert "GET /authorize → 302" in page and "<b>reason</b> = psc_refused" in page
    assert "Requêtes (1)" in page and "Traces (2)" in page

    assert client.delete("/api/envelopes").status_code == 204
    assert client.get("/api/envelopes").json == []


def test_a_body_that_is_not_json_is_refused_with_the_ingestion_apis_error_shape() -> None:
    response = Client(TelemetrySink()).post("/v2.1/track", data=b"{not json")
    assert response.status_code == 400
    assert response.json["itemsAccepted"] == 0 and response.json["errors"][0]["statusCode"] == 400
