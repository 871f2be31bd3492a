"""The two calls of ``POST /token`` (read an entity, replace it ``If-Match``) are sent directly, outside the SDK's
pipeline, and behave as the pipeline does: signed, refused with the SDK's errors, retried by the pipeline.

Against Azurite, which checks the shared-key signature of every request.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport

from sandbox import azurite
from sanscouture.adapters import tables as tables_module
from sanscouture.adapters.tables import Answer
from sanscouture.adapters.tables import DirectCalls
from sanscouture.adapters.tables import LeanSession
from sanscouture.adapters.tables import LeanTableServiceClient
from sanscouture.adapters.tables import Tables
from sanscouture.errors import StorageUnavailableError


class ScriptedSession(LeanSession):
    """The broker's session, with failures scripted for its first exchanges, and every exchange recorded."""

    def __init__(self, failures: list[Exception | int] | None = None) -> None:
        super().__init__()
        self.failures = list(failures or [])
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: Any) -> Answer:
        self.sent.append((method, url, dict(headers)))
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return Answer(failure, "Scripted", [("Content-Length", "0")], b"")
        return super().exchange(method, url, headers, body, timeout)


def tables_over(server: azurite.Azurite, session: LeanSession, **options: Any) -> Tables:
    transport = RequestsTransport(session=session, use_env_settings=False)
    service = LeanTableServiceClient.from_connection_string(
        server.connection_string, transport=transport, **{**tables_module._CLIENT_OPTIONS, **options})
    return Tables(service)


@pytest.fixture()
def row(tables: Tables) -> tuple[str, str]:
    partition, key = f"p-{uuid.uuid4()}", "r"
    tables["codes"].save(partition, key, {"value": "first"}, 3600)
    return partition, key


def test_reads_inserts_and_conditional_writes_never_run_the_pipeline(
    tables: Tables, row: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_pipeline(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("sent through the SDK's pipeline")

    store = tables["codes"]
    monkeypatch.setattr(tables_module, "_run", no_pipeline)
    for operation in ("get_entity", "create_entity", "update_entity"):
        monkeypatch.setattr(store._client, operation, no_pipeline)
    found = store.find(*row)
    assert found is not None and found.data == {"value": "first"}
    replaced = store.replace(found, {"value": "second"}, 3600)
    assert replaced is not None and replaced.etag != found.etag
    assert store.replace(found, {"value": "third"}, 3600) is None  # 412: the ETag read is stale
    assert store.find(row[0], "absent") is None  # 404
    assert store.find(*row).data == {"value": "second"}  # type: ignore[union-attr]

    assert store.insert(row[0], "new", {"value": "inserted"}, 3600) is True
    assert store.insert(row[0], "new", {"value": "again"}, 3600) is False  # 409: taken
    inserted = store.find(row[0], "new")
    assert inserted is not None and inserted.data == {"value": "inserted"}
    etag = store.merge_if_unchanged(row[0], "new", inserted.etag, {"used": 1})
    assert etag is not None and etag != inserted.etag
    assert store.merge_if_unchanged(row[0], "new", inserted.etag, {"used": 2}) is None  # 412
    assert store.merge(row[0], "new", {"seen": "yes"}) is True
    assert store.merge(row[0], "absent", {"seen": "yes"}) is False  # 404: never created
    assert store.find(row[0], "new").data == {"value": "inserted", "used": 1, "seen": "yes"}  # type: ignore[union-attr]


def test_the_direct_request_carries_the_pipeline_s_headers_and_a_shared_key_signature(
    azurite_server: azurite.Azurite, row: tuple[str, str],
) -> None:
    session = ScriptedSession()
    tables_over(azurite_server, session)["codes"].find(*row)
    ((method, url, headers),) = session.sent
    assert method == "GET" and url.endswith(f"/codes(PartitionKey='{row[0]}',RowKey='r')")
    assert headers["Authorization"].startswith("SharedKey devstoreaccount1:")
    assert headers["x-ms-version"] == "2019-02-02" and headers["x-ms-date"] == headers["Date"]
    assert headers["User-Agent"].startswith("azsdk-python-data-tables/")
    uuid.UUID(headers["x-ms-client-request-id"])


def test_a_wrong_account_key_is_refused_by_the_storage_so_the_signature_is_checked(
    azurite_server: azurite.Azurite, row: tuple[str, str],
) -> None:
    wrong = azurite_server.connection_string.replace(azurite.ACCOUNT_KEY, "d3Jvbmcga2V5IG9mIHRoZSByaWdodCBsZW5ndGgh")
    tables = Tables.from_connection_string(wrong)
    with pytest.raises(Exception) as refused:
        tables["codes"].find(*row)
    assert getattr(refused.value, "status_code", None) == 403


@pytest.mark.parametrize("failure", [
    requests.ConnectionError("connection reset"), requests.ReadTimeout("no answer"), 503, 500, 429, 408,
])
def test_what_the_pipeline_retries_is_sent_again_through_the_pipeline(
    azurite_server: azurite.Azurite, row: tuple[str, str], failure: Exception | int,
) -> None:
    session = ScriptedSession([failure])
    found = tables_over(azurite_server, session)["codes"].find(*row)
    assert found is not None and found.data == {"value": "first"}
    assert len(session.sent) == 2  # the direct try, then the pipeline's


def test_a_storage_that_keeps_failing_answers_storage_unavailable_after_the_pipeline_s_retries(
    azurite_server: azurite.Azurite, row: tuple[str, str],
) -> None:
    session = ScriptedSession([503] * 10)
    with pytest.raises(StorageUnavailableError):
        tables_over(azurite_server, session, retry_backoff_factor=0.01)["codes"].find(*row)
    assert len(session.sent) == 1 + 1 + tables_module._CLIENT_OPTIONS["retry_total"]


def test_a_refusal_the_pipeline_would_not_retry_is_raised_at_once_as_the_sdk_raises_it(
    azurite_server: azurite.Azurite, row: tuple[str, str],
) -> None:
    session = ScriptedSession([400])
    with pytest.raises(Exception) as refused:
        tables_over(azurite_server, session)["codes"].find(*row)
    assert refused.typename == "InvalidRequestError"  # the broker's 400: the request carried a bad value
    assert len(session.sent) == 1


class CountingCredential:
    """A token credential as ``ManagedIdentityCredential`` is one: a token valid one hour."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.serial = itertools.count(1)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-{next(self.serial)}", int(time.time()) + 3600)


def test_with_a_managed_identity_the_direct_request_carries_the_bearer_token_cached_by_the_sdk_policy() -> None:
    session = ScriptedSession([404, 404])  # answered by the script: no storage account is contacted
    credential = CountingCredential()
    tables = Tables(LeanTableServiceClient(
        endpoint="https://account.table.core.windows.net", credential=credential,
        transport=RequestsTransport(session=session, use_env_settings=False), **tables_module._CLIENT_OPTIONS))
    store = tables["codes"]
    assert store.find("p", "r") is None and store.find("p", "s") is None
    assert [headers["Authorization"] for _, _, headers in session.sent] == ["Bearer token-1", "Bearer token-1"]
    assert credential.scopes == [("https://storage.azure.com/.default",)]
    assert DirectCalls.of(store._client) is not None
