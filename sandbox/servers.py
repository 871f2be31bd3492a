"""Run WSGI applications over HTTPS on 127.0.0.1, each in its own thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

from sandbox.tls import LocalTls

WsgiApp = Callable[..., Any]


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
    server: BaseWSGIServer
    thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class PathOnlyRequestHandler(WSGIRequestHandler):
    """Access log without query strings: they carry authorization codes and states (never logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # A request line that could not be parsed (answered 400 by http.server) has no path yet: without
        # this default the handler raised and the client got no answer at all.
        path = str(vars(self).get("path", "-")).split("?", 1)[0]
        self.log("info", '"%s %s" %s', self.command, path, code)


def serve(name: str, app: WsgiApp, port: int, tls: LocalTls | None, host: str = "127.0.0.1") -> RunningServer:
    """Start ``app`` on ``host:port`` (https when ``tls`` is given) in a daemon thread."""
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        ssl_context=tls.server_context() if tls else None,
        request_handler=PathOnlyRequestHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox-{name}", daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    return RunningServer(name=name, url=f"{scheme}://{host}:{port}", server=server, thread=thread)
