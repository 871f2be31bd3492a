"""Azure Table Storage: one :class:`TableStore` per table of docs/design.md, expiry-aware and single-use aware.

Table Storage has no per-entity TTL, so every transient row carries ``expires_at`` (UTC epoch seconds):
readers treat an expired row as absent and :meth:`TableStore.sweep` deletes them. Single use relies on
optimistic concurrency: :meth:`TableStore.consume` deletes the row with ``If-Match: <ETag>``, so of
many concurrent consumers exactly one gets the row (REST "Delete Entity": 412 when the ETag changed,
404 when it is gone).

Values are stored as entity properties so that an administrator can read them in Storage Explorer;
dicts and lists are JSON-encoded in a property whose name ends with ``__json``.
"""

from __future__ import annotations

import email.parser
import http.client
import json
import re
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.client import HTTPConnection
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

import certifi
import requests
from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.core.exceptions import HttpResponseError
from azure.core.exceptions import ResourceExistsError
from azure.core.exceptions import ResourceModifiedError
from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline import PipelineContext
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import AzureSasCredentialPolicy
from azure.core.pipeline.policies import BearerTokenCredentialPolicy
from azure.core.pipeline.policies import DistributedTracingPolicy
from azure.core.pipeline.policies import HttpLoggingPolicy
from azure.core.pipeline.policies import NetworkTraceLoggingPolicy
from azure.core.pipeline.policies import ProxyPolicy
from azure.core.pipeline.policies import RedirectPolicy
from azure.core.pipeline.policies import UserAgentPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.core.tracing.decorator import distributed_trace
from azure.data.tables import TableClient
from azure.data.tables import TableServiceClient
from azure.data.tables import UpdateMode
from azure.data.tables._authentication import SharedKeyCredentialPolicy
from azure.data.tables._deserialize import _convert_to_entity
from azure.data.tables._error import _process_table_error
from azure.data.tables._policies import StorageHeadersPolicy
from azure.data.tables._serialize import _add_entity_properties
from requests import Response
from requests import Session
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.exceptions import ProtocolError

from sanscouture.errors import InvalidRequestError
from sanscouture.errors import StorageUnavailableError
from sanscouture.models import Row

# The tables of docs/design.md ("State").
# Journeys and sessions travel sealed in cookies (sanscouture/journeys.py, sessions.py), not in tables.
TABLE_NAMES: tuple[str, ...] = ("codes", "bindings", "audit", "jti", "par")
# Tables whose rows all expire; bindings last until removed and audit rows follow the ES's policy.
TRANSIENT_TABLES: tuple[str, ...] = ("codes", "jti", "par")

_JSON_SUFFIX = "__json"
_RESERVED = frozenset({"PartitionKey", "RowKey", "Timestamp", "etag", "expires_at"})

Clock = Callable[[], float]


def _encode(data: Mapping[str, Any]) -> dict[str, Any]:
    entity: dict[str, Any] = {}
    for key, value in data.items():
        if key in _RESERVED or key.endswith(_JSON_SUFFIX):
            raise ValueError(f"{key!r} is a reserved property name")
        if isinstance(value, (dict, list, tuple)):
            entity[key + _JSON_SUFFIX] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, int) and not isinstance(value, bool):
            # Stored as Edm.Int64 whatever its size, so that epoch seconds and counters round-trip.
            entity[key] = (value, "Edm.Int64")
        elif value is not None:
            entity[key] = value
    return entity


def _decode(entity: Mapping[str, Any]) -> Row:
    data: dict[str, Any] = {}
    for key, value in entity.items():
        if key in _RESERVED:
            continue
        if key.endswith(_JSON_SUFFIX):
            data[key[: -len(_JSON_SUFFIX)]] = json.loads(value)
        elif hasattr(value, "value") and type(value).__name__ == "EntityProperty":
            data[key] = value.value
        else:
            data[key] = value
    expires_at: Any = entity.get("expires_at")
    if hasattr(expires_at, "value"):
        expires_at = expires_at.value
    return Row(
        partition=entity["PartitionKey"],
        row=entity["RowKey"],
        data=data,
        etag=entity.metadata["etag"] if hasattr(entity, "metadata") else "",
        expires_at=float(expires_at) if expires_at is not None else None,
    )


