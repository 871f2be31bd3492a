"""The local Functions host passes requests and responses through unchanged, over real HTTPS."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import azure.functions as func
import pytest
import requests

from sandbox.host import FunctionsHost
from sandbox.host import compile_template
from sandbox.servers import RunningServer
from sandbox.servers import free_port
from sandbox.servers import serve
from sandbox.tls import LocalTls


def build_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{item_id}/parts/{part}", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        payload = {
            "method": req.method,
            "route": dict(req.route_params),
            "query": dict(req.params),
            "form": {key: req.form[key] for key in req.form},
            "body": req.get_body().decode(),
            "x_custom": req.headers.get("X-Custom"),
        }
        response = func.HttpResponse(json.dumps(payload), status_code=201, mimetype="application/json")
        response.headers.add("Set-Cookie", "a=1; Path=/; Secure; HttpOnly")
        response.headers.add("Set-Cookie", "b=2; Path=/; Secure")
        return response

    @app.route(route=".well-known/openid-configuration", methods=["GET"])
    def discovery(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("{}", mimetype="application/json")

    @app.route(route="boom", methods=["GET"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret detail that must not leak")

    return app


@pytest.fixture(scope="module")
def server(local_tls: LocalTls) -> Iterator[RunningServer]:
    running = serve("host-test", FunctionsHost(build_app()), free_port(), local_tls)
    yield running
    running.stop()


def test_route_parameters_query_headers_form_and_status_pass_through(server: RunningServer) -> None:
    response = requests.post(
        f"{server.url}/items/42/parts/wheel?x=1&y=two",
        data={"field": "valeur é", "other": "2"},
        headers={"X-Custom": "yes"},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["method"] == "POST"
    assert body["route"] == {"item_id": "42", "part": "wheel"}
    assert body["query"] == {"x": "1", "y": "two"}
    assert body["form"] == {"field": "valeur é", "other": "2"}
    assert body["body"] == "field=valeur+%C3%A9&other=2"
    assert body["x_custom"] == "yes"


def test_two_set_cookie_headers_survive(server: RunningServer) -> None:
    response = requests.post(f"{server.url}/items/1/parts/2", timeout=10)
    cookies = response.raw.headers.getlist("Set-Cookie")
    assert cookies == ["a=1; Path=/; Secure; HttpOnly", "b=2; Path=/; Secure"]


def test_dotted_route_is_served(server: RunningServer) -> None:
    assert requests.get(f"{server.url}/.well-known/openid-configuration", timeout=10).status_code == 200


def test_unknown_route_is_404_and_wrong_method_is_405(server: RunningServer) -> None:
    assert requests.get(f"{server.url}/nothing", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/items/1/parts/2", timeout=10).status_code == 405


def test_a_request_line_that_cannot_be_parsed_is_answered_400_not_dropped(
    server: RunningServer, local_tls: LocalTls
) -> None:
    # Python's str.split() sees NBSP (0xA0 in latin-1) as a space: four words, http.server answers 400
    # "Bad request syntax", as the real front end refuses such a request target (found by the properties).
    host, port = urlsplit(server.url).hostname or "", urlsplit(server.url).port or 443
    with socket.create_connection((host, port), timeout=10) as raw, \
            ssl.create_default_context(cafile=str(local_tls.directory / "ca.pem")).wrap_socket(
                raw, server_hostname=host) as tls:
        tls.sendall(b"GET /nothing?a=\xa0b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_a_crashing_function_gives_500_without_stack_trace(server: RunningServer) -> None:
    response = requests.get(f"{server.url}/boom", timeout=10)
    assert response.status_code == 500
    assert "secret detail" not in response.text


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("pair/callback", "pair/callback", {}),
        ("users/{id:int}", "users/7", {"id": "7"}),
        ("files/{*rest}", "files/a/b/c", {"rest": "a/b/c"}),
        ("list/{page?}", "list", {"page": None}),
        ("list/{page?}", "list/3", {"page": "3"}),
    ],
)
def test_route_templates_compile_like_the_functions_host(
    template: str, path: str, expected: dict[str, str | None]
) -> None:
    match = compile_template(template).match(path)
    assert match is not None
    assert match.groupdict() == expected
