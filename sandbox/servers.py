"""Run WSGI applications over HTTPS on 127.0.0.1, each in its own thread, with HTTP/1.1 keep-alive.

Werkzeug's development server closes the connection after every response (``Connection: close``), so
every request of a sign-in paid a new TCP connection and TLS handshake: nothing like Azure's front end
or the identity providers, which keep connections alive. This server answers HTTP/1.1 with a
``Content-Length`` on every response (errors and redirects included), reads each request's body in full
before the next request line, closes idle connections after :data:`IDLE_TIMEOUT_S`, and does the TLS
handshake in the connection's thread, not in the accepting one.
"""

from __future__ import annotations

import io
import itertools
import socket
import ssl
import threading
import traceback
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from werkzeug.serving import DechunkedInput
from werkzeug.serving import ThreadedWSGIServer
from werkzeug.serving import WSGIRequestHandler

from sandbox.tls import LocalTls

WsgiApp = Callable[..., Any]

IDLE_TIMEOUT_S = 30.0
"""An idle keep-alive connection is closed after this long (the thread serving it ends)."""

_NO_BODY_STATUSES = frozenset({204, 304})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A started server; ``stop()`` shuts it down and waits for its thread."""

    name: str
    url: str
    server: ThreadedWSGIServer
    thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class KeepAliveRequestHandler(WSGIRequestHandler):
    """HTTP/1.1 with persistent connections; access log without query strings (they carry codes and
    states, never logged)."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S  # StreamRequestHandler.setup: the socket's timeout, so idle connections end

    def handle(self) -> None:
        try:
            if isinstance(self.connection, ssl.SSLSocket):
                # In this connection's thread, bounded by the timeout: a silent client blocks only itself.
                self.connection.do_handshake()
            super().handle()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            self.close_connection = True  # a client that does not trust the CA, speaks plain HTTP, or left

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A request line that could not be parsed (answered 400 by http.server) has no path yet: without
        # this default the handler raised and the client got no answer at all.
        path = str(vars(self).get("path", "-")).split("?", 1)[0]
        self.log("info", '"%s %s" %s', self.command, path, code)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        # The whole body is read before the application runs: whatever it leaves unread would
        # otherwise be taken for the next request line of this connection.
        body = self._read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        try:
            status, headers, payload, rest = _call(self.server.app, environ)
        except Exception:
            self.log_error("Error on request:\n%s", traceback.format_exc())
            status, headers, payload, rest = "500 Internal Server Error", [("Content-Type", "text/plain")], b"", None
        if rest is None:
            self._send(status, headers, payload)
        else:
            self._stream(status, headers, payload, rest)

    def _stream(self, status: str, headers: list[tuple[str, str]], first: bytes, rest: Iterator[bytes]) -> None:
        """A body of unknown length, as the application yields it: chunked (HTTP/1.1), else until close."""
        try:
            code_text, _, reason = status.partition(" ")
            self.send_response(int(code_text), reason)
            for name, value in headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            chunked = self.request_version == "HTTP/1.1"
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.close_connection = True
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            for chunk in itertools.chain([first], rest):
                if not chunk:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
        except Exception:
            self.close_connection = True  # the client left, or the application failed half-way
            raise
        finally:
            close = getattr(rest, "close", None)
            if close is not None:
                close()

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        stream = environ["wsgi.input"]
        if isinstance(stream, DechunkedInput):
            return bytes(stream.read())
        length = environ.get("CONTENT_LENGTH", "")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            self.close_connection = True
            return b""
        return bytes(self.rfile.read(size)) if size > 0 else b""

    def _send(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        self.send_response(code, reason)
        for name, value in headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        if code not in _NO_BODY_STATUSES and not 100 <= code < 200:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Head and body in one write (one TLS record, one segment when small): as two, the body waits
        # for the client's delayed ACK of the head on a kept-alive connection (Nagle's algorithm).
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and code not in _NO_BODY_STATUSES:
            self._headers_buffer.append(payload)
        self.flush_headers()


def _call(
    app: WsgiApp, environ: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], bytes, Iterator[bytes] | None]:
    """Run the WSGI application: its status, headers and whole body; or, for a body of unknown length
    (an iterator and no ``Content-Length``: a stream), its first chunk and the iterator of the rest."""
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, list(headers))]
        return chunks.append

    chunks: list[bytes] = []
    result: Iterable[bytes] = app(environ, start_response)
    streamed = False
    try:
        if isinstance(result, (list, tuple)):
            chunks.extend(result)
        else:
            rest = iter(result)
            first = next(rest, b"")  # a lazy application calls start_response here
            if not started:
                raise RuntimeError("the application returned without calling start_response")
            if not any(name.lower() == "content-length" for name, _ in started[0][1]):
                streamed = True
                return started[0][0], started[0][1], b"".join(chunks) + first, rest
            chunks.append(first)
            chunks.extend(rest)
    finally:
        close = getattr(result, "close", None)
        if close is not None and not streamed:
            close()
    if not started:
        raise RuntimeError("the application returned without calling start_response")
    status, headers = started[0]
    return status, headers, b"".join(chunks), None


class KeepAliveServer(ThreadedWSGIServer):
    """Werkzeug's threaded server (daemon threads) with TLS done per connection, in its own thread."""

    daemon_threads = True
    # Stopping must not wait for idle kept-alive connections (up to IDLE_TIMEOUT_S each): their
    # threads are daemons and end with the socket.
    block_on_close = False

    def __init__(self, host: str, port: int, app: WsgiApp, tls_context: ssl.SSLContext | None) -> None:
        super().__init__(host, port, app, handler=KeepAliveRequestHandler)
        # Werkzeug reads ssl_context for wsgi.url_scheme; the listening socket itself stays plain.
        self.ssl_context = tls_context
        self._tls_context = tls_context

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answers are written whole, at once
        if self._tls_context is None:
            return connection, address
        wrapped = self._tls_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return wrapped, address


def serve(name: str, app: WsgiApp, port: int, tls: LocalTls | None, host: str = "127.0.0.1") -> RunningServer:
    """Start ``app`` on ``host:port`` (https when ``tls`` is given) in a daemon thread."""
    server = KeepAliveServer(host, port, app, tls.server_context() if tls else None)
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox-{name}", daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    return RunningServer(name=name, url=f"{scheme}://{host}:{port}", server=server, thread=thread)