@contextmanager
def _translate_outage(table: str) -> Iterator[None]:
    """Turn connection failures and 5xx answers into StorageUnavailableError (-> 503)."""
    try:
        yield
    except (ResourceNotFoundError, ResourceExistsError):
        raise
    except HttpResponseError as error:
        if error.status_code == 400:
            # The service refused what we sent (a value over 64 KiB, a key with forbidden characters):
            # the request that carried it is at fault, not the storage.
            detail = f"table {table}: HTTP 400"
            raise InvalidRequestError("a parameter is too large or malformed", detail=detail) from error
        if error.status_code is not None and error.status_code < 500 and error.status_code != 408:
            raise
        raise StorageUnavailableError(detail=f"table {table}: HTTP {error.status_code}") from error
    except AzureError as error:
        raise StorageUnavailableError(detail=f"table {table}: {type(error).__name__}") from error


class TableStore:
    """Expiry-aware access to one table (see module docstring)."""

    def __init__(self, client: TableClient, clock: Clock = time.time) -> None:
        self._client = client
        self._clock = clock
        self.name = client.table_name

    def save(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> Row:
        """Create or replace a row; ``expires_in`` seconds from now, or None for a lasting row."""
        entity = self._entity(partition, row, data, expires_in)
        with _translate_outage(self.name):
            metadata = self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return Row(partition, row, dict(data), metadata.get("etag", ""), entity.get("expires_at"))

    def insert(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> bool:
        """Create a row only if none exists (a live one); False when one is already there.

        An expired row in the way is removed first, so that it does not block a new one.
        """
        entity = self._entity(partition, row, data, expires_in)
        with _translate_outage(self.name):
            try:
                _create_entity(self._client, entity)
                return True
            except ResourceExistsError:
                pass
            existing = self._get(partition, row)
            if existing is None or not self._expired(existing):
                return False
            if not self._delete_if_unchanged(existing):
                return False
            try:
                _create_entity(self._client, entity)
            except ResourceExistsError:
                return False
            return True

    def find(self, partition: str, row: str) -> Row | None:
        """The row, or None when it is absent or expired."""
        with _translate_outage(self.name):
            found = self._get(partition, row)
        if found is None or self._expired(found):
            return None
        return found

    def replace(self, current: Row, data: Mapping[str, Any], expires_in: float | None) -> Row | None:
        """Replace ``current`` only if nobody changed it since it was read; None if somebody did."""
        entity = self._entity(current.partition, current.row, data, expires_in)
        with _translate_outage(self.name):
            try:
                etag = _update_entity(self._client, entity, current.etag, merge=False)
            except (ResourceNotFoundError, HttpResponseError) as error:
                if isinstance(error, ResourceNotFoundError) or error.status_code == 412:
                    return None
                raise
        return Row(current.partition, current.row, dict(data), etag, entity.get("expires_at"))

    def merge_if_unchanged(self, partition: str, row: str, etag: str, changes: Mapping[str, Any]) -> str | None:
        """Merge ``changes`` into the row with ``If-Match: etag`` (one request): its new etag, or None
        when the row changed or vanished since that etag was read."""
        entity = {**_encode(changes), "PartitionKey": partition, "RowKey": row}
        with _translate_outage(self.name):
            try:
                return _update_entity(self._client, entity, etag, merge=True)
            except (ResourceNotFoundError, HttpResponseError) as error:
                if isinstance(error, ResourceNotFoundError) or error.status_code in (404, 412):
                    return None
                raise

    def merge(self, partition: str, row: str, changes: Mapping[str, Any]) -> bool:
        """Merge ``changes`` into the row whatever its version (``If-Match: *``, one request): the other
        properties are untouched; False when the row is gone (never creates it)."""
        entity = {**_encode(changes), "PartitionKey": partition, "RowKey": row}
        with _translate_outage(self.name):
            try:
                _update_entity(self._client, entity, "*", merge=True)
            except ResourceNotFoundError:
                return False
        return True

    def consume(self, partition: str, row: str) -> Row | None:
        """Read and delete a row atomically: exactly one of concurrent callers gets it, others None."""
        with _translate_outage(self.name):
            found = self._get(partition, row)
            if found is None or not self._delete_if_unchanged(found):
                return None
        return None if self._expired(found) else found

    def consume_row(self, current: Row) -> bool:
        """Delete a row already read, only if unchanged since: the one-round-trip form of consume."""
        with _translate_outage(self.name):
            return self._delete_if_unchanged(current)

    def save_many(self, partition: str, rows: Mapping[str, Mapping[str, Any]], expires_in: float | None) -> None:
        """Create or replace several rows of one partition in a single request (an entity group
        transaction: all or nothing, at most 100 rows)."""
        entities = [self._entity(partition, row, data, expires_in) for row, data in rows.items()]
        with _translate_outage(self.name):
            _submit_upserts(self._client, entities)

    def delete(self, partition: str, row: str) -> bool:
        """Delete a row whatever its state; False if it was not there."""
        statuses: list[int] = []
        with _translate_outage(self.name):
            self._client.delete_entity(partition, row, raw_response_hook=_record_status(statuses))
        return statuses[-1:] != [404]

    def partition(self, partition: str) -> list[Row]:
        """Every live row of one partition."""
        with _translate_outage(self.name):
            entities = list(
                self._client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
            )
        rows = [_decode(entity) for entity in entities]
        return [row for row in rows if not self._expired(row)]

    def rows_since(self, field: str, since: float) -> list[Row]:
        """Live rows whose numeric ``field`` is at least ``since`` (a filtered scan: for the timer)."""
        if not field.isidentifier():
            raise ValueError(f"not a property name: {field!r}")
        with _translate_outage(self.name):
            entities = list(self._client.query_entities(f"{field} ge @since", parameters={"since": int(since)}))
        rows = [_decode(entity) for entity in entities]
        return [row for row in rows if not self._expired(row)]

    def rows_where(self, equals: Mapping[str, str]) -> list[Row]:
        """Live rows whose string properties have these values (a filtered scan, server-side: for a
        pairing's removal, never a sign-in). An empty ``equals`` matches nothing rather than everything."""
        if not equals:
            return []
        names = list(equals)
        if not all(name.isidentifier() for name in names):
            raise ValueError(f"not property names: {names!r}")
        query = " and ".join(f"{name} eq @p{index}" for index, name in enumerate(names))
        parameters = {f"p{index}": str(equals[name]) for index, name in enumerate(names)}
        with _translate_outage(self.name):
            rows = [_decode(entity) for entity in self._client.query_entities(query, parameters=parameters)]
        return [row for row in rows if not self._expired(row)]

    def all_rows(self) -> list[Row]:
        """Every live row of the table (a full scan: for administration, never on a sign-in path)."""
        with _translate_outage(self.name):
            rows = [_decode(entity) for entity in self._client.list_entities()]
        return [row for row in rows if not self._expired(row)]

    def sweep(self) -> int:
        """Delete every expired row; returns how many were removed."""
        now = self._clock()
        removed = 0
        with _translate_outage(self.name):
            expired = self._client.query_entities(
                "expires_at lt @now", parameters={"now": float(now)}, select=["PartitionKey", "RowKey"]
            )
            for entity in expired:
                try:
                    self._client.delete_entity(entity["PartitionKey"], entity["RowKey"])
                    removed += 1
                except ResourceNotFoundError:
                    pass
        return removed

    def ping(self) -> None:
        """One cheap request that proves the table answers (used by /health)."""
        with _translate_outage(self.name):
            next(iter(self._client.query_entities("PartitionKey eq ''", results_per_page=1)), None)

    def _delete_if_unchanged(self, current: Row) -> bool:
        """Delete with ``If-Match: <ETag>``; True only for the one caller whose delete removed it.

        The SDK swallows a 404 on delete (idempotent delete), so the status is read from the raw
        response: 404 (already gone) and 412 (changed meanwhile) both mean somebody else won.
        """
        statuses: list[int] = []
        try:
            self._client.delete_entity(
                current.partition,
                current.row,
                etag=current.etag,
                match_condition=MatchConditions.IfNotModified,
                raw_response_hook=_record_status(statuses),
            )
        except HttpResponseError as error:
            if error.status_code in (404, 412):
                return False
            raise
        return statuses[-1:] == [204]

    def _get(self, partition: str, row: str) -> Row | None:
        try:
            return _decode(_get_entity(self._client, partition, row))
        except ResourceNotFoundError:
            return None

    def _expired(self, row: Row) -> bool:
        return row.expires_at is not None and row.expires_at <= self._clock()

    def _entity(
        self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None
    ) -> dict[str, Any]:
        entity = _encode(data)
        entity["PartitionKey"] = partition
        entity["RowKey"] = row
        if expires_in is not None:
            entity["expires_at"] = float(self._clock() + expires_in)
        return entity


# -- the entity calls of a sign-in and of POST /token, without the SDK's operation layer and pipeline -------
#
# ``TableClient.get_entity``, ``create_entity`` and ``update_entity`` build their request through the
# generated operations and their model serializer, run it through the policy pipeline and read the answer
# back through its deserializer: most of the CPU of each storage call, for requests whose shape never
# changes. The functions below send the same REST requests ("Query Entities" of one entity, "Insert
# Entity", "Update Entity", "Merge Entity") prepared by the client's own policies and sent directly
# (:class:`DirectCalls`), under the SDK's span names, and raise the errors the SDK raises.

def _entity_url(client: TableClient, partition: str, row: str) -> str:
    return (f"{client._client._config.url}/{quote(client.table_name, safe='')}"
            f"(PartitionKey='{_url_key(partition)}',RowKey='{_url_key(row)}')")


def _run(client: TableClient, request: HttpRequest, expected: int) -> Any:
    """The request through the table client's pipeline; its pipeline response, or the SDK's error."""
    answer = client._client._client._pipeline.run(request, stream=False)
    if answer.http_response.status_code != expected:
        _process_table_error(HttpResponseError(response=answer.http_response), table_name=client.table_name)
    return answer


# Answers the direct path leaves to the SDK's pipeline, which retries them with its policy (and answers an
# authentication challenge): throttling, timeouts, server errors, an expired or challenged token.
_RETRIED_BY_THE_SDK = frozenset({401, 408, 429, 500, 502, 503, 504})


class DirectCalls:
    """The entity calls of a sign-in and of ``POST /token`` (read, insert, replace and merge one entity) sent
    in one try over the pooled connection, outside the pipeline.

    Running the SDK's pipeline (nine policies, its retry loop, transport and response wrappers) was
    about two thirds of the CPU of each storage call, for requests whose shape never changes. Here the
    request is prepared by the client's own policy objects, so that it is what the pipeline would send:
    the storage headers (``x-ms-date``, ``Date``), the user agent, the shared-key or Entra signature
    (:class:`SharedKeyCredentialPolicy` or the bearer policy, with its token cache), and, when
    Application Insights is on, the distributed-tracing policy's network span (the storage dependency).
    It is then sent once on the transport's :class:`LeanSession`. Whatever the pipeline would retry (a
    connection failure, ``408``, ``429``, ``5xx``, a ``401`` challenge) is sent again through the
    pipeline, from scratch, with its full retry policy: the direct try is one more attempt, never a
    different behaviour.
    """

    def __init__(self, client: TableClient, session: LeanSession, timeout: tuple[float, float]) -> None:
        self._session = session
        self._timeout = timeout
        prepared = (StorageHeadersPolicy, UserAgentPolicy, SharedKeyCredentialPolicy, BearerTokenCredentialPolicy,
                    AzureSasCredentialPolicy)
        self._preparers = [policy for policy in client._policies if isinstance(policy, prepared)]
        self._tracing = next((policy for policy in client._policies if isinstance(policy, DistributedTracingPolicy)),
                             None)

    @classmethod
    def of(cls, client: TableClient) -> DirectCalls | None:
        """The client's direct calls, or None when its transport is not the broker's lean one (tests)."""
        found: DirectCalls | None = getattr(client, "_sanscouture_direct", None)
        if found is None:
            transport = getattr(client._client._client._pipeline._transport, "_transport", None)
            session = getattr(transport, "session", None)
            if not isinstance(session, LeanSession):
                return None
            found = cls(client, session, (_CLIENT_OPTIONS["connection_timeout"], _CLIENT_OPTIONS["read_timeout"]))
            client._sanscouture_direct = found  # type: ignore[attr-defined]
        return found

    def send(self, request: HttpRequest) -> Answer | None:
        """The answer of one try, or None when the pipeline must send the request instead."""
        pipeline_request: PipelineRequest[HttpRequest] = PipelineRequest(request, PipelineContext(None))
        request.headers["x-ms-client-request-id"] = str(uuid.uuid4())
        for policy in self._preparers:
            policy.on_request(pipeline_request)
        # The tracing policy decides itself whether tracing is on (a span only then), as in the pipeline.
        tracing = self._tracing
        if tracing is not None:
            tracing.on_request(pipeline_request)
        try:
            answer = self._session.exchange(request.method, request.url, dict(request.headers), request.content,
                                            self._timeout)
        except requests.RequestException:
            if tracing is not None:
                tracing.on_exception(pipeline_request)
            return None
        if tracing is not None:
            response = _TracedAnswer(answer.status, CaseInsensitiveDict(answer.headers))
            tracing.on_response(
                pipeline_request, PipelineResponse(request, response, pipeline_request.context))  # type: ignore[arg-type]
        return None if answer.status in _RETRIED_BY_THE_SDK else answer


@dataclass(frozen=True)
class _TracedAnswer:
    """What the tracing policy reads of an answer to end its span."""

    status_code: int
    headers: CaseInsensitiveDict[str]


def _send(client: TableClient, method: str, url: str, headers: dict[str, str], expected: int,
          content: bytes | None = None) -> tuple[Mapping[str, str], bytes]:
    """A storage call sent directly (:class:`DirectCalls`), else through the pipeline: the answer's
    headers and body if its status is ``expected``, else the SDK's error for that status."""
    direct = DirectCalls.of(client)
    answer = direct.send(HttpRequest(method, url, headers=dict(headers), content=content)) if direct else None
    if answer is None:
        response = _run(client, HttpRequest(method, url, headers=headers, content=content), expected).http_response
        return response.headers, response.body()
    if answer.status == expected:
        return CaseInsensitiveDict(answer.headers), answer.content
    raise _refusal(answer, client.table_name)


def _refusal(answer: Answer, table: str) -> HttpResponseError:
    """The SDK's exception for a refusal it does not retry: 404 → ResourceNotFoundError, 409 →
    ResourceExistsError, 412 → ResourceModifiedError, else HttpResponseError; ``status_code`` set."""
    error_type: type[HttpResponseError] = {
        404: ResourceNotFoundError, 409: ResourceExistsError, 412: ResourceModifiedError,
    }.get(answer.status, HttpResponseError)
    error = error_type(message=f"table {table}: HTTP {answer.status} {answer.reason}")
    error.status_code = answer.status
    error.reason = answer.reason
    return error


@distributed_trace(name_of_span="TableClient.get_entity")  # the SDK's span name, for the dashboards
def _get_entity(client: TableClient, partition: str, row: str) -> Any:
    """REST "Query Entities" of one entity, as ``TableClient.get_entity`` sends it; the SDK's entity."""
    _, content = _send(client, "GET", _entity_url(client, partition, row), {
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0",
        "Accept": "application/json;odata=minimalmetadata",
    }, 200)
    return _convert_to_entity(json.loads(content))


@distributed_trace(name_of_span="TableClient.update_entity")  # the SDK's span name, for the dashboards
def _update_entity(client: TableClient, entity: Mapping[str, Any], etag: str, *, merge: bool) -> str:
    """REST "Update Entity" (``PUT``: the entity replaced whole) or "Merge Entity" (``PATCH``: the
    properties given merged into it) with ``If-Match: <etag>`` (``*``: whatever its version), as
    ``TableClient.update_entity(mode=REPLACE or MERGE)`` sends it; the new ETag."""
    url = _entity_url(client, entity["PartitionKey"], entity["RowKey"])
    headers, _ = _send(client, "PATCH" if merge else "PUT", url, {
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "Content-Type": "application/json",
        "Accept": "application/json", "If-Match": etag,
    }, 204, json.dumps(_add_entity_properties(entity)).encode())
    return str(headers["ETag"])


@distributed_trace(name_of_span="TableClient.create_entity")  # the SDK's span name, for the dashboards
def _create_entity(client: TableClient, entity: Mapping[str, Any]) -> None:
    """REST "Insert Entity", as ``TableClient.create_entity`` sends it, with ``Prefer: return-no-content``
    (the broker never reads the inserted entity back); ``ResourceExistsError`` when the row is there."""
    _send(client, "POST", f"{client._client._config.url}/{quote(client.table_name, safe='')}", {
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "Content-Type": "application/json",
        "Accept": "application/json;odata=minimalmetadata", "Prefer": "return-no-content",
    }, 204, json.dumps(_add_entity_properties(entity)).encode())


@distributed_trace(name_of_span="TableClient.submit_transaction")  # the SDK's span name, for the dashboards
def _submit_upserts(client: TableClient, entities: list[dict[str, Any]]) -> None:
    """An entity group transaction of "Insert Or Replace Entity" operations (REST: "Performing entity
    group transactions"), sent through the table client's own pipeline (signing, retries, tracing).

    The SDK's ``submit_transaction`` builds the multipart body and parses the answer with the ``email``
    package: about four times the CPU of a single write, on every sign-in (its audit rows). The body is
    the same multipart/mixed changeset, written here directly; the answer's parts are only checked for
    their status line (all 2xx, else the first refusal is raised as the SDK raises it, an
    :class:`HttpResponseError` with that status)."""
    base = f"{client.scheme}://{client._primary_hostname}"
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    date = formatdate(usegmt=True)
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, entity in enumerate(entities):
        body = json.dumps(_add_entity_properties(entity)).encode()
        keys = f"PartitionKey='{_url_key(entity['PartitionKey'])}',RowKey='{_url_key(entity['RowKey'])}'"
        parts.append((
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {index}\r\n\r\n"
            f"PUT {base}/{client.table_name}({keys}) HTTP/1.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"x-ms-version: {client.api_version}\r\nDataServiceVersion: 3.0\r\nAccept: application/json\r\n"
            f"x-ms-date: {date}\r\nDate: {date}\r\n\r\n"
        ).encode() + body + b"\r\n")
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n".encode())
    request = HttpRequest("POST", f"{base}/$batch", content=b"".join(parts), headers={
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={batch}", "Accept": "application/json",
    })
    # Streamed, as the SDK sends it: the decoding policy would try to read multipart/mixed as JSON.
    response = client._client.send_request(request, stream=True)
    response.read()
    if response.status_code != 202:
        raise HttpResponseError(message=f"entity group transaction: HTTP {response.status_code}", response=response)
    refused = [int(status) for status in _PART_STATUS.findall(response.content) if not 200 <= int(status) < 300]
    if refused:
        error = HttpResponseError(message=f"entity group transaction refused: HTTP {refused[0]}", response=response)
        error.status_code = refused[0]
        raise error


_PART_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) ", re.MULTILINE)


def _url_key(key: str) -> str:
    """A key in an entity's URL: quotes doubled (OData), then percent-encoded as the SDK does."""
    return quote(key.replace("'", "''"), safe="")


def _record_status(statuses: list[int]) -> Callable[[Any], None]:
    def hook(response: Any) -> None:
        statuses.append(response.http_response.status_code)

    return hook


@dataclass(frozen=True)
class Answer:
    """A storage answer read whole: status, reason, header pairs and body."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    content: bytes


class LeanSession(Session):
    """A requests session whose ``request`` sends a storage call over ``http.client``, and nothing else.

    ``Session.request`` merges cookies, authentication, hooks and environment settings into every
    request, and its adapter goes through urllib3's pool and response machinery: the SDK's storage
    calls use none of it (the SDK signs, retries and times them itself, Table Storage sets no cookie),
    and it was over a third of the CPU of a storage call. Here a call is one request on a kept-alive
    ``http.client`` connection taken from this session's pool (checked for a close by the server before
    it is reused, as urllib3 does; TLS verified against certifi's roots, as requests does), its answer read whole and
    wrapped in a :class:`requests.Response`; the errors are requests' own, as its adapter raises them,
    so that the SDK maps them to its own as before. Anything else (files, redirects, proxies, a client
    certificate, another CA, other options) takes the full requests path.
    """

    def __init__(self) -> None:
        super().__init__()
        self._idle: dict[tuple[str, str, int | None], list[HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls = ssl.create_default_context(cafile=certifi.where())

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
        super().close()

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Mapping[str, str] | None = None, data: Any = None,
        files: Any = None, verify: bool | str = True, timeout: Any = None, cert: Any = None,
        allow_redirects: bool = False, proxies: Any = None, stream: bool = False, **kwargs: Any,
    ) -> Response:
        target = urlsplit(url)
        if (files or allow_redirects or proxies or kwargs or cert or verify is not True
                or target.scheme not in ("http", "https") or not isinstance(data, (bytes, str, type(None)))):
            return super().request(method, url, headers=headers, data=data, files=files, verify=verify,
                                   timeout=timeout, cert=cert, allow_redirects=allow_redirects, proxies=proxies,
                                   stream=stream, **kwargs)
        sent = dict(headers or {})
        sent.pop("Accept-Encoding", None)  # an identity answer: nothing to decompress
        body = data.encode("utf-8") if isinstance(data, str) else data
        answer = self.exchange(method, url, sent, body, timeout)
        response = Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response.reason = answer.reason
        response.url = url
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = answer.content
        response._content_consumed = True
        response.raw = _ReadBody()
        return response

    def exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: Any) -> Answer:
        """One request on a pooled connection, its answer read whole; requests' errors on failure.

        Every Table Storage request of the broker passes here, through the SDK's pipeline or not
        (:func:`_send`): the one place where round trips can be counted (sandbox/counting.py)."""
        target = urlsplit(url)
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connect_s, read_s = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        path = target.path + (f"?{target.query}" if target.query else "")
        key = (target.scheme, target.hostname or "", target.port)
        connection = self._connection(key, connect_s)
        try:
            connection.sock.settimeout(read_s)  # type: ignore[union-attr]
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read()
        except TimeoutError as error:
            connection.close()
            raise requests.ReadTimeout(error) from error
        except ssl.SSLError as error:
            connection.close()
            raise requests.exceptions.SSLError(error) from error
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise requests.ConnectionError(ProtocolError("Connection aborted.", error)) from error
        if answer.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.setdefault(key, []).append(connection)
        return Answer(answer.status, answer.reason, answer.getheaders(), content)

    def _connection(self, key: tuple[str, str, int | None], connect_s: float | None) -> HTTPConnection:
        """An idle connection of the pool still open, else a new one (returned to the pool after use)."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None:
                break
            if not _dropped(connection):
                return connection
            connection.close()
        scheme, host, port = key
        connection = (http.client.HTTPSConnection(host, port, timeout=connect_s, context=self._tls)
                      if scheme == "https" else http.client.HTTPConnection(host, port, timeout=connect_s))
        connection.response_class = _LeanResponse
        try:
            connection.connect()
        except TimeoutError as error:
            raise requests.ConnectTimeout(error) from error
        except ssl.SSLError as error:
            raise requests.exceptions.SSLError(error) from error
        except OSError as error:
            raise requests.ConnectionError(error) from error
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[union-attr]
        return connection


class _LeanResponse(http.client.HTTPResponse):
    """``http.client``'s response, its header block parsed without the ``email`` package.

    ``http.client.parse_headers`` hands the block to ``email.parser``: about 30 µs per storage answer, for
    a dozen plain ``Name: value`` lines that :func:`_parse_headers` reads in 9 (with http.client's own
    limits on line length and number of headers) into the same :class:`http.client.HTTPMessage`. The rest
    of :meth:`begin` is http.client's (Python 3.11), unchanged.
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]  # the 100's headers, skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _parse_headers(http.client._read_headers(self.fp))  # type: ignore[attr-defined]
        transfer_encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(transfer_encoding and transfer_encoding.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200
                or self._method == "HEAD"):  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


_HEADER_NAME = re.compile(r"[\041-\071\073-\176]+")  # the email parser's header name characters


def _parse_headers(lines: list[bytes]) -> http.client.HTTPMessage:
    """The header block's ``Name: value`` lines as ``http.client.parse_headers`` gives them; a block with
    anything else (a folded line, a name the email parser would refuse) is read by the email parser."""
    message = http.client.HTTPMessage()
    message.set_payload("")  # as the email parser leaves it: the block has no body
    for line in lines:
        if line in (b"\r\n", b"\n", b""):
            break
        name, colon, value = line.decode("iso-8859-1").partition(":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)  # type: ignore[return-value]
        message[name] = value.lstrip(" \t").rstrip("\r\n")
    return message


class _ReadBody:
    """``Response.raw`` of an answer already read whole (the SDK sets attributes on it)."""

    def close(self) -> None:
        pass


def _dropped(connection: HTTPConnection) -> bool:
    """An idle kept-alive connection that the server closed (or sent something on) is readable."""
    if connection.sock is None:
        return True
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)


def lean_transport(cls: type[RequestsTransport] = RequestsTransport) -> RequestsTransport:
    """The storage clients' transport: a :class:`LeanSession`, environment not read, the timeouts below."""
    return cls(session=LeanSession(), use_env_settings=False, connection_timeout=_CLIENT_OPTIONS["connection_timeout"],
               read_timeout=_CLIENT_OPTIONS["read_timeout"])


class LeanTableServiceClient(TableServiceClient):
    """The SDK's service client without the per-call work the broker never needs.

    Every Table Storage call runs the SDK's policy pipeline, and its fixed cost per call was the
    largest part of the CPU of ``POST /token`` (issue 9). Dropped: proxies (none on Flex: with
    ``use_env_settings`` off, requests no longer scans the whole environment for ``*_proxy`` on every
    call either), redirects (Table Storage answers none), and the two HTTP logging policies (headers
    logged at INFO, network traces off anyway). Kept: headers and version, shared-key or Entra
    signing, decoding, the retry policy with its hosts, response hooks and distributed tracing (the
    storage dependencies of Application Insights). The table clients of :meth:`get_table_client`
    share these policies and the one connection pool. The entity calls of a sign-in and of ``/token``
    skip the pipeline on their first try (:class:`DirectCalls`) with these same policy objects.
    """

    _DROPPED = (ProxyPolicy, RedirectPolicy, HttpLoggingPolicy, NetworkTraceLoggingPolicy)

    def _configure_policies(self, **kwargs: Any) -> list[Any]:
        policies = super()._configure_policies(**kwargs)
        return [policy for policy in policies if not isinstance(policy, self._DROPPED)]


class Tables:
    """The broker's tables, created lazily from one service client (one per worker)."""

    def __init__(self, service: TableServiceClient, clock: Clock = time.time) -> None:
        self._service = service
        self._clock = clock
        self._stores: dict[str, TableStore] = {}

    @classmethod
    def from_connection_string(cls, connection_string: str, clock: Clock = time.time) -> Tables:
        service = LeanTableServiceClient.from_connection_string(connection_string, transport=lean_transport(),
                                                                **_CLIENT_OPTIONS)
        return cls(service, clock)

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: Any, clock: Clock = time.time) -> Tables:
        service = LeanTableServiceClient(endpoint=endpoint, credential=credential, transport=lean_transport(),
                                         **_CLIENT_OPTIONS)
        return cls(service, clock)

    def __getitem__(self, name: str) -> TableStore:
        if name not in TABLE_NAMES:
            raise KeyError(f"unknown table {name!r}")
        store = self._stores.get(name)
        if store is None:
            store = TableStore(self._service.get_table_client(name), self._clock)
            self._stores[name] = store
        return store

    def sweep_expired(self) -> dict[str, int]:
        """Delete the expired rows of every transient table (docs/design.md: a timer sweeps them)."""
        return {name: self[name].sweep() for name in TRANSIENT_TABLES}

    def create_all(self) -> None:
        """Create the tables that do not exist yet (sandbox and tests; Bicep does it in Azure)."""
        with _translate_outage("*"):
            for name in TABLE_NAMES:
                self._service.create_table_if_not_exists(name)


# A sign-in must not hang on a dead storage account: fail fast, retry little, answer 503.
_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 10,
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    # No proxy on Flex, the storage endpoint's certificate is public: nothing to read from the
    # environment, which requests would otherwise scan on every call.
    "use_env_settings": False,
}
