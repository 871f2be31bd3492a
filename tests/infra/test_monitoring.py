"""Alerts, action group and workbook (infra/bicep/modules/alerts.bicep) and their queries (issue 11).

The queries live in infra/monitoring/*.kql, are read by the Bicep with loadTextContent, quoted in
docs/deploy.md, and checked against telemetry the sandbox's sink captured from a real run
(tests/infra/fixtures/telemetry.json, saved by tests/e2e/test_telemetry.py).
"""

from __future__ import annotations

import copy
import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sanscouture.audit import EVENTS
from tests.infra import kql
from tests.infra.test_bicep import MAIN
from tests.infra.test_bicep import MODULES
from tests.infra.test_bicep import body
from tests.infra.test_bicep import dotted
from tests.infra.test_bicep import module_call
from tests.infra.test_bicep import module_file
from tests.infra.test_bicep import parse
from tests.infra.test_bicep import resources_of

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).with_name("fixtures") / "telemetry.json"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
# Watched events the captured run does not produce: back-channel logout is exercised by its own tests.
UNCAPTURED = ("backchannel_logout_dead_lettered",)
ALERT_QUERIES = {
    "refusalsAlert": "alert-refusals",
    "unavailableAlert": "alert-unavailable",
    "deadLettersAlert": "alert-dead-letters",
    "adminRemovalsAlert": "alert-admin-removals",
}
WORKBOOK_QUERIES = ("workbook-sign-ins-per-hour", "workbook-refusals-by-reason", "workbook-latency-per-step",
                    "workbook-pairings")


@pytest.fixture(scope="module")
def tables() -> dict[str, list[dict[str, Any]]]:
    return kql.rows(json.loads(CAPTURED.read_text(encoding="utf-8")))


def alerts() -> dict[str, Any]:
    return module_file("alerts.bicep")


def loaded_query(expr: Any) -> str:
    """The .kql file name that `queries.<key>` of alerts.bicep loads."""
    chain = dotted(expr)
    assert chain and chain.startswith("queries."), f"not a query of the queries variable: {expr!r}"
    loader = alerts()["variables"]["queries"]["value"][chain.removeprefix("queries.")]["function"]
    assert loader["type"] == "load_text_content"
    path = (MODULES / loader["parameters"]["file_path"]).resolve()
    assert path.parent == kql.MONITORING and path.is_file(), path
    return path.stem


@pytest.mark.parametrize("query", kql.queries(), ids=lambda query: query.name)
def test_each_query_names_only_tables_columns_and_dimensions_the_captured_telemetry_has(
    query: kql.Query, tables: dict[str, list[dict[str, Any]]]
) -> None:
    assert kql.problems(query, tables, UNCAPTURED) == []


@pytest.mark.parametrize("query", kql.queries(), ids=lambda query: query.name)
def test_each_query_holds_when_the_host_names_requests_without_the_route_leading_slash(
    query: kql.Query, tables: dict[str, list[dict[str, Any]]]
) -> None:
    """In Azure the Functions host (.NET) names a request from its ``http.route``, an ASP.NET route
    template, often without a leading slash: ``GET authorize`` rather than the sandbox's ``GET /authorize``."""
    slashless = copy.deepcopy(tables)
    for row in slashless["requests"]:
        row["name"] = re.sub(r"^(\w+) /", r"\1 ", row["name"])
    assert "GET authorize" in {row["name"] for row in slashless["requests"]}
    assert kql.problems(query, slashless, UNCAPTURED) == []


def test_the_uncaptured_event_is_one_the_broker_audits_or_will() -> None:
    # backchannel_logout_dead_lettered: the back-channel logout delivery's audit event (issue 10).
    assert set(UNCAPTURED) - EVENTS <= {"backchannel_logout_dead_lettered"}


@pytest.mark.parametrize("query", kql.queries(), ids=lambda query: query.name)
def test_each_query_is_quoted_in_the_admin_guide(query: kql.Query) -> None:
    quoted = query.text.strip() in DEPLOY_DOC.read_text(encoding="utf-8")
    assert quoted, f"docs/deploy.md must quote infra/monitoring/{query.name}.kql as it is"


def test_every_query_file_is_deployed_once() -> None:
    loaders = alerts()["variables"]["queries"]["value"]
    files = sorted(Path(loader["function"]["parameters"]["file_path"]).stem for loader in loaders.values())
    assert files == sorted(query.name for query in kql.queries())


