"""The Entra adapter's checks without network: a recorded Entra (discovery, token endpoint, keys) answers
MSAL and the adapter, its ID tokens are signed here. Each refusal with its reason and logged detail."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from sanscouture.adapters.entra import EntraAdapter
from sanscouture.adapters.entra import _KeepNothing
from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from tests.unit.oidc.fakes import SHARED_BROKER_KEY
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import make_settings

NOW = 1_800_000_000
AUTHORITY = "https://login.example.com/organizations"
TENANT = "1111aaaa-2222-3333-4444-555555555555"  # hex letters: the case of tid matters
ENTRA_KEY = generate_private_jwk()
METADATA = {
    "issuer": "https://login.example.com/{tenantid}/v2.0",
    "authorization_endpoint": "https://login.example.com/organizations/oauth2/v2.0/authorize",
    "token_endpoint": "https://login.example.com/organizations/oauth2/v2.0/token",
    "jwks_uri": "https://login.example.com/organizations/discovery/v2.0/keys",
}
REDIRECT = "https://broker.example.fr/callback"
MSI_ENDPOINT = "http://127.0.0.1:41000/msi/token"


class Answer:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.text = body if isinstance(body, str) else json.dumps(body)
        self.headers: dict[str, str] = {"Content-Type": "application/json"}

    def json(self) -> Any:
        return json.loads(self.text)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


class RecordedEntra:
    """What MSAL and the adapter ask Entra (through the session they share), answered from memory."""

    def __init__(self) -> None:
        self.token: Answer | Exception | None = None
        self.posts: list[Mapping[str, Any]] = []
        self.discovery: Answer | Exception = Answer(200, METADATA)
        self.jwks = Answer(200, {"keys": [public_jwk(ENTRA_KEY)]})
        self.msi = Answer(200, {"access_token": "mi-token", "expires_on": "4000000000", "resource": "x"})
        self.msi_calls: list[Mapping[str, Any]] = []

    def get(self, url: str, **kwargs: Any) -> Answer:
        if url == f"{AUTHORITY}/v2.0/.well-known/openid-configuration":
            if isinstance(self.discovery, Exception):
                raise self.discovery
            return self.discovery
        if url == METADATA["jwks_uri"]:
            return self.jwks
        if url == MSI_ENDPOINT:
            self.msi_calls.append(kwargs)
            return self.msi
        return Answer(404, {})

    def post(self, url: str, **kwargs: Any) -> Answer:
        self.posts.append({"url": url, **kwargs})
        if isinstance(self.token, Exception):
            raise self.token
        assert self.token is not None and url == METADATA["token_endpoint"]
        return self.token


def id_token(flow_nonce: str, *, key: Mapping[str, Any] = ENTRA_KEY, **claims: Any) -> str:
    payload = {"iss": f"https://login.example.com/{TENANT}/v2.0", "aud": "broker", "sub": "pairwise-sub",
               "tid": TENANT.upper(), "oid": "AAAAAAAA-0000-0000-0000-000000000001", "exp": NOW + 3600, "iat": NOW,
               "auth_time": NOW - 30, "acrs": ["c1"], "name": "Dr Claire Martin",
               "preferred_username": "claire.martin@chu-exemple.fr",
               "nonce": hashlib.sha256(flow_nonce.encode()).hexdigest(), **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    if "iss" not in claims:  # the issuer names the token's tenant, as the token writes it
        payload["iss"] = f"https://login.example.com/{payload.get('tid', '')}/v2.0"
    return jwt.encode(payload, jwt.PyJWK(dict(key)).key, algorithm="RS256", headers={"kid": ENTRA_KEY["kid"]})


class World:
    def __init__(self, **settings: Any) -> None:
        self.entra = RecordedEntra()
        self.settings = make_settings(entra_authority=AUTHORITY, entra_client_id="broker",
                                      entra_required_acrs=("c1", "c7"), **settings)
        self.adapter = EntraAdapter(self.settings, self.entra, clock=FakeClock(NOW))  # type: ignore[arg-type]

    def begin(self, **kwargs: Any) -> tuple[dict[str, str], dict[str, Any]]:
        options = {"prompt": None, "login_hint": None, "max_age": None, **kwargs}
        start = self.adapter.begin(redirect_uri=REDIRECT, state="st-1", **options)
        return {k: v[0] for k, v in parse_qs(urlsplit(start.url).query).items()}, dict(start.flow)

    def finish(self, answer: Any = None, response: Mapping[str, str] | None = None, max_age: int | None = None,
               **claims: Any) -> Any:
        _, flow = self.begin(max_age=max_age)
        if answer is None:
            answer = Answer(200, {"token_type": "Bearer", "id_token": id_token(flow["nonce"], **claims),
                                  "access_token": "at", "expires_in": 3600})
        self.entra.token = answer
        return self.adapter.finish(flow, response if response is not None else {"state": flow["state"], "code": "c"})

    def refused(self, *args: Any, **kwargs: Any) -> SignInRefused:
        with pytest.raises(SignInRefused) as raised:
            self.finish(*args, **kwargs)
        return raised.value


def test_the_request_asks_for_the_id_token_only_with_the_required_contexts() -> None:
    query, flow = World().begin(prompt="login", login_hint="claire.martin@chu-exemple.fr", max_age=0)
    assert sorted(query["scope"].split()) == ["openid", "profile"]  # no offline_access, no resource
    assert json.loads(query["claims"]) == {"id_token": {"acrs": {"essential": True, "values": ["c1", "c7"]}}}
    assert (query["prompt"], query["login_hint"], query["max_age"], query["state"]) == (
        "login", "claire.martin@chu-exemple.fr", "0", "st-1")
    assert query["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    assert "auth_uri" not in flow and flow["state"] == "st-1"
    assert query["redirect_uri"] == REDIRECT and query["client_id"] == "broker"


def test_a_verified_sign_in_gives_the_account_in_lower_case() -> None:
    world = World()
    account = world.finish()
    assert (account.tid, account.oid) == (TENANT, "aaaaaaaa-0000-0000-0000-000000000001")
    assert (account.auth_time, account.acrs) == (NOW - 30, ("c1",))
    assert (account.name, account.preferred_username) == ("Dr Claire Martin", "claire.martin@chu-exemple.fr")
    [post] = world.entra.posts
    assert post["data"]["client_secret"] == "entra-secret" and post["data"]["code"] == "c"
    assert post["data"]["client_id"] == "broker" and post["data"]["redirect_uri"] == REDIRECT
    assert world.adapter._msal().get_accounts() == []  # MSAL's cache keeps no Entra token


def test_optional_fields_default_to_empty() -> None:
    account = World().finish(acrs="c1", name=None, preferred_username=None)
    assert (account.acrs, account.name, account.preferred_username) == ((), "", "")


@pytest.mark.parametrize(
    ("error", "rp_error"),
    [("access_denied", "access_denied"), ("login_required", "login_required"),
     ("interaction_required", "interaction_required"), ("consent_required", "consent_required"),
     ("temporarily_unavailable", "access_denied")],
)
def test_an_entra_error_is_refused_and_passed_on_only_when_it_asks_for_interaction(error: str, rp_error: str) -> None:
    response = {"error": error, "error_description": "AADSTS50058: silent sign-in failed.\r\n"
                "Trace ID: 5889afab-8ce9-40da-b5fb-c76b4f420000\r\n"}
    refusal = World().refused(response=response)
    assert (refusal.reason, refusal.rp_error) == ("entra_refused", rp_error)
    assert refusal.detail == f"entra returned {error!r} AADSTS50058 trace 5889afab-8ce9-40da-b5fb-c76b4f420000"


def test_an_entra_error_without_description_logs_its_code_only() -> None:
    refusal = World().refused(response={"error": "x" * 100})
    assert refusal.detail == f"entra returned {'x' * 64!r}"


def test_a_response_for_another_flow_is_session_expired() -> None:
    refusal = World().refused(response={"state": "other", "code": "c"})
    assert (refusal.reason, refusal.detail) == ("session_expired", "entra: flow/state mismatch")


def test_token_endpoint_failures() -> None:
    refusal = World().refused(Answer(400, {"error": "invalid_grant", "error_description": "AADSTS70008: expired"}))
    assert (refusal.reason, refusal.detail) == ("entra_refused", "entra token error 'invalid_grant'")
    refusal = World().refused(Answer(200, {"token_type": "Bearer", "access_token": "at"}))
    assert (refusal.reason, refusal.detail) == ("upstream_token_invalid", "entra: no id_token")
    with pytest.raises(UpstreamUnavailableError) as raised:
        World().finish(requests.ConnectionError("down"))
    assert raised.value.detail == "entra token: ConnectionError"


def test_msal_checks_are_told_apart_without_logging_the_claims() -> None:
    refusal = World().refused(nonce="0" * 64)
    assert (refusal.reason, refusal.detail) == ("upstream_token_invalid", "entra: MSAL refused the ID token (nonce)")
    missing = World().refused(max_age=600, auth_time=None)
    assert (missing.reason, missing.rp_error) == ("entra_claim_missing", "server_error")
    assert missing.detail.startswith("entra: the ID token has no auth_time claim")
    old = World().refused(max_age=60, auth_time=1_000_000_000)  # MSAL compares with the machine's clock
    assert (old.reason, old.detail) == ("auth_too_old", "entra: auth_time older than the max_age sent")


def test_the_id_token_is_verified_by_the_broker() -> None:
    forged = World().refused(key=SHARED_BROKER_KEY)
    assert (forged.reason, forged.detail) == ("upstream_token_invalid",
                                              "entra: InvalidSignatureError: Signature verification failed")
    assert World().refused(iss="https://login.example.com/other/v2.0").detail == "entra: unexpected issuer"
    assert World().refused(aud="another-app").detail.startswith("entra: InvalidAudienceError")
    assert World().refused(exp=NOW - 600).detail == "entra: ExpiredSignatureError: Signature has expired"


@pytest.mark.parametrize("claim", ["tid", "oid"])
def test_tid_and_oid_are_required(claim: str) -> None:
    for value in (None, "", 42):
        refusal = World().refused(**{claim: value})
        assert (refusal.reason, refusal.detail) == ("upstream_token_invalid", f"entra: no {claim} claim")


@pytest.mark.parametrize("auth_time", [None, "1800000000", 1.8e9])
def test_auth_time_must_be_declared_and_an_integer(auth_time: Any) -> None:
    refusal = World().refused(auth_time=auth_time)
    assert (refusal.reason, refusal.rp_error) == ("entra_claim_missing", "server_error")
    assert refusal.detail == ("entra: the ID token has no auth_time claim: declare the optional claim auth_time of "
                              "the ID token in the app registration (infra/bicep/entra-optional-claims.json)")


def test_the_cache_keeps_nothing() -> None:
    cache = _KeepNothing()
    assert cache.add({"client_id": "broker", "scope": ["openid"], "token_endpoint": METADATA["token_endpoint"],
                      "response": {"access_token": "at", "id_token": None}}) is None
    assert list(cache.search(cache.CredentialType.ACCESS_TOKEN)) == []


def test_the_probe_reads_the_discovery_document() -> None:
    World().adapter.probe()


def test_the_claims_parameter_is_compact_json() -> None:
    from sanscouture.adapters.entra import claims_request

    assert claims_request(("c1",)) == '{"id_token":{"acrs":{"essential":true,"value":"c1"}}}'


def test_a_long_token_error_is_cut_in_the_log() -> None:
    refusal = World().refused(Answer(400, {"error": "x" * 100}))
    assert refusal.detail == f"entra token error {'x' * 64!r}"


def test_one_adapter_serves_successive_sign_ins_with_its_cached_keys() -> None:
    world = World()
    assert world.finish().tid == TENANT
    assert world.finish().tid == TENANT


def test_unreachable_documents_are_outages_naming_them() -> None:
    world = World()
    world.entra.discovery = requests.ConnectionError("down")
    with pytest.raises(UpstreamUnavailableError) as raised:
        world.adapter.probe()
    assert raised.value.detail == "entra discovery: ConnectionError"
    with pytest.raises(UpstreamUnavailableError) as raised:
        world.begin()
    assert raised.value.detail == "entra metadata: ConnectionError"
    world = World()
    world.entra.jwks = Answer(500, {})
    with pytest.raises(UpstreamUnavailableError) as raised:
        world.finish()
    assert raised.value.detail == "entra jwks: HTTP 500"


@pytest.fixture
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> World:
    """In Azure: no secret, a managed identity token presented as the client assertion (App Service's
    identity endpoint, as the Functions host sets it)."""
    for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", MSI_ENDPOINT)
    monkeypatch.setenv("IDENTITY_HEADER", "header-secret")
    return World(entra_client_secret=None, entra_managed_identity_client_id="mi-client-id")


def test_with_a_managed_identity_its_token_for_the_exchange_audience_is_the_assertion(managed_identity: World) -> None:
    assert managed_identity.finish().tid == TENANT
    [call] = managed_identity.entra.msi_calls
    assert call["params"]["resource"] == "api://AzureADTokenExchange"
    assert call["params"]["client_id"] == "mi-client-id"
    assert call["headers"]["X-IDENTITY-HEADER"] == "header-secret"
    [post] = managed_identity.entra.posts
    assert post["data"]["client_assertion"] == "mi-token" and "client_secret" not in post["data"]
    assert post["data"]["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def test_a_managed_identity_without_a_token_is_an_outage(managed_identity: World) -> None:
    managed_identity.entra.msi = Answer(200, {"statusCode": 500, "message": "no identity"})
    with pytest.raises(UpstreamUnavailableError) as raised:
        managed_identity.finish()
    assert raised.value.detail == "managed identity: invalid_scope"
