"""A client's ``jwks_uri`` read over real HTTPS: size limit while streaming, and an overall deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.servers import RunningServer
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls
from sanscouture.adapters import client_jwks
from sanscouture.adapters.client_jwks import ClientJwksFetcher
from sanscouture.adapters.http import UpstreamSession
from sanscouture.errors import InvalidClientError

KEYS = json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]}).encode()


def hostile_client_server(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """/ok a JWK Set; /huge 1 MiB without Content-Length; /drip one byte every 0.2 s, for ever."""
    path = environ["PATH_INFO"]
    start_response("200 OK", [("Content-Type", "application/json")])
    if path == "/ok":
        return iter([KEYS])
    if path == "/huge":
        return iter([b" " * 65536] * 16)

    def drip() -> Iterator[bytes]:
        for _ in range(200):
            time.sleep(0.2)
            yield b" "

    return drip()


@pytest.fixture(scope="module")
def server(local_tls: LocalTls) -> Iterator[RunningServer]:
    port = free_port()
    running = serve("hostile-client", hostile_client_server, port, local_tls)
    yield running
    running.stop()


@pytest.fixture
def fetch(local_tls: LocalTls) -> ClientJwksFetcher:
    return ClientJwksFetcher(UpstreamSession(str(local_tls.bundle)))


def test_a_jwk_set_is_read(server: RunningServer, fetch: ClientJwksFetcher) -> None:
    assert fetch(f"{server.url}/ok")["keys"][0]["kid"] == "k1"


def test_a_body_larger_than_64_kib_is_refused_without_reading_it_all(
    server: RunningServer, fetch: ClientJwksFetcher
) -> None:
    with pytest.raises(InvalidClientError) as refused:
        fetch(f"{server.url}/huge")
    assert "larger than 64 KiB" in refused.value.detail


def test_a_server_dripping_bytes_is_cut_off_at_the_deadline(
    server: RunningServer, fetch: ClientJwksFetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_jwks, "FETCH_DEADLINE", 1.0)
    started = time.monotonic()
    with pytest.raises(InvalidClientError) as refused:
        fetch(f"{server.url}/drip")
    assert time.monotonic() - started < 3  # each byte came well within the read timeout
    assert "not received within" in refused.value.detail
