"""The broker's Table Storage clients run a lean SDK pipeline (issue 9: its per-call cost dominated ``/token``)."""

from __future__ import annotations

from azure.core.pipeline.policies import DistributedTracingPolicy
from azure.core.pipeline.policies import HttpLoggingPolicy
from azure.core.pipeline.policies import NetworkTraceLoggingPolicy
from azure.core.pipeline.policies import ProxyPolicy
from azure.core.pipeline.policies import RedirectPolicy
from azure.data.tables._policies import TablesRetryPolicy

from sanscouture.adapters.tables import LeanSession
from sanscouture.adapters.tables import Tables

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
