"""What the broker sends to Application Insights, seen at a local ingestion endpoint (issue 11).

A sandbox of its own (``python -m sandbox`` in a child process: the OpenTelemetry providers are
global, once per process, and must not leak into the other tests) exports through the real Azure
Monitor exporter to the sandbox's telemetry sink. The test runs a first sign-in (pairing), a second
one, a refused one, ``/token`` + ``/userinfo`` and a storage outage (its Azurite really stopped), then
reads the envelopes: the requests by route template, the dependencies, the audit traces with their
dimensions, the exception with the reference the French page shows; and greps every envelope for each
secret value the test saw go by; and checks the monitoring queries (infra/monitoring/*.kql) against
them. ``UPDATE_TELEMETRY_FIXTURE=1`` saves them as ``tests/infra/fixtures/telemetry.json``, the capture
tests/infra/test_monitoring.py checks the queries against without a sandbox.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest
import requests

from sandbox import azurite
from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID
from sandbox.run import Ports
from sandbox.run import RegisteredClient
from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Page
from sandbox.scripted import Pkce
from sandbox.scripted import RelyingParty
from sandbox.scripted import sign_in
from sandbox.servers import free_port
from sandbox.switches import switched
from sandbox.telemetry_sink import base_data
from sandbox.telemetry_sink import exporter_environment
from sandbox.telemetry_sink import kind
from sandbox.tls import LocalTls
from tests.e2e.pairings import persona_oid
from tests.infra import kql

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "infra" / "fixtures" / "telemetry.json"
# Query parameters whose values are secrets or personal data (RFC 6749, OIDC Core 3.1.2.1, RFC 7636).
# Events the monitoring queries watch that this capture cannot produce (back-channel delivery is not
# exercised here: tests/e2e/test_backchannel_logout.py).
UNCAPTURED = ("backchannel_logout_dead_lettered",)
SECRET_PARAMS = ("code", "state", "nonce", "code_challenge", "login_hint", "id_token_hint", "session_state")


@dataclass
class Observed:
    """The telemetry sandbox: where it runs, its sink, its Azurite, and the secrets seen so far."""

    where: Sandbox
    sink: str
    bundle: str
    storage: azurite.Azurite
    client: RegisteredClient
    secrets: set[str] = field(default_factory=set)

    def envelopes(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.sink}/api/envelopes", verify=self.bundle, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def wait_for(self, wanted: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        """Poll the sink until ``wanted`` holds (the exporter sends batches in the background)."""
        deadline = time.monotonic() + 60
        while True:
            envelopes = self.envelopes()
            if wanted(envelopes):
                return envelopes
            if time.monotonic() > deadline:
                raise AssertionError(f"the sink never received {what}; it has {summary(envelopes)}")
            time.sleep(0.2)

    def keep(self, *values: str | None) -> None:
        self.secrets.update(value for value in values if value)

    def keep_urls(self, urls: list[str]) -> None:
        for url in urls:
            self.keep(*(value for name, value in parse_qsl(urlsplit(url).query) if name in SECRET_PARAMS))


def summary(envelopes: list[dict[str, Any]]) -> list[str]:
    return sorted({f"{kind(e)}:{base_data(e).get('name') or base_data(e).get('message')}" for e in envelopes})


@pytest.fixture(scope="module")
def observed(local_tls: LocalTls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    data = tmp_path_factory.mktemp("telemetry-sandbox")
    (data / "tls").mkdir()
    for name in ("ca.pem", "server.pem", "server-key.pem", "bundle.pem"):  # the CA this process trusts
        (data / "tls" / name).write_bytes((local_tls.directory / name).read_bytes())
    client = RegisteredClient(
        client_id="rp-observed", client_name="Service observé", redirect_uris=("https://rp-observed.example.fr/cb",),
        secret=secrets.token_urlsafe(32), grant_types=("authorization_code", "refresh_token"),
    )
    (data / "clients.json").write_text(json.dumps([client.metadata()]), encoding="utf-8")
    storage = azurite.start(free_port())
    ports = {name: free_port() for name in ("DEMO", "BROKER", "ENTRA", "PSC", "TELEMETRY")}
    env = {**os.environ, "SANDBOX_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1",
           "SANDBOX_CLIENTS": str(data / "clients.json"), "SANDBOX_AZURITE_CONNECTION": storage.connection_string,
           # Short batches: the test polls the sink instead of waiting for the default 5 s.
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100"}
    env.update({f"SANDBOX_{name}_PORT": str(port) for name, port in ports.items()})
    process = subprocess.Popen([sys.executable, "-m", "sandbox"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        banner = read_until(process, "Press Ctrl-C to stop.", timeout=90)
        sink = f"https://127.0.0.1:{ports['TELEMETRY']}"
        assert f"Telemetry (App Insights): {sink}/" in banner
        where = Sandbox(ports=Ports(demo=ports["DEMO"], broker=ports["BROKER"], entra=ports["ENTRA"],
                                    psc=ports["PSC"], azurite=storage.port), clients=[client])
        observed = Observed(where, sink, str(local_tls.bundle), storage, client)
        observed.keep(client.secret)
        yield observed
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        storage.stop()


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    deadline, seen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"the sandbox exited early:\n{seen}")
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"no {marker!r} within {timeout} s:\n{seen}")


def props(envelope: dict[str, Any]) -> dict[str, Any]:
    properties = base_data(envelope).get("properties") or {}
    return dict(properties)


def of_kind(envelopes: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    return [envelope for envelope in envelopes if kind(envelope) == wanted]


def audit(envelopes: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [props(e) for e in of_kind(envelopes, "trace") if props(e).get("audit_event") == event]


def test_the_telemetry_of_sign_ins_tokens_and_an_outage_is_complete_and_holds_no_secret(observed: Observed) -> None:
    where, party = observed.where, RelyingParty(observed.where, observed.client)

    # A first sign-in pairs cpx with medecin-cps; the service redeems the code and reads /userinfo.
    first, pkce = Browser(where, psc_persona="medecin-cps"), Pkce()
    landing = sign_in(first, party, pkce, login_hint="cpx")
    tokens = party.redeem(landing.params["code"], pkce)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    userinfo = party.userinfo(body["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    national_id = str(userinfo.json()["SubjectNameID"])
    observed.keep(pkce.state, pkce.nonce, pkce.verifier, landing.params["code"], body["access_token"],
                  body["id_token"], body.get("refresh_token"), national_id, "8" + national_id)

    # A second sign-in, from another browser: no pairing this time.
    second, pkce2 = Browser(where), Pkce()
    landing2 = sign_in(second, party, pkce2, login_hint="cpx")
    observed.keep(pkce2.state, pkce2.nonce, pkce2.verifier, landing2.params["code"])

    # A refused sign-in: Entra's ID token has expired; the French page shows a reference.
    refused, pkce3 = Browser(where, psc_persona="medecin-cps"), Pkce()
    with switched(where.entra_url, **{"id-token-expired": True}):
        page = refused.go(party.authorization_url(pkce3, login_hint="cpx-interne"), stop_at=party.redirect_uri)
    assert isinstance(page, Page) and page.status == 403, page
    refusal_reference = re.search(r'<span class="code">([^<]+)</span>', page.html)
    assert refusal_reference
    observed.keep(pkce3.state, pkce3.nonce, pkce3.verifier)

    # A storage outage: Azurite stops; the confirmation page answers 503 with a reference, /token 503.
    outage, pkce4 = Browser(where), Pkce()
    confirmation = outage.go(party.authorization_url(pkce4, login_hint="cpx"), stop_at=party.redirect_uri)
    assert isinstance(confirmation, Page) and confirmation.h1 == "Connexion"

    # Meanwhile an administrator removes the pairing with the tool, its telemetry aimed at the sink.
    removal = subprocess.run(
        [sys.executable, "-m", "tools.pairings", "remove", "--tenant", HOSPITAL_TENANT_ID,
         "--oid", persona_oid(where, "cpx"), "--reason", "test"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **exporter_environment(observed.sink),
             "BROKER_TABLES_CONNECTION_STRING": observed.storage.connection_string},
    )
    assert removal.returncode == 0, removal.stdout + removal.stderr

    observed.storage.stop()
    unavailable = outage.submit(confirmation, "confirm", stop_at=party.redirect_uri)
    assert isinstance(unavailable, Page) and unavailable.status == 503
    outage_reference = re.search(r'<span class="code">([^<]+)</span>', unavailable.html)
    assert outage_reference
    late = party.redeem(landing2.params["code"], pkce2)
    assert (late.status_code, late.json()["error"]) == (503, "temporarily_unavailable")
    observed.keep(pkce4.state, pkce4.nonce, pkce4.verifier)
    for browser in (first, second, refused, outage):
        observed.keep_urls(browser.visited)
        observed.keep(*(cookie.value for cookie in browser.session.cookies if len(cookie.value or "") >= 16))
    observed.keep_urls([landing.url, landing2.url])

    def complete(envelopes: list[dict[str, Any]]) -> bool:
        names = {base_data(e).get("name") for e in of_kind(envelopes, "request")}
        token_codes = {base_data(e).get("responseCode") for e in of_kind(envelopes, "request")
                       if base_data(e).get("name") == "POST /token"}
        return ({"GET /authorize", "POST /token", "GET /userinfo", "POST /confirm"} <= names
                and "503" in token_codes  # the late /token may come in the exporter's next batch
                and any(props(e).get("reference") == outage_reference.group(1)
                        for e in of_kind(envelopes, "exception"))
                and any(props(e).get("error") == "temporarily_unavailable" for e in of_kind(envelopes, "trace"))
                and bool(audit(envelopes, "pairing_removed")))

    envelopes = observed.wait_for(complete, "the requests and the outage's exception")
    if os.environ.get("UPDATE_TELEMETRY_FIXTURE") == "1" or not FIXTURE.exists():
        FIXTURE.write_text(json.dumps(envelopes, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    # The monitoring queries name only what this capture holds (as tests/infra/test_monitoring.py checks
    # on the saved fixture).
    tables = kql.rows(envelopes)
    assert {query.name: kql.problems(query, tables, UNCAPTURED) for query in kql.queries()} == {
        query.name: [] for query in kql.queries()}

    # Requests: named by method and route template, never by a URL with its query.
    requests_seen = of_kind(envelopes, "request")
    for request in requests_seen:
        data = base_data(request)
        assert re.fullmatch(r"(GET|POST|HEAD|OPTIONS) /[a-z_./{}*?-]*", data["name"]), data["name"]
        assert "?" not in data.get("url", "")
        assert data["success"] == (0 < int(data["responseCode"]) < 400)  # Application Insights: 4xx fail
    by_name = {base_data(r)["name"]: base_data(r) for r in requests_seen}
    assert {base_data(r)["responseCode"] for r in requests_seen if base_data(r)["name"] == "POST /token"} == {
        "200", "503"}
    assert by_name["GET /userinfo"]["responseCode"] == "200"
    assert {"GET /callback", "GET /pair/callback"} <= set(by_name)
    assert any(base_data(r)["name"] == "POST /confirm" and base_data(r)["responseCode"] == "503"
               for r in requests_seen)

    # Dependencies: Table Storage, Entra, PSC, with their host and operation; no query string.
    dependencies = [base_data(e) for e in of_kind(envelopes, "dependency")]
    targets = {str(d.get("target")) for d in dependencies}
    assert f"127.0.0.1:{where.ports.entra}" in targets and f"127.0.0.1:{where.ports.psc}" in targets
    assert f"127.0.0.1:{observed.storage.port}" in targets
    assert {"TableClient.create_entity", "TableClient.get_entity", "TableClient.submit_transaction"} <= {
        str(d.get("name")) for d in dependencies}
    for dependency in dependencies:
        assert "?" not in str(dependency.get("data", "")).replace("?[query removed]", ""), dependency
    # The reads and the If-Match replace sent outside the SDK's pipeline (tables.py: DirectCalls) keep its
    # network span: a dependency on the storage host, child of the operation's span.
    operation_ids = {base_data(e)["id"]: base_data(e)["name"] for e in of_kind(envelopes, "dependency")}
    direct = {(str(base_data(e)["name"]).split(" ")[0], operation_ids.get(e["tags"].get("ai.operation.parentId")))
              for e in of_kind(envelopes, "dependency")
              if base_data(e).get("target") == f"127.0.0.1:{observed.storage.port}"
              and "(PartitionKey=" in str(base_data(e)["name"])}
    assert {("GET", "TableClient.get_entity"), ("PUT", "TableClient.update_entity")} <= direct

    # Audit traces with the dimensions of docs/deploy.md.
    created = audit(envelopes, "pairing_created")
    assert len(created) == 1 and created[0]["national_id"] == "********" + national_id[-4:]
    succeeded = audit(envelopes, "login_succeeded")
    assert [(s["client_id"], s["national_id"], s["mode"]) for s in succeeded] == [
        ("rp-observed", "********" + national_id[-4:], "paired")] * 2
    # Each audit trace is correlated with the request that wrote it (operation_Id).
    operations = {r["tags"]["ai.operation.id"]: base_data(r)["name"] for r in requests_seen}
    audit_traces = [e for e in of_kind(envelopes, "trace")
                    if "audit_event" in props(e) and props(e)["audit_event"] != "pairing_removed"]  # the tool's
    assert {operations.get(e["tags"].get("ai.operation.id")) for e in audit_traces} <= {
        "GET /pair/callback", "POST /confirm", "GET /callback", "POST /pair"}
    (removed,) = audit(envelopes, "pairing_removed")
    assert (removed["by"], removed["national_id"]) == ("administrator", "********" + national_id[-4:])
    refusals = audit(envelopes, "login_refused")
    assert [(r["reason"], r["reference"]) for r in refusals] == [("upstream_token_invalid",
                                                                   refusal_reference.group(1))]

    # The outage: an exception with the reference the French page showed, within the /confirm request.
    exception = next(e for e in of_kind(envelopes, "exception")
                     if props(e).get("reference") == outage_reference.group(1))
    confirm_503 = next(r for r in requests_seen
                       if base_data(r)["name"] == "POST /confirm" and base_data(r)["responseCode"] == "503")
    assert exception["tags"]["ai.operation.id"] == confirm_503["tags"]["ai.operation.id"]

    # No envelope holds a secret the test saw, a login_hint or a query string of the broker's endpoints.
    assert len(observed.secrets) > 15
    for envelope in envelopes:
        text = json.dumps(envelope)
        leaked = [value[:12] for value in observed.secrets if value in text]
        assert not leaked, (leaked, envelope)
        assert "login_hint" not in text and "client_secret=" not in text
        assert not re.search(rf"127\.0\.0\.1:{where.ports.broker}/[^\"?]*\?(?!\[query removed\])", text), envelope
