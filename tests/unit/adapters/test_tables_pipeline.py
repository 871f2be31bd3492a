"""The broker's Table Storage clients run a lean SDK pipeline (issue 9: its per-call cost dominated ``/token``)."""

from __future__ import annotations

import http.client
import io

import pytest
from azure.core.pipeline.policies import DistributedTracingPolicy
from azure.core.pipeline.policies import HttpLoggingPolicy
from azure.core.pipeline.policies import NetworkTraceLoggingPolicy
from azure.core.pipeline.policies import ProxyPolicy
from azure.core.pipeline.policies import RedirectPolicy
from azure.data.tables._policies import TablesRetryPolicy

from sanscouture.adapters.tables import LeanSession
from sanscouture.adapters.tables import Tables
from sanscouture.adapters.tables import _parse_headers

AZURITE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
           "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
           "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")


def test_every_table_client_drops_proxy_redirect_and_http_logging_but_keeps_retry_and_tracing() -> None:
    tables = Tables.from_connection_string(AZURITE)
    for name in ("codes", "bindings"):
        pipeline = tables[name]._client._client._client._pipeline  # what the table client's calls run through
        kinds = {type(getattr(policy, "_policy", policy)) for policy in pipeline._impl_policies}
        assert not kinds & {ProxyPolicy, RedirectPolicy, HttpLoggingPolicy, NetworkTraceLoggingPolicy}, name
        assert {TablesRetryPolicy, DistributedTracingPolicy} <= kinds, name


def test_the_transport_does_not_read_proxies_from_the_environment_on_every_call() -> None:
    tables = Tables.from_connection_string(AZURITE)
    transport = tables._service._client._client._pipeline._transport
    assert transport._use_env_settings is False


def test_the_transport_sends_through_the_lean_session() -> None:
    tables = Tables.from_connection_string(AZURITE)
    transport = tables._service._client._client._pipeline._transport
    assert type(transport.session) is LeanSession


@pytest.mark.parametrize("block", [
    b"Server: Azurite\r\n\r\n",
    b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n"
    b"ETag: W/\"datetime'2026-12-02T01%3A00%3A00.1234567Z'\"\r\nx-ms-version: 2019-02-02\r\n"
    b"Date: Wed, 02 Dec 2026 01:00:00 GMT\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Empty:\r\nX-Spaces: \t padded value  \r\n\n",
    b"X-Folded: first\r\n second line\r\nContent-Length: 0\r\n\r\n",  # folded: the email parser's reading
    b"Bad Header: x\r\nContent-Length: 3\r\n\r\n",  # a name with a space: the email parser's reading
    b"Caf\xe9: latin-1 \xe9\r\nNo colon here\r\n\r\n",
    b"\r\n",
])
def test_the_transport_reads_a_header_block_as_http_client_does(block: bytes) -> None:
    """_parse_headers (the storage transport's header reading) gives what http.client.parse_headers gives."""
    lines = http.client._read_headers(io.BytesIO(block))  # type: ignore[attr-defined]
    ours = _parse_headers(lines)
    theirs = http.client.parse_headers(io.BytesIO(block))
    assert isinstance(ours, http.client.HTTPMessage)
    assert ours.items() == theirs.items()
    assert ours.get_all("set-cookie") == theirs.get_all("set-cookie")
    assert ours.get("content-length") == theirs.get("content-length")
    assert ours.get_payload() == theirs.get_payload()

