"""The Key Vault key source through the real SecretClient, over a fake HTTP transport.

The transport answers the REST calls the adapter makes (``GET /secrets/{name}/versions``,
``GET /secrets/{name}/{version}``, and for a rotation ``PUT /secrets/{name}`` and
``PATCH /secrets/{name}/{version}``) as Key Vault does, after the SDK's challenge handshake (a 401 with
``WWW-Authenticate`` on the first, token-less request); like Key Vault it refuses to return a disabled
version's value ("Operation get is not allowed on a disabled secret", MicrosoftDocs/azure-docs,
articles/key-vault/secrets/javascript-developer-guide-enable-disable-secret.md) but returns one whose
``nbf`` is ahead (articles/key-vault/secrets/about-secrets.md, "Date-time controlled operations"). It
records every request, so the test can assert what was asked, and that signing and verifying do not ask
Key Vault anything more. With azure-core's OpenTelemetry tracing on, as in Azure, the same calls are the
Key Vault dependencies Application Insights shows (docs/deploy.md, section 5 quater).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import jwt
import opentelemetry.trace
import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.settings import settings
from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
from azure.core.utils import CaseInsensitiveDict
from azure.keyvault.secrets import SecretClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sanscouture.adapters.keyvault import KeyVaultKeySource
from sanscouture.adapters.keyvault import from_settings
from sanscouture.errors import TemporarilyUnavailableError
from sanscouture.keys import KeyRing
from sanscouture.keys import generate_private_jwk
from sanscouture.rotation import Durations
from sanscouture.rotation import rotate

NOW = time.time()
CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001", '
    'resource="https://vault.azure.net"'
)


class CannedResponse(HttpResponseImpl):
    def __init__(self, request: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(
            request=request,
            internal_response=None,
            status_code=status,
            reason="OK" if status == 200 else "Error",
            content_type=headers.get("Content-Type"),
            headers=CaseInsensitiveDict(headers),
            stream_download_generator=None,
        )
        self._content = body
        self._is_closed = True


class FakeVault(HttpTransport):
    """Key Vault's secrets REST API for one secret, over canned versions."""

    def __init__(self, vault_url: str, name: str) -> None:
        self.vault_url = vault_url
        self.name = name
        self.versions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, bool]] = []
        self.down = False
        self.read_only = False
        self.clock: Callable[[], float] = time.time

    def add(self, jwk: dict[str, Any] | str, *, created: float, enabled: bool = True, **attributes: float) -> str:
        version = uuid.uuid4().hex
        value = jwk if isinstance(jwk, str) else json.dumps(jwk)
        self.versions[version] = {
            "value": value,
            "attributes": {"enabled": enabled, "created": int(created), "updated": int(created), **attributes},
        }
        return version

    def send(self, request: Any, **kwargs: Any) -> CannedResponse:
        path = urlsplit(request.url).path
        authorized = bool(request.headers.get("Authorization"))
        self.requests.append((request.method, path, authorized))
        if self.down:
            return self._json(request, 503, {"error": {"code": "ServiceUnavailable", "message": "down"}})
        if not authorized:
            return CannedResponse(request, 401, b"", {"WWW-Authenticate": CHALLENGE, "Content-Length": "0"})
        if self.read_only and request.method in ("PUT", "PATCH"):  # Key Vault Secrets User: no write
            return self._json(request, 403, {"error": {"code": "Forbidden", "message": "Caller is not authorized"}})
        if request.method == "PUT" and path == f"/secrets/{self.name}":
            body = json.loads(request.content)
            version = self.add(body["value"], created=self.clock(), **body.get("attributes", {}))
            self.versions[version]["contentType"] = body.get("contentType")
            return self._json(request, 200, self._bundle(version, with_value=True))
        if request.method == "PATCH":
            version = path.rsplit("/", 1)[-1]
            self.versions[version]["attributes"].update(json.loads(request.content).get("attributes", {}))
            return self._json(request, 200, self._bundle(version, with_value=False))
        if path == f"/secrets/{self.name}/versions":
            listing = [
                {"id": f"{self.vault_url}/secrets/{self.name}/{version}", "attributes": item["attributes"]}
                for version, item in self.versions.items()
            ]
            return self._json(request, 200, {"value": listing, "nextLink": None})
        version = path.rsplit("/", 1)[-1]
        if not self.versions[version]["attributes"]["enabled"]:
            return self._json(request, 403, {"error": {"code": "Forbidden", "innererror": {"code": "SecretDisabled"},
                                                      "message": "Operation get is not allowed on a disabled secret."}})
        return self._json(request, 200, self._bundle(version, with_value=True))

    def _bundle(self, version: str, *, with_value: bool) -> dict[str, Any]:
        item = self.versions[version]
        body = {"id": f"{self.vault_url}/secrets/{self.name}/{version}", "attributes": item["attributes"],
                "contentType": item.get("contentType")}
        return {**body, "value": item["value"]} if with_value else body

    def _json(self, request: Any, status: int, body: Any) -> CannedResponse:
        return CannedResponse(request, status, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeVault:
        return self

    def __exit__(self, *args: Any) -> None:
        pass


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-access-token", int(time.time()) + 3600)


@pytest.fixture
def vault() -> FakeVault:
    # A fresh host per test: the SDK caches challenges per vault host for the whole process.
    return FakeVault(f"https://kv{uuid.uuid4().hex[:12]}.vault.azure.net", "broker-signing-key")


def source_of(vault: FakeVault, credential: FakeCredential | None = None) -> KeyVaultKeySource:
    client = SecretClient(vault.vault_url, credential or FakeCredential(), transport=vault, retry_total=0)
    return KeyVaultKeySource(client, vault.name)


def test_load_lists_versions_then_fetches_the_usable_ones_newest_first(vault: FakeVault) -> None:
    old, new = generate_private_jwk(), generate_private_jwk()
    old_version = vault.add(old, created=NOW - 86400)
    new_version = vault.add(new, created=NOW - 3600)
    disabled = vault.add(generate_private_jwk(), created=NOW - 60, enabled=False)
    expired = vault.add(generate_private_jwk(), created=NOW - 7200, exp=NOW - 10)
    credential = FakeCredential()
    keys = source_of(vault, credential).load()
    assert [key["kid"] for key in keys] == [new["kid"], old["kid"]]
    assert keys[0]["d"] == new["d"]
    authorized = [(method, path) for method, path, ok in vault.requests if ok]
    assert authorized == [
        ("GET", f"/secrets/{vault.name}/versions"),
        ("GET", f"/secrets/{vault.name}/{new_version}"),
        ("GET", f"/secrets/{vault.name}/{old_version}"),
    ]
    assert all(f"/{version}" not in path for _, path, _ in vault.requests for version in (disabled, expired))
    assert credential.scopes == [("https://vault.azure.net/.default",)]


def test_not_before_is_carried_so_the_next_key_is_published_but_does_not_sign(vault: FakeVault) -> None:
    current, upcoming = generate_private_jwk(), generate_private_jwk()
    vault.add(current, created=NOW - 86400)
    vault.add(upcoming, created=NOW - 60, nbf=NOW + 86400)
    ring = KeyRing(source_of(vault))
    assert [key["kid"] for key in ring.public_jwks()["keys"]] == [upcoming["kid"], current["kid"]]
    assert jwt.get_unverified_header(ring.sign({"iss": "x"}))["kid"] == current["kid"]


def test_a_version_that_is_not_a_json_object_is_skipped(vault: FakeVault) -> None:
    good = generate_private_jwk()
    vault.add(good, created=NOW - 100)
    vault.add("-----BEGIN PRIVATE KEY-----", created=NOW - 10)
    assert [key["kid"] for key in source_of(vault).load()] == [good["kid"]]


def test_key_vault_outage_is_temporarily_unavailable(vault: FakeVault) -> None:
    vault.down = True
    with pytest.raises(TemporarilyUnavailableError) as raised:
        source_of(vault).load()
    assert raised.value.status == 503


def test_after_warm_up_a_hundred_signatures_and_verifications_make_no_vault_call(vault: FakeVault) -> None:
    vault.add(generate_private_jwk(), created=NOW - 60)
    issuer = "https://broker.example.fr"
    ring = KeyRing(source_of(vault))
    ring.probe()
    warm = len(vault.requests)
    assert warm >= 2
    for index in range(100):
        now = int(time.time())
        claims = {"iss": issuer, "aud": issuer, "sub": str(index), "iat": now, "exp": now + 60}
        token = ring.sign(claims, typ="at+jwt")
        assert ring.decode(token, issuer=issuer, audience=issuer, typ="at+jwt")["sub"] == str(index)
    ring.public_jwks()
    assert len(vault.requests) == warm


def test_from_settings_builds_a_source_on_a_secret_client() -> None:
    source = from_settings("https://kv-broker.vault.azure.net", "broker-signing-key", FakeCredential())
    assert isinstance(source, KeyVaultKeySource)


def test_a_rotation_through_the_sdk_sets_a_version_with_not_before_then_disables_the_retired_one(
    vault: FakeVault,
) -> None:
    now = [NOW]
    vault.clock = lambda: now[0]
    old = generate_private_jwk()
    old_version = vault.add(old, created=NOW - 90 * 86400)
    policy = Durations().policy()
    result = rotate(source_of(vault), policy, lambda: now[0], new_key=generate_private_jwk)

    assert result.added is not None
    new_version = result.added.id
    stored = vault.versions[new_version]
    assert stored["contentType"] == "application/jwk+json"
    assert stored["attributes"]["nbf"] >= NOW + policy.lead  # whole seconds, never earlier than asked
    assert json.loads(stored["value"])["kid"] == result.added.kid
    ring = KeyRing(source_of(vault), clock=lambda: now[0])
    assert [key["kid"] for key in ring.public_jwks()["keys"]] == [result.added.kid, old["kid"]]
    assert jwt.get_unverified_header(ring.sign({"iss": "x"}))["kid"] == old["kid"]

    now[0] = stored["attributes"]["nbf"] + policy.retention
    retired = rotate(source_of(vault), policy, lambda: now[0], add=False)
    assert [version.id for version in retired.disabled] == [old_version]
    assert vault.versions[old_version]["attributes"]["enabled"] is False
    vault.requests.clear()
    versions = source_of(vault).versions()
    assert [(version.id, version.kid, version.enabled) for version in versions] == [
        (new_version, result.added.kid, True), (old_version, None, False)]
    assert all(not path.endswith(old_version) for _, path, _ in vault.requests)  # a disabled value is not read


def test_without_the_secrets_officer_role_a_rotation_fails_and_says_why(vault: FakeVault) -> None:
    vault.add(generate_private_jwk(), created=NOW - 86400)
    vault.read_only = True
    with pytest.raises(TemporarilyUnavailableError) as raised:
        rotate(source_of(vault), Durations().policy(), new_key=generate_private_jwk)
    assert "HttpResponseError (HTTP 403)" in raised.value.detail


@pytest.fixture
def azure_sdk_traced(otel_providers: tuple, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """azure-core's tracing as ``configure_azure_monitor`` turns it on in the worker (its ``azure_sdk``
    instrumentation: ``settings.tracing_implementation = OpenTelemetrySpan``), the spans going to the test's
    providers, whose first processor is the broker's scrubber, instead of the global ones the worker sets."""
    tracer_provider: TracerProvider = otel_providers[0]
    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: tracer_provider)
    previous = settings.tracing_implementation()
    settings.tracing_implementation = OpenTelemetrySpan
    try:
        yield otel_providers[1]
    finally:
        if previous is None:
            settings.tracing_implementation.unset_value()
        else:
            settings.tracing_implementation = previous


def test_key_vault_calls_are_dependencies_with_the_vault_host_and_no_query_or_secret(
    vault: FakeVault, azure_sdk_traced: InMemorySpanExporter,
) -> None:
    jwk = generate_private_jwk()
    version = vault.add(jwk, created=NOW - 60)
    assert [key["kid"] for key in source_of(vault).load()] == [jwk["kid"]]

    spans = azure_sdk_traced.get_finished_spans()
    operations = {span.name for span in spans if span.name.startswith("SecretClient.")}
    assert operations == {"SecretClient.list_properties_of_secret_versions", "SecretClient.get_secret"}
    # The vault's requests, by their URL: the sandbox of other tests may run in this process (its queue
    # host polls Azurite through the SDK too), and a page of a listing is fetched outside its operation's span.
    http = [span for span in spans if span.kind is opentelemetry.trace.SpanKind.CLIENT
            and str((span.attributes or {}).get("url.full", "")).startswith(f"{vault.vault_url}/")]
    host = urlsplit(vault.vault_url).hostname
    assert http and all(span.name == "GET" for span in http)
    assert all((span.attributes or {}).get("server.address") == host for span in http)
    urls = {str((span.attributes or {})["url.full"]) for span in http}
    assert f"{vault.vault_url}/secrets/{vault.name}/{version}?[query removed]" in urls
    assert all(url.endswith("?[query removed]") and "api-version" not in url for url in urls)
    get_secret = next(span for span in spans if span.name == "SecretClient.get_secret")
    assert any(span.parent is not None and span.parent.span_id == get_secret.context.span_id for span in http)
    exported = json.dumps([{"name": span.name, "attributes": dict(span.attributes or {}),
                            "events": [dict(event.attributes or {}) for event in span.events]} for span in spans])
    assert jwk["d"] not in exported and "fake-access-token" not in exported
    assert settings.tracing_implementation() is OpenTelemetrySpan  # restored by the fixture afterwards
