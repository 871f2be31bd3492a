"""The monitoring queries (infra/monitoring/*.kql) against telemetry the sandbox's sink captured.

No Kusto engine runs here, so the checks are what can be decided without one: the envelopes are laid
out as the Application Insights tables the queries read (``requests``, ``traces``, ``exceptions``,
``dependencies``, with their column names), and every table, column and custom dimension a query
names must exist in them; every ``customDimensions.X == "V"`` / ``in (...)`` filter must match
captured rows, unless its event is one the capture cannot produce (listed by the caller); every request
name a query lists must be a captured one's, after the query's own ``replace_regex`` of ``name`` if any.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "infra" / "monitoring"

# Envelope base type → Application Insights table.
TABLES = {"RequestData": "requests", "MessageData": "traces", "ExceptionData": "exceptions",
          "RemoteDependencyData": "dependencies"}
# Columns every table has (from the envelope's time and tags).
COMMON = ("timestamp", "operation_Id", "operation_Name", "operation_ParentId", "cloud_RoleName", "customDimensions")
# KQL operators, functions and words the queries use that are not columns.
KQL_WORDS = frozenset(
    {"let", "where", "extend", "project", "summarize", "by", "count", "countif", "distinct", "in", "or", "and",
     "not", "tostring", "toint", "todouble", "iff", "bin", "percentile", "percentiles", "order", "sort", "asc",
     "desc", "render", "timechart", "columnchart", "barchart", "isnotempty", "isempty", "true", "false", "avg",
     "sum", "dcount", "take", "top", "ago", "now", "union", "join", "kind", "on", "with", "as", "replace_regex"}
)
# ``extend X = replace_regex(name, @"regex", @"rewrite")``: a request name normalised by the query.
NORMALISED_NAME = re.compile(r'\bextend\s+(\w+)\s*=\s*replace_regex\(\s*name\s*,\s*@"([^"]*)"\s*,\s*@"([^"]*)"\s*\)')


def replace_regex(source: str, lookup: str, rewrite: str) -> str:
    """KQL's ``replace_regex``: every match of ``lookup`` (RE2, which Python's re reads alike for these
    patterns) replaced by ``rewrite``, where ``\\0`` is the match and ``\\1``… its groups."""
    return re.sub(lookup, rewrite.replace("\\0", "\\g<0>"), source)


def request_names(query: Query, requests: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """The values of ``name`` and of each column the query derives from it, over these requests."""
    names = {str(row["name"]) for row in requests}
    columns = {"name": names}
    for column, lookup, rewrite in NORMALISED_NAME.findall(query.text):
        columns[column] = {replace_regex(name, lookup, rewrite) for name in names}
    return columns


def parse_duration(text: str) -> float:
    """Application Insights' ``d.hh:mm:ss.ffffff`` as milliseconds (the ``duration`` column)."""
    match = re.fullmatch(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    assert match, f"not an Application Insights duration: {text!r}"
    days, hours, minutes, seconds = match.groups()
    return ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60_000 + float(seconds) * 1000


def rows(envelopes: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The envelopes as rows of the tables the queries read, with those tables' column names."""
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES.values()}
    for envelope in envelopes:
        table = TABLES.get(str(envelope.get("data", {}).get("baseType")))
        if table is None:
            continue
        data, tags = envelope["data"]["baseData"], envelope.get("tags", {})
        row: dict[str, Any] = {
            "timestamp": envelope.get("time"),
            "operation_Id": tags.get("ai.operation.id"),
            "operation_Name": tags.get("ai.operation.name"),
            "operation_ParentId": tags.get("ai.operation.parentId"),
            "cloud_RoleName": tags.get("ai.cloud.role"),
            "customDimensions": dict(data.get("properties") or {}),
        }
        if table in ("requests", "dependencies"):
            row.update(name=data.get("name"), duration=parse_duration(str(data.get("duration", "0:0:0"))),
                       success=data.get("success"), id=data.get("id"))
        if table == "requests":
            row.update(resultCode=data.get("responseCode"), url=data.get("url"))
        elif table == "dependencies":
            row.update(resultCode=data.get("resultCode"), target=data.get("target"), type=data.get("type"),
                       data=data.get("data"))
        elif table == "traces":
            row.update(message=data.get("message"), severityLevel=data.get("severityLevel"))
        else:
            first = (data.get("exceptions") or [{}])[0]
            row.update(type=first.get("typeName"), outerMessage=first.get("message"),
                       severityLevel=data.get("severityLevel"), problemId=data.get("problemId"))
        tables[table].append(row)
    return tables


@dataclass(frozen=True)
class Query:
    """What a query names: tables, columns, custom dimensions and the dimension values it filters on."""

    name: str
    text: str
    tables: frozenset[str]
    columns: frozenset[str]
    dimensions: frozenset[str]
    filters: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def load(cls, path: Path) -> Query:
        text = path.read_text(encoding="utf-8")
        code = re.sub(r"//[^\n]*", "", text)
        bare = re.sub(r'"[^"]*"', '""', code)
        tables = frozenset(re.findall(r"(?m)^\s*(?:let\s+\w+\s*=\s*)?([A-Za-z_]\w*)\s*$", bare)) & set(TABLES.values())
        aliases = set(re.findall(r"(?<![=!<>])\b([A-Za-z_]\w*)\s*=(?!=)", bare))
        words = set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)", bare))
        columns = frozenset(words - aliases - KQL_WORDS - set(TABLES.values()))
        filters = []
        for dimension, _, values in re.findall(
            r"customDimensions\.(\w+)\)?\s*(==|in)\s*(\"[^\"]*\"|\([^)]*\))", code
        ):
            filters.append((dimension, tuple(re.findall(r'"([^"]*)"', values))))
        return cls(path.stem, text, tables, columns, frozenset(re.findall(r"customDimensions\.(\w+)", code)),
                   tuple(filters))


def queries() -> list[Query]:
    return [Query.load(path) for path in sorted(MONITORING.glob("*.kql"))]


def problems(query: Query, tables: dict[str, list[dict[str, Any]]], uncaptured: Iterable[str] = ()) -> list[str]:
    """What the query names that the captured telemetry does not have ([] when it is all there)."""
    found: list[str] = []
    if not query.tables:
        found.append("reads no known table")
    known = {column for table in query.tables for row in tables[table] for column in row}
    found += [f"column {column} is in none of {sorted(query.tables)}" for column in sorted(query.columns - known)]
    dimensions = {key for table in query.tables for row in tables[table] for key in row["customDimensions"]}
    found += [f"dimension {name} never captured" for name in sorted(query.dimensions - dimensions)]
    skip = set(uncaptured)
    for dimension, values in query.filters:
        if skip & set(values):
            continue
        seen = {str(row["customDimensions"].get(dimension)) for table in query.tables for row in tables[table]}
        if not seen & set(values):
            found.append(f"no captured row has {dimension} in {values}")
    if "requests" in query.tables:
        for column, names in request_names(query, tables["requests"]).items():
            for listed in re.findall(rf"\b{column}\s+in\s*\(([^)]*)\)", query.text):
                found += [f"no captured request has {column} {name}" for name in re.findall(r'"([^"]*)"', listed)
                          if name not in names]
    return found
