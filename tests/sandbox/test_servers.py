"""The sandbox's HTTPS servers keep connections alive (HTTP/1.1) as Azure's front end and the identity
providers do: one TLS handshake serves many requests, whatever each response is."""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import servers
from sandbox.servers import RunningServer
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/redirect":
        start_response("302 Found", [("Location", "/ok")])
        return []
    if path == "/boom":
        raise RuntimeError("a failing handler")
    if path == "/echo":
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got ", body]
    if path == "/ignore-body":  # answers without reading the body: it must not leak into the next request
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"refused"]
    if path == "/stream":  # a body of unknown length, yielded as it comes
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (part for part in (b"one ", b"", b"two"))
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"o", b"k"]


@pytest.fixture(scope="module")
def server(local_tls: LocalTls) -> Iterator[RunningServer]:
    running = serve("keep-alive-test", app, free_port(), local_tls)
    yield running
    running.stop()


def connect(server: RunningServer, local_tls: LocalTls) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(local_tls.ca))
    return http.client.HTTPSConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), context=context, timeout=10)


def test_one_connection_serves_every_kind_of_response(server: RunningServer, local_tls: LocalTls) -> None:
    connection = connect(server, local_tls)
    seen: list[tuple[str, int, str | None, bytes]] = []
    first_socket = None
    for method, path, body in (("GET", "/ok", None), ("GET", "/redirect", None), ("GET", "/missing-is-ok", None),
                               ("POST", "/ignore-body", b"x" * 70_000), ("POST", "/echo", b"abc"),
                               ("GET", "/boom", None), ("GET", "/empty", None), ("HEAD", "/ok", None),
                               ("GET", "/stream", None), ("GET", "/ok", None)):
        connection.request(method, path, body=body)
        response = connection.getresponse()
        seen.append((path, response.status, response.getheader("Content-Length"), response.read()))
        assert response.getheader("Connection") is None, path
        first_socket = first_socket or connection.sock
        assert connection.sock is first_socket, f"reconnected before {path}"
    connection.close()
    assert seen == [
        ("/ok", 200, "2", b"ok"),
        ("/redirect", 302, "0", b""),
        ("/missing-is-ok", 200, "2", b"ok"),
        ("/ignore-body", 400, "7", b"refused"),
        ("/echo", 200, "7", b"got abc"),
        ("/boom", 500, "0", b""),
        ("/empty", 204, None, b""),
        ("/ok", 200, "2", b""),  # HEAD: the length of the body a GET would get, no body
        ("/stream", 200, None, b"one two"),  # chunked: sent as the application yields it
        ("/ok", 200, "2", b"ok"),
    ]


def test_a_client_asking_to_close_gets_connection_close(server: RunningServer, local_tls: LocalTls) -> None:
    connection = connect(server, local_tls)
    connection.request("GET", "/ok", headers={"Connection": "close"})
    response = connection.getresponse()
    assert (response.status, response.getheader("Connection"), response.read()) == (200, "close", b"ok")
    connection.close()


def test_an_idle_connection_is_closed_by_the_server(local_tls: LocalTls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers.KeepAliveRequestHandler, "timeout", 0.5)
    running = serve("idle-test", app, free_port(), local_tls)
    try:
        connection = connect(running, local_tls)
        connection.request("GET", "/ok")
        assert connection.getresponse().read() == b"ok"
        assert connection.sock is not None
        started = time.monotonic()
        assert connection.sock.recv(1) == b""  # the server closed it once idle
        assert time.monotonic() - started < 5
        connection.close()
    finally:
        running.stop()


def test_stopping_does_not_wait_for_an_idle_kept_alive_connection(local_tls: LocalTls) -> None:
    running = serve("stop-test", app, free_port(), local_tls)
    connection = connect(running, local_tls)
    connection.request("GET", "/ok")
    assert connection.getresponse().read() == b"ok"  # the connection stays open, idle
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 5
    connection.close()
