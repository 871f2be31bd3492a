"""Session-wide fixtures: local TLS material, an in-memory Azurite and the whole sandbox, once per run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sandbox import azurite
from sandbox import tls
from sandbox.run import Ports
from sandbox.run import RegisteredClient
from sandbox.run import Sandbox
from sandbox.servers import free_port
from sandbox.servers import serve
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from tests.e2e.backchannel_receiver import BackchannelReceiver

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture
def otel_providers() -> tuple[TracerProvider, InMemorySpanExporter, LoggerProvider, InMemoryLogRecordExporter]:
    """A real SDK tracer and logger provider of the test's own (never the global ones), whose first
    processor is an in-memory exporter's, as the worker registers its batch processor before the
    broker's code runs; then the broker's scrubbers put first, as ``install_scrubbers`` does in the app.
    (Imported here, not at the top: the other tests import nothing of OpenTelemetry.)"""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from sanscouture.adapters import telemetry

    spans, records = InMemorySpanExporter(), InMemoryLogRecordExporter()
    tracer_provider, logger_provider = TracerProvider(), LoggerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    assert telemetry.prepend_scrubbers(tracer_provider, logger_provider)
    return tracer_provider, spans, logger_provider, records


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> tls.LocalTls:
    """A CA and server certificate for this test run, trusted by requests in this process."""
    material = tls.ensure(Path(tmp_path_factory.mktemp("tls")))
    material.trust_in_this_process()
    return material


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[azurite.Azurite]:
    """Azurite's Table and Queue services in memory on free ports, for the whole session."""
    server = azurite.start(free_port(), queue_port=free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def backchannel_receiver(local_tls: tls.LocalTls) -> Iterator[tuple[BackchannelReceiver, int]]:
    """``rp-bcl``'s back-channel logout endpoint (tests/e2e/backchannel_receiver.py) on a free port."""
    receiver, port = BackchannelReceiver(client_id="rp-bcl"), free_port()
    server = serve("rp-bcl", receiver, port, local_tls)
    yield receiver, port
    server.stop()


@pytest.fixture(scope="session")
def sandbox(
    local_tls: tls.LocalTls, azurite_server: azurite.Azurite, tmp_path_factory: pytest.TempPathFactory,
    backchannel_receiver: tuple[BackchannelReceiver, int],
) -> Iterator[Sandbox]:
    """The whole sandbox (broker host, Entra and PSC simulators, demo service) on free ports.

    Besides the demo service, three relying parties are registered, one per client authentication
    method: ``rp-basic``, ``rp-post`` and ``rp-jwt`` (private_key_jwt; its private JWK is on the
    RegisteredClient); ``rp-refresh``, registered for the ``refresh_token`` grant; and ``rp-par``, which
    must use pushed authorization requests (RFC 9126 6).
    """
    data_dir = Path(tmp_path_factory.mktemp("sandbox"))
    # The session's CA is reused so that one trust bundle serves every test.
    (data_dir / "tls").mkdir()
    for name in ("ca.pem", "server.pem", "server-key.pem", "bundle.pem"):
        (data_dir / "tls" / name).write_bytes((local_tls.directory / name).read_bytes())
    running = Sandbox(
        ports=Ports(demo=free_port(), broker=free_port(), entra=free_port(), psc=free_port(), azurite=0),
        data_dir=data_dir,
        azurite_connection=azurite_server.connection_string,
        queues_connection=azurite_server.queue_connection_string,
        clients=make_test_clients(backchannel_port=backchannel_receiver[1]),
        # Every test signs in from 127.0.0.1: the per-source limits are tested with their own limiters
        # (tests/e2e/test_abuse_limits.py), not left to catch the rest of the suite.
        # Back-channel logout waits 5 s for an answer (the default), retries after 1 s, then 2 s, and
        # dead-letters at the third attempt: the tests see the whole backoff in seconds.
        broker_overrides={"BROKER_LIMIT_JOURNEYS_PER_MINUTE": "1000000",
                          "BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE": "1000000",
                          "BROKER_BACKCHANNEL_RETRY_SECONDS": "1", "BROKER_BACKCHANNEL_MAX_ATTEMPTS": "3"},
    )
    backchannel_receiver[0].issuer = running.broker_url
    running.start()
    yield running
    running.stop()


def make_test_clients(backchannel_port: int | None = None) -> list[RegisteredClient]:
    """One relying party per client authentication method, one for refresh, one that must use PAR, each
    with its own redirect URI; with ``backchannel_port``, ``rp-bcl``, registered for back-channel
    logout (its endpoint on that port, ``sid`` required)."""
    private_jwk = generate_private_jwk()
    return [
        RegisteredClient(
            client_id="rp-basic",
            client_name="Service de test",
            redirect_uris=("https://rp-basic.example.fr/callback",),
            post_logout_redirect_uris=("https://rp-basic.example.fr/logged-out",),
            secret=secrets.token_urlsafe(32),
        ),
        RegisteredClient(
            client_id="rp-post",
            redirect_uris=("https://rp-post.example.fr/callback",),
            post_logout_redirect_uris=("https://rp-post.example.fr/logged-out",),
            secret=secrets.token_urlsafe(32),
            auth_method="client_secret_post",
        ),
        RegisteredClient(
            client_id="rp-jwt",
            redirect_uris=("https://rp-jwt.example.fr/callback",),
            post_logout_redirect_uris=("https://rp-jwt.example.fr/logged-out",),
            auth_method="private_key_jwt",
            jwks={"keys": [public_jwk(private_jwk)]},
            private_jwk=private_jwk,
        ),
        RegisteredClient(
            client_id="rp-refresh",
            redirect_uris=("https://rp-refresh.example.fr/callback",),
            secret=secrets.token_urlsafe(32),
            grant_types=("authorization_code", "refresh_token"),
        ),
        RegisteredClient(
            client_id="rp-par",
            redirect_uris=("https://rp-par.example.fr/callback",),
            secret=secrets.token_urlsafe(32),
            require_pushed_authorization_requests=True,
        ),
        *([RegisteredClient(
            client_id="rp-bcl",
            redirect_uris=("https://rp-bcl.example.fr/callback",),
            post_logout_redirect_uris=("https://rp-bcl.example.fr/logged-out",),
            secret=secrets.token_urlsafe(32),
            backchannel_logout_uri=f"https://127.0.0.1:{backchannel_port}/backchannel-logout",
            backchannel_logout_session_required=True,
        )] if backchannel_port is not None else []),
    ]
