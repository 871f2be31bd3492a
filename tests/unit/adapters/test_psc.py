"""The PSC adapter's checks without network: a recorded PSC (discovery, token, userinfo, JWKS) answers,
its ID tokens and signed userinfo are signed here. Each refusal with its reason and logged detail."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from sanscouture.adapters.psc import PscAdapter
from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.keys import KeyRing
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from sanscouture.settings import PSC_PRIVATE_KEY_JWT
from tests.unit.oidc.fakes import PSC_USERINFO
from tests.unit.oidc.fakes import SHARED_BROKER_KEY
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import shared_key_source

NOW = 1_800_000_000
PSC = "https://psc.example.fr"
ISSUER = f"{PSC}/auth/realms/esante-wallet"
PSC_KEY = generate_private_jwk()
METADATA = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{PSC}/auth",
    "token_endpoint": f"{PSC}/token",
    "userinfo_endpoint": f"{PSC}/userinfo",
    "jwks_uri": f"{PSC}/jwks",
    "end_session_endpoint": f"{PSC}/logout",
}
REDIRECT = "https://broker.example.fr/pair/callback"


class Answer:
    def __init__(self, status: int = 200, body: Any = None, content_type: str = "application/json") -> None:
        self.status_code = status
        self.body = body
        self.headers = {"Content-Type": content_type}

    @property
    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body)

    def json(self) -> Any:
        if isinstance(self.body, str):
            return json.loads(self.body)
        return self.body


class FakePsc:
    """requests.Session for PSC: discovery and JWKS as configured, the token and userinfo answers
    the test sets; records what the adapter sent."""

    def __init__(self) -> None:
        self.metadata: Any = dict(METADATA)
        self.token: Answer | Exception | None = None  # None: a valid answer for the flow
        self.userinfo: Answer | Exception = Answer(200, dict(PSC_USERINFO))
        self.posts: list[dict[str, Any]] = []
        self.jwks: Answer = Answer(200, {"keys": [public_jwk(PSC_KEY)]})
        self.gets: list[tuple[str, Mapping[str, str]]] = []

    def get(self, url: str, headers: Mapping[str, str]) -> Answer:
        self.gets.append((url, headers))
        if url == "https://psc.example.fr/.well-known/wallet-openid-configuration":
            if isinstance(self.metadata, Exception):
                raise self.metadata
            return Answer(200, self.metadata)
        if url == f"{PSC}/jwks":
            return self.jwks
        if url == f"{PSC}/userinfo":
            if isinstance(self.userinfo, Exception):
                raise self.userinfo
            return self.userinfo
        return Answer(404, {})

    def post(self, url: str, data: Mapping[str, str], auth: tuple[str, str] | None,
             headers: Mapping[str, str]) -> Answer:
        self.posts.append({"url": url, "data": dict(data), "auth": auth, "headers": dict(headers)})
        if isinstance(self.token, Exception):
            raise self.token
        assert self.token is not None
        return self.token


def id_token(flow_nonce: str, **claims: Any) -> str:
    payload = {"iss": ISSUER, "sub": PSC_USERINFO["sub"], "aud": "broker", "exp": NOW + 300, "iat": NOW,
               "auth_time": NOW - 5, "acr": "eidas1", "nonce": flow_nonce, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, jwt.PyJWK(PSC_KEY).key, algorithm="RS256", headers={"kid": PSC_KEY["kid"]})


class World:
    def __init__(self, **settings: Any) -> None:
        self.psc = FakePsc()
        self.clock = FakeClock(NOW)
        self.settings = make_settings(**settings)
        keys = KeyRing(shared_key_source(), clock=self.clock)
        self.adapter = PscAdapter(self.settings, self.psc, keys=keys, clock=self.clock)  # type: ignore[arg-type]

    def begin(self, **kwargs: Any) -> tuple[dict[str, str], dict[str, Any]]:
        start = self.adapter.begin(redirect_uri=REDIRECT, state="st-1", **kwargs)
        query = {name: values[0] for name, values in parse_qs(urlsplit(start.url).query).items()}
        return query, dict(start.flow)

    def finish(self, response: Mapping[str, str] | None = None, **token_claims: Any) -> Any:
        _, flow = self.begin()
        self.flow = flow
        if self.psc.token is None:
            token_claims.setdefault("aud", self.settings.psc_client_id)
            self.psc.token = Answer(200, {"id_token": id_token(flow["nonce"], **token_claims), "access_token": "at-1"})
        return self.adapter.finish(flow, response if response is not None else {"state": "st-1", "code": "c-1"})

    def refused(self, response: Mapping[str, str] | None = None, **token_claims: Any) -> SignInRefused:
        with pytest.raises(SignInRefused) as raised:
            self.finish(response, **token_claims)
        return raised.value


def test_the_request_is_the_one_ans_clients_send() -> None:
    world = World()
    query, flow = world.begin()
    assert {name: query[name] for name in ("response_type", "client_id", "redirect_uri", "scope", "acr_values",
                                           "state", "code_challenge_method")} == {
        "response_type": "code", "client_id": "broker", "redirect_uri": REDIRECT, "scope": "openid scope_all",
        "acr_values": "eidas1", "state": "st-1", "code_challenge_method": "S256"}
    assert "prompt" not in query and "max_age" not in query
    assert len(query["nonce"]) == 64 and int(query["nonce"], 16) >= 0  # 32 random bytes in hex
    challenge = base64.urlsafe_b64encode(hashlib.sha256(flow["code_verifier"].encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == challenge.decode()
    assert len(flow["code_verifier"]) == 86  # 64 random bytes
    assert flow == {"state": "st-1", "nonce": query["nonce"], "code_verifier": flow["code_verifier"],
                    "redirect_uri": REDIRECT}
    assert urlsplit(world.adapter.begin(redirect_uri=REDIRECT, state="s").url)._replace(query="").geturl() == \
        f"{PSC}/auth"
    prompted, _ = world.begin(prompt="login", max_age=0)
    assert (prompted["prompt"], prompted["max_age"]) == ("login", "0")


def test_a_sign_in_redeems_the_code_with_basic_and_reads_the_identity() -> None:
    world = World(psc_client_id="broker id", psc_client_secret="s3cret&/")
    authentication = world.finish()
    [post] = world.psc.posts
    assert post["url"] == f"{PSC}/token"
    assert post["auth"] == ("broker+id", "s3cret%26%2F")  # RFC 6749 2.3.1: form-encoded, then Basic
    assert post["headers"] == {"Accept": "application/json"}
    assert post["data"] == {"grant_type": "authorization_code", "code": "c-1", "redirect_uri": REDIRECT,
                            "code_verifier": world.flow["code_verifier"]}
    assert authentication.identity.sub == PSC_USERINFO["sub"]
    assert authentication.identity.subject_name_id == "899700427885"
    assert (authentication.auth_time, authentication.acr) == (NOW - 5, "eidas1")
    userinfo_call = [headers for url, headers in world.psc.gets if url == f"{PSC}/userinfo"]
    assert userinfo_call == [{"Authorization": "Bearer at-1", "Accept": "application/json, application/jwt"}]


def test_private_key_jwt_sends_a_one_minute_assertion_for_psc_issuer() -> None:
    world = World(psc_token_auth_method=PSC_PRIVATE_KEY_JWT, psc_client_secret=None)
    world.finish()
    [post] = world.psc.posts
    assert post["auth"] is None
    assert post["data"]["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = post["data"]["client_assertion"]
    claims = jwt.decode(assertion, jwt.PyJWK(public_jwk(SHARED_BROKER_KEY)).key, algorithms=["RS256"], audience=ISSUER,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iss": "broker", "sub": "broker", "aud": ISSUER, "jti": claims["jti"], "iat": NOW,
                      "exp": NOW + 60}
    assert jwt.get_unverified_header(assertion)["kid"] == SHARED_BROKER_KEY["kid"]
    assert jwt.get_unverified_header(assertion)["typ"] == "JWT"
    with pytest.raises(ValueError, match=r"^private_key_jwt towards PSC needs the broker's signing key ring$"):
        PscAdapter(world.settings, world.psc)  # type: ignore[arg-type]
    PscAdapter(make_settings(), world.psc)  # type: ignore[arg-type]  # a secret needs no key ring


def test_psc_errors_state_and_code_are_checked_first() -> None:
    world = World()
    refusal = world.refused({"error": "access_denied" + "x" * 100, "state": "st-1"})
    assert (refusal.reason, refusal.detail) == ("psc_refused", f"psc returned {('access_denied' + 'x' * 100)[:64]!r}")
    refusal = world.refused({"state": "other", "code": "c"})
    assert (refusal.reason, refusal.detail) == ("session_expired", "psc: state mismatch")
    refusal = world.refused({"state": "st-1"})
    assert (refusal.reason, refusal.detail) == ("psc_refused", "psc: no code")
    assert world.psc.posts == []


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (requests.ConnectionError("down"), "psc token: ConnectionError"),
        (Answer(500, {}), "psc token: HTTP 500"),
        (Answer(503, "<html>"), "psc token: HTTP 503"),
    ],
)
def test_an_unreachable_token_endpoint_is_an_outage(answer: Any, detail: str) -> None:
    world = World()
    world.psc.token = answer
    with pytest.raises(UpstreamUnavailableError) as raised:
        world.finish()
    assert raised.value.detail == detail


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (Answer(400, {"error": "invalid_grant"}), "psc token: HTTP 400 'invalid_grant'"),
        (Answer(400, {"error": "x" * 100}), f"psc token: HTTP 400 {'x' * 64!r}"),
        (Answer(200, {"access_token": "at"}), "psc token: HTTP 200 ''"),
        (Answer(200, "not json"), "psc token: HTTP 200 ''"),
        (Answer(200, ["id_token"]), "psc token: HTTP 200 ''"),
        (Answer(499, {"error": "x"}), "psc token: HTTP 499 'x'"),
    ],
)
def test_a_refused_or_odd_token_response_is_psc_refused(answer: Answer, detail: str) -> None:
    world = World()
    world.psc.token = answer
    refusal = world.refused()
    assert (refusal.reason, refusal.detail) == ("psc_refused", detail)


def test_the_id_token_is_verified_against_psc_keys_issuer_audience_and_nonce() -> None:
    assert World().refused(nonce="other").detail == "psc: nonce mismatch"
    assert World().refused(iss="https://elsewhere").detail == "psc: unexpected issuer"
    assert World().refused(aud="someone-else").detail.startswith("psc: InvalidAudienceError")
    world = World()
    world.clock.now = NOW + 3600  # the broker's clock, not the machine's
    assert world.refused().detail == "psc: ExpiredSignatureError: Signature has expired"


@pytest.mark.parametrize(("acr", "shown"), [("eidas2", "'eidas2'"), (None, "'None'"), ("x" * 40, repr("x" * 16))])
def test_only_eidas1_is_accepted(acr: str | None, shown: str) -> None:
    refusal = World().refused(acr=acr)
    assert (refusal.reason, refusal.detail) == ("psc_refused", f"psc acr {shown} is not eidas1")


@pytest.mark.parametrize("auth_time", [None, "1800000000", 1.8e9])
def test_an_id_token_without_an_integer_auth_time_is_refused(auth_time: Any) -> None:
    refusal = World().refused(auth_time=auth_time)
    assert (refusal.reason, refusal.detail) == ("psc_refused", "psc: ID token has no auth_time")


def test_userinfo_must_be_about_the_id_tokens_subject_and_name_someone() -> None:
    world = World()
    world.psc.userinfo = Answer(200, {**PSC_USERINFO, "sub": "f:other:810000000002"})
    refusal = world.refused()
    assert (refusal.reason, refusal.detail) == ("psc_refused", "psc: userinfo sub differs from the ID token's")
    world = World()
    anonymous = {name: value for name, value in PSC_USERINFO.items()
                 if name not in ("SubjectNameID", "preferred_username")}
    world.psc.userinfo = Answer(200, anonymous)
    refusal = world.refused()
    assert (refusal.reason, refusal.detail) == ("psc_refused", "psc: userinfo has no SubjectNameID")


@pytest.mark.parametrize(
    ("answer", "outage", "detail"),
    [
        (requests.Timeout("slow"), True, "psc userinfo: Timeout"),
        (Answer(502, {}), True, "psc userinfo: HTTP 502"),
        (Answer(500, {}), True, "psc userinfo: HTTP 500"),
        (Answer(401, {}), False, "psc userinfo: HTTP 401"),
        (Answer(499, {}), False, "psc userinfo: HTTP 499"),
        (Answer(200, "<html>"), False, "psc userinfo: not JSON"),
        (Answer(200, ["sub"]), False, "psc userinfo: not a JSON object"),
    ],
)
def test_userinfo_failures(answer: Any, outage: bool, detail: str) -> None:
    world = World()
    world.psc.userinfo = answer
    with pytest.raises(UpstreamUnavailableError if outage else SignInRefused) as raised:
        world.finish()
    assert raised.value.detail == detail
    if not outage:
        assert raised.value.reason == "psc_refused"  # type: ignore[union-attr]


def signed_userinfo(key: Mapping[str, Any] = PSC_KEY, **claims: Any) -> Answer:
    payload = {**PSC_USERINFO, "iss": ISSUER, "aud": "broker", "iat": NOW, "exp": NOW + 60, "nbf": NOW, "jti": "j",
               **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    token = jwt.encode(payload, jwt.PyJWK(dict(key)).key, algorithm="RS256", headers={"kid": PSC_KEY["kid"]})
    return Answer(200, f"{token}\n", content_type="Application/JWT; charset=utf-8")


def test_a_signed_userinfo_is_verified_and_its_envelope_dropped() -> None:
    world = World()
    world.clock.now = NOW
    world.psc.userinfo = signed_userinfo(iat=None, exp=None, nbf=None)
    identity = world.finish().identity
    assert identity.claims == PSC_USERINFO
    world = World()
    world.psc.userinfo = signed_userinfo(aud=["other", "broker"], iat=None, exp=None, nbf=None)
    assert world.finish().identity.claims == PSC_USERINFO
    world = World()
    world.psc.userinfo = signed_userinfo(iss=None, aud=None, iat=None, exp=None, nbf=None, jti=None)
    assert world.finish().identity.claims == PSC_USERINFO  # iss and aud are checked when present


@pytest.mark.parametrize(
    ("claims", "key", "detail"),
    [
        ({"iss": "https://elsewhere"}, PSC_KEY, "psc userinfo JWT: unexpected issuer"),
        ({"aud": "other"}, PSC_KEY, "psc userinfo JWT: not for this client"),
        ({"aud": ["other", "third"]}, PSC_KEY, "psc userinfo JWT: not for this client"),
        ({"sub": None}, PSC_KEY, "psc userinfo JWT: MissingRequiredClaimError"),
        ({}, SHARED_BROKER_KEY, "psc userinfo JWT: InvalidSignatureError"),
        ({"exp": 1_000_000_000}, PSC_KEY, "psc userinfo JWT: ExpiredSignatureError"),
    ],
)
def test_a_signed_userinfo_that_fails_a_check_is_refused(claims: dict[str, Any], key: Mapping[str, Any],
                                                         detail: str) -> None:
    world = World()
    world.psc.userinfo = signed_userinfo(key, **({"iat": None, "exp": None, "nbf": None} | claims))
    refusal = world.refused()
    assert (refusal.reason, refusal.detail) == ("psc_refused", detail)


def test_the_end_session_url_comes_from_discovery_and_must_be_https() -> None:
    world = World()
    assert world.adapter.end_session_url() == f"{PSC}/logout"
    world = World()
    world.psc.metadata["end_session_endpoint"] = "http://psc.example.fr/logout"
    assert world.adapter.end_session_url() is None
    world = World()
    world.psc.metadata["end_session_endpoint"] = ["https://psc.example.fr/logout"]
    assert world.adapter.end_session_url() is None
    world = World()
    world.psc.metadata = requests.ConnectionError("down")
    assert world.adapter.end_session_url() is None
    with pytest.raises(UpstreamUnavailableError) as raised:
        world.adapter.probe()
    assert raised.value.detail == "psc discovery: ConnectionError"


def test_the_probe_reads_the_discovery_document() -> None:
    world = World()
    world.adapter.probe()
    assert world.psc.gets == [("https://psc.example.fr/.well-known/wallet-openid-configuration",
                               {"Accept": "application/json"})]


def test_every_challenge_is_the_s256_of_its_verifier() -> None:
    world = World()
    for _ in range(400):  # base64url without padding, whatever its last character
        query, flow = world.begin()
        digest = hashlib.sha256(flow["code_verifier"].encode()).digest()
        assert query["code_challenge"] == base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_each_assertion_has_its_own_jti() -> None:
    jtis = []
    for _ in range(2):
        world = World(psc_token_auth_method=PSC_PRIVATE_KEY_JWT, psc_client_secret=None)
        world.finish()
        jtis.append(jwt.decode(world.psc.posts[0]["data"]["client_assertion"], options={"verify_signature": False})
                    ["jti"])
    assert jtis[0] != jtis[1] and all(len(jti) == 36 for jti in jtis)  # UUIDs


def test_a_token_response_without_access_token_sends_an_empty_bearer() -> None:
    world = World()
    _, flow = world.begin()
    world.psc.token = Answer(200, {"id_token": id_token(flow["nonce"])})
    world.psc.userinfo = Answer(401, {})
    with pytest.raises(SignInRefused):
        world.adapter.finish(flow, {"state": "st-1", "code": "c-1"})
    assert [h["Authorization"] for url, h in world.psc.gets if url == f"{PSC}/userinfo"] == ["Bearer "]


def test_a_userinfo_without_content_type_is_read_as_json() -> None:
    world = World()
    world.psc.userinfo = Answer(200, dict(PSC_USERINFO))
    world.psc.userinfo.headers = {}
    assert world.finish().identity.sub == PSC_USERINFO["sub"]


def test_a_signed_userinfo_is_checked_with_the_key_its_kid_names_and_psc_leeway() -> None:
    import time

    world = World()
    world.psc.jwks = Answer(200, {"keys": [public_jwk(SHARED_BROKER_KEY), public_jwk(PSC_KEY)]})
    world.psc.userinfo = signed_userinfo(iat=None, exp=int(time.time()) - 60, nbf=None)  # within PSC's leeway
    assert world.finish().identity.claims == PSC_USERINFO


def test_a_signed_userinfo_audience_is_compared_whole_not_as_a_substring() -> None:
    world = World()
    world.psc.userinfo = signed_userinfo(aud="not-the-broker-client", iat=None, exp=None, nbf=None)
    assert world.refused().detail == "psc userinfo JWT: not for this client"


def test_an_unreachable_jwks_names_psc_jwks() -> None:
    world = World()
    world.psc.jwks = Answer(500, {})
    with pytest.raises(UpstreamUnavailableError) as raised:
        world.finish()
    assert raised.value.detail == "psc jwks: HTTP 500"