def test_the_alert_rules_watch_application_insights_with_the_right_queries_and_notify_the_action_group() -> None:
    rules = resources_of(alerts(), "Microsoft.Insights/scheduledQueryRules")
    (group_symbol, _), = resources_of(alerts(), "Microsoft.Insights/actionGroups").items()
    assert set(rules) == set(ALERT_QUERIES)
    for symbol, resource in rules.items():
        properties = body(resource)["properties"]
        assert properties["scopes"] == ["appInsightsId"] and properties["enabled"] is True
        assert [dotted(group) for group in properties["actions"]["actionGroups"]] == [f"{group_symbol}.id"]
        (criterion,) = properties["criteria"]["allOf"]
        assert loaded_query(criterion["query"]) == ALERT_QUERIES[symbol]
        assert criterion["operator"] == "GreaterThan"
    refusals = body(rules["refusalsAlert"])["properties"]["criteria"]["allOf"][0]
    assert refusals["threshold"] == "refusalThreshold"
    assert [(d["name"], d["values"]) for d in refusals["dimensions"]] == [("reason", ["*"])]  # one alert per reason
    unavailable = body(rules["unavailableAlert"])["properties"]["criteria"]["allOf"][0]
    assert (unavailable["metricMeasureColumn"], unavailable["threshold"]) == ("rate", "unavailableRatePercent")
    for symbol in ("deadLettersAlert", "adminRemovalsAlert"):  # every single one is worth a look
        assert body(rules[symbol])["properties"]["criteria"]["allOf"][0]["threshold"] == 0


def test_the_action_group_mails_the_address_given_as_a_parameter_of_main() -> None:
    (_, group), = resources_of(alerts(), "Microsoft.Insights/actionGroups").items()
    (receiver,) = body(group)["properties"]["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"
    _, call = module_call("alerts.bicep")
    assert call["params"]["alertEmail"] == "alertEmail"
    assert parse(MAIN)["parameters"]["alertEmail"].get("default") is None  # required: no alert goes nowhere
    assert dotted(call["params"]["appInsightsId"]) == "monitoring.outputs.appInsightsId"


def test_the_workbook_shows_the_four_views_on_application_insights() -> None:
    (_, workbook), = resources_of(alerts(), "Microsoft.Insights/workbooks").items()
    config = body(workbook)
    assert config["kind"] == "shared" and config["properties"]["sourceId"] == "appInsightsId"
    serialized = config["properties"]["serializedData"]["function"]
    assert (serialized["type"], serialized["parameters"]["value_to_convert"]) == ("string", "workbookContent")
    content = alerts()["variables"]["workbookContent"]["value"]
    assert content["version"] == "Notebook/1.0" and content["fallbackResourceIds"] == ["appInsightsId"]
    items = [item["content"] for item in content["items"] if item["type"] == 3]
    assert [loaded_query(item["query"]) for item in items] == list(WORKBOOK_QUERIES)
    assert {item["resourceType"] for item in items} == {"microsoft.insights/components"}


# The queries' logic, run in Python over the captured rows: what each alert and view would show.


def dims(row: dict[str, Any]) -> dict[str, Any]:
    return dict(row["customDimensions"])


def test_the_refusals_alert_counts_the_captured_refusal_under_its_reason(tables: dict[str, list[dict]]) -> None:
    reasons = Counter(dims(row)["reason"] for row in tables["traces"]
                      if dims(row).get("audit_event") == "login_refused")
    assert reasons == {"upstream_token_invalid": 1}


def test_the_unavailability_alert_sees_the_captured_outage(tables: dict[str, list[dict]]) -> None:
    unavailable_operations = {row["operation_Id"] for row in tables["traces"]
                              if dims(row).get("error") == "temporarily_unavailable"}
    failed = [row for row in tables["requests"]
              if int(row["resultCode"]) >= 500 or row["operation_Id"] in unavailable_operations]
    assert {(row["name"], row["resultCode"]) for row in failed} == {("POST /confirm", "503"), ("POST /token", "503")}
    assert 0 < 100.0 * len(failed) / len(tables["requests"]) < 100


def test_the_removal_alert_sees_the_administrators_removal(tables: dict[str, list[dict]]) -> None:
    removals = [dims(row) for row in tables["traces"] if dims(row).get("audit_event") == "pairing_removed"
                and dims(row).get("by") in ("administrator", "admin")]
    assert len(removals) == 1 and removals[0]["national_id"].startswith("********")


def test_the_latency_view_has_a_median_and_p95_for_each_step_of_a_sign_in(tables: dict[str, list[dict]]) -> None:
    (query,) = [query for query in kql.queries() if query.name == "workbook-latency-per-step"]
    ((lookup, rewrite),) = [(lookup, rewrite) for column, lookup, rewrite in kql.NORMALISED_NAME.findall(query.text)
                            if column == "step"]
    durations: dict[str, list[float]] = {}
    for row in tables["requests"]:
        for name in (row["name"], row["name"].replace(" /", " ", 1)):  # one step, with or without the slash
            durations.setdefault(kql.replace_regex(name, lookup, rewrite), []).append(row["duration"])
    steps = ("GET /authorize", "GET /callback", "POST /pair", "GET /pair/callback", "POST /confirm", "POST /token",
             "GET /userinfo")
    assert set(steps) <= set(durations)
    assert all(statistics.median(durations[step]) > 0 for step in steps)
