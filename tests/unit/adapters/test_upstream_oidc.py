"""The upstream ID token checks (OIDC Core 3.1.3.7) and the JWKS cache, without network: a recorded
session serves the provider's documents, the tokens are signed here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
import requests

from sanscouture.adapters.upstream_oidc import CachedDocument
from sanscouture.adapters.upstream_oidc import JwksCache
from sanscouture.adapters.upstream_oidc import fetch_json
from sanscouture.adapters.upstream_oidc import verify_id_token
from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from tests.unit.oidc.fakes import SHARED_BROKER_KEY
from tests.unit.oidc.fakes import FakeClock

NOW = 1_800_000_000
ISSUER = "https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet"
AUDIENCE = "sans-couture"
KEY = SHARED_BROKER_KEY
OTHER_KEY = generate_private_jwk()
JWKS_URL = "https://psc.example/jwks"


class FakeResponse:
    def __init__(self, status: int, body: Any) -> None:
        self.status_code = status
        self.body = body

    def json(self) -> Any:
        if isinstance(self.body, bytes):
            return json.loads(self.body)
        return self.body


class FakeSession:
    """requests.Session.get over a list of answers (the last one repeats); records each call."""

    def __init__(self, *answers: FakeResponse | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, Mapping[str, str]]] = []

    def get(self, url: str, headers: Mapping[str, str]) -> FakeResponse:
        self.calls.append((url, headers))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def jwks_of(*keys: Mapping[str, Any]) -> FakeResponse:
    return FakeResponse(200, {"keys": [dict(key) for key in keys]})


def cache(*answers: FakeResponse | Exception, clock: FakeClock | None = None) -> tuple[JwksCache, FakeSession]:
    session = FakeSession(*(answers or (jwks_of(public_jwk(KEY)),)))
    clock = clock or FakeClock(NOW)
    document = CachedDocument(session, JWKS_URL, "psc jwks", 3600, clock)  # type: ignore[arg-type]
    return JwksCache(document, clock), session


def token(claims: Mapping[str, Any] | None = None, *, key: Mapping[str, Any] = KEY, alg: str = "RS256",
          kid: str | None = "default", drop: tuple[str, ...] = ()) -> str:
    payload = {"iss": ISSUER, "sub": "f:x:810100000001", "aud": AUDIENCE, "exp": NOW + 300, "iat": NOW,
               "nonce": "n-1", **(claims or {})}
    for name in drop:
        payload.pop(name)
    headers = {"kid": key["kid"] if kid == "default" else kid} if kid is not None else {}
    return jwt.encode(payload, jwt.PyJWK(dict(key)).key, algorithm=alg, headers=headers)


def verify(raw: str, jwks: JwksCache | None = None, *, now: float | None = NOW, nonce: str | None = "n-1",
           issuer: Any = ISSUER) -> dict[str, Any]:
    return verify_id_token(raw, jwks or cache()[0], audience=AUDIENCE, issuer=issuer, nonce=nonce, provider="psc",
                           now=now)


def refused(raw: str, **kwargs: Any) -> str:
    with pytest.raises(SignInRefused) as raised:
        verify(raw, **kwargs)
    assert raised.value.reason == "upstream_token_invalid"
    return raised.value.detail


# -- fetch_json and the cached documents ---------------------------------------------------------------


def test_fetch_json_asks_for_json_and_returns_the_object() -> None:
    session = FakeSession(FakeResponse(200, {"issuer": ISSUER}))
    assert fetch_json(session, "https://psc.example/.well-known", "psc discovery") == {"issuer": ISSUER}  # type: ignore[arg-type]
    assert session.calls == [("https://psc.example/.well-known", {"Accept": "application/json"})]


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (requests.ConnectionError("refused"), "psc discovery: ConnectionError"),
        (FakeResponse(503, {}), "psc discovery: HTTP 503"),
        (FakeResponse(201, {}), "psc discovery: HTTP 201"),
        (FakeResponse(200, b"<html>"), "psc discovery: not JSON"),
        (FakeResponse(200, ["a", "list"]), "psc discovery: not a JSON object"),
    ],
)
def test_fetch_json_turns_every_failure_into_an_outage(answer: FakeResponse | Exception, detail: str) -> None:
    with pytest.raises(UpstreamUnavailableError) as raised:
        fetch_json(FakeSession(answer), "https://psc.example/.well-known", "psc discovery")  # type: ignore[arg-type]
    assert (raised.value.status, raised.value.error, raised.value.detail) == (503, "temporarily_unavailable", detail)


def test_a_cached_document_is_fetched_again_only_after_its_ttl_or_when_forced() -> None:
    clock = FakeClock(NOW)
    session = FakeSession(FakeResponse(200, {"n": 1}), FakeResponse(200, {"n": 2}), FakeResponse(200, {"n": 3}))
    document = CachedDocument(session, JWKS_URL, "psc jwks", 3600, clock)  # type: ignore[arg-type]
    assert document.get() == {"n": 1}
    clock.now += 3600
    assert document.get() == {"n": 1}  # at the TTL, still fresh
    clock.now += 1
    assert document.get() == {"n": 2}
    assert document.get(force=True) == {"n": 3}
    assert len(session.calls) == 3 and document.what == "psc jwks"


# -- the JWKS cache --------------------------------------------------------------------------------------


def test_an_unknown_kid_refetches_the_keys_once_per_interval() -> None:
    rolled = generate_private_jwk()
    clock = FakeClock(NOW)
    jwks, session = cache(jwks_of(public_jwk(KEY)), jwks_of(public_jwk(rolled)), clock=clock)
    assert jwks.key(KEY["kid"]).key_id == KEY["kid"]
    assert jwks.key(rolled["kid"]).key_id == rolled["kid"]  # rollover: fetched again
    assert len(session.calls) == 2
    clock.now += 10
    with pytest.raises(SignInRefused) as raised:
        jwks.key("unknown")  # within 10 s of the last forced fetch: no new fetch
    assert (raised.value.reason, raised.value.detail) == ("upstream_token_invalid",
                                                          "no key with kid 'unknown' in psc jwks")
    assert len(session.calls) == 2
    clock.now += 1
    with pytest.raises(SignInRefused):
        jwks.key("unknown")
    assert len(session.calls) == 3


def test_without_kid_only_a_single_key_may_be_used() -> None:
    single, _ = cache(jwks_of(public_jwk(KEY)))
    assert single.key(None).key_id == KEY["kid"]
    two, _ = cache(jwks_of(public_jwk(KEY), public_jwk(OTHER_KEY)))
    with pytest.raises(SignInRefused):
        two.key(None)


def test_encryption_keys_and_unusable_entries_are_skipped() -> None:
    encryption = {**public_jwk(OTHER_KEY), "use": "enc"}
    broken = {"kty": "RSA", "kid": KEY["kid"], "alg": "XX", "n": "x", "e": "AQAB"}  # PyJWKError: no such alg
    jwks, _ = cache(FakeResponse(200, {"keys": ["garbage", encryption, broken, public_jwk(KEY)]}))
    assert jwks.key(KEY["kid"]).key_id == KEY["kid"]
    with pytest.raises(SignInRefused):
        jwks.key(OTHER_KEY["kid"])
    without_use = {name: value for name, value in public_jwk(KEY).items() if name != "use"}
    lone, _ = cache(FakeResponse(200, {"keys": [encryption, without_use]}))
    assert lone.key(None).key_id == KEY["kid"]  # "use" absent means a signing key; the enc key is not counted
    empty, _ = cache(FakeResponse(200, {}))
    with pytest.raises(SignInRefused):
        empty.key(None)


@pytest.mark.parametrize("unusable", [
    {"kty": "XYZ"},  # an unknown key type: InvalidKeyError, not PyJWKError
    {"kty": "RSA"},  # no n, no e
    {"kty": "RSA", "n": 5, "e": "AQAB"},  # n not a string
    {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA"},  # an unknown curve
    {"kty": "RSA", "alg": "none", "n": "AQAB", "e": "AQAB"},  # PyJWT: NotImplementedError
    {"kty": "oct", "k": "c2VjcmV0"},  # a shared secret: never a provider's signing key
])
def test_an_unusable_key_under_the_tokens_kid_is_skipped_not_a_crash(unusable: dict[str, Any]) -> None:
    """A provider key set with one entry PyJWT cannot load (or a symmetric one) under the same kid as the
    real key: the real key is still found; alone, the entry gives a refusal, never an exception."""
    bad = {**unusable, "kid": KEY["kid"]}
    jwks, _ = cache(FakeResponse(200, {"keys": [bad, public_jwk(KEY)]}))
    assert jwks.key(KEY["kid"]).key_id == KEY["kid"]
    alone, _ = cache(FakeResponse(200, {"keys": [bad]}))
    with pytest.raises(SignInRefused):
        alone.key(KEY["kid"])


# -- the ID token ----------------------------------------------------------------------------------------


def test_a_valid_id_token_gives_its_claims() -> None:
    claims = verify(token())
    assert (claims["sub"], claims["aud"], claims["nonce"]) == ("f:x:810100000001", AUDIENCE, "n-1")


def test_a_malformed_token_is_refused() -> None:
    assert refused("not-a-jwt") == "psc: malformed ID token"


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_symmetric_tokens_are_refused_before_any_key_is_looked_up(alg: str) -> None:
    raw = jwt.encode({"iss": ISSUER, "sub": "x", "aud": AUDIENCE, "exp": NOW + 60, "iat": NOW},
                     "k" * 32 if alg == "HS256" else None, algorithm=alg)  # type: ignore[arg-type]
    jwks, session = cache()
    assert refused(raw, jwks=jwks) == f"psc: alg {alg!r} refused"
    assert session.calls == []


def test_a_token_signed_by_another_key_is_refused() -> None:
    forged = token(key=OTHER_KEY, kid=KEY["kid"])
    assert refused(forged) == "psc: InvalidSignatureError: Signature verification failed"


def test_a_token_for_another_audience_is_refused() -> None:
    assert refused(token({"aud": "another-client"})).startswith("psc: InvalidAudienceError")


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat"])
def test_required_claims(claim: str) -> None:
    assert refused(token(drop=(claim,))) == f'psc: MissingRequiredClaimError: Token is missing the "{claim}" claim'


def test_the_issuer_is_compared_exactly_or_by_function() -> None:
    assert refused(token({"iss": ISSUER + "/"})) == "psc: unexpected issuer"
    tenant = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
    claims = verify(token({"iss": tenant, "tid": "11111111-2222-3333-4444-555555555555"}),
                    issuer=lambda c: f"https://login.microsoftonline.com/{c['tid']}/v2.0")
    assert claims["iss"] == tenant


def test_the_nonce_must_be_the_journeys_when_one_was_sent() -> None:
    assert refused(token({"nonce": "other"})) == "psc: nonce mismatch"
    assert refused(token(drop=("nonce",))) == "psc: nonce mismatch"
    assert verify(token(drop=("nonce",)), nonce=None)["sub"] == "f:x:810100000001"


def test_several_audiences_need_azp_naming_us() -> None:
    assert refused(token({"aud": [AUDIENCE, "other"]})) == "psc: azp does not name us"
    assert refused(token({"aud": [AUDIENCE, "other"], "azp": "other"})) == "psc: azp does not name us"
    assert verify(token({"aud": [AUDIENCE, "other"], "azp": AUDIENCE}))["azp"] == AUDIENCE
    assert verify(token({"aud": [AUDIENCE]}))["aud"] == [AUDIENCE]  # one audience: no azp needed


def test_times_are_checked_against_the_brokers_clock_with_two_minutes_of_leeway() -> None:
    assert verify(token({"exp": NOW - 119}))["sub"]
    assert refused(token({"exp": NOW - 120})) == "psc: ExpiredSignatureError: Signature has expired"
    assert verify(token({"iat": NOW + 120}))["sub"]
    assert refused(token({"iat": NOW + 121})) == "psc: ImmatureSignatureError: The token is not yet valid (iat)"
    assert verify(token({"nbf": NOW + 120}))["sub"]
    assert refused(token({"nbf": NOW + 121})) == "psc: ImmatureSignatureError: The token is not yet valid (nbf)"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_times_must_be_numbers(claim: str) -> None:
    assert refused(token({claim: "tomorrow"}), now=NOW) == f"psc: InvalidTokenError: {claim} must be a number"


def test_with_the_brokers_clock_the_machines_clock_is_not_used() -> None:
    # NOW is in 2027: the machine's clock (earlier) would find iat in the future, the broker's does not.
    past = 1_000_000_000
    assert verify(token({"iat": past, "exp": past + 300}), now=past)["sub"]
    assert verify(token({"iat": NOW + 3600 * 24 * 365, "exp": NOW + 3600 * 24 * 366,
                         "nbf": NOW + 3600 * 24 * 365}), now=NOW + 3600 * 24 * 365)["sub"]


def test_without_the_brokers_clock_the_library_checks_the_times() -> None:
    assert refused(token({"iat": 1_000_000_000, "exp": 1_000_000_300}), now=None).startswith(
        "psc: ExpiredSignatureError")


def test_the_tokens_kid_selects_its_key_among_several() -> None:
    jwks, _ = cache(jwks_of(public_jwk(OTHER_KEY), public_jwk(KEY)))
    assert verify(token(), jwks=jwks)["sub"] == "f:x:810100000001"


def test_without_the_brokers_clock_the_library_allows_the_same_leeway() -> None:
    import time

    now = int(time.time())
    assert verify(token({"iat": now - 600, "exp": now - 60}), now=None)["sub"]


def test_a_cached_documents_failure_names_the_document() -> None:
    document = CachedDocument(FakeSession(FakeResponse(503, {})), JWKS_URL, "psc jwks", 3600, FakeClock(NOW))  # type: ignore[arg-type]
    with pytest.raises(UpstreamUnavailableError) as raised:
        document.get()
    assert raised.value.detail == "psc jwks: HTTP 503"
