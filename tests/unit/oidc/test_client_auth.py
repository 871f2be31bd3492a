"""Client authentication at /token: Basic, post, private_key_jwt; one method, the registered one."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sanscouture.errors import InvalidClientError
from sanscouture.errors import InvalidRequestError
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from sanscouture.models import Client
from sanscouture.oidc.client_auth import ASSERTION_TYPE
from sanscouture.oidc.client_auth import authenticate_client
from sanscouture.oidc.client_auth import check_assertion_alg
from sanscouture.oidc.client_auth import check_assertion_lifetime
from sanscouture.oidc.client_auth import check_assertion_not_before
from sanscouture.oidc.client_auth import check_assertion_not_expired
from sanscouture.oidc.client_auth import check_registered_method
from sanscouture.oidc.client_auth import check_secret
from sanscouture.oidc.client_auth import check_single_method
from sanscouture.oidc.client_auth import presented_methods
from sanscouture.oidc.client_auth import read_basic
from sanscouture.oidc.client_auth import table_key
from sanscouture.web import Request
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeRowStore
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import sha256_secret

RP_KEY = generate_private_jwk()
OTHER_KEY = generate_private_jwk()
PS_KEY = {**generate_private_jwk(), "kid": "ps-1"}
PS_PUBLIC_JWK = {name: value for name, value in public_jwk(PS_KEY).items() if name != "alg"}  # any RSA alg
EC_PRIVATE = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC_JWK = {**ECAlgorithm.to_jwk(EC_PRIVATE.public_key(), as_dict=True), "kid": "ec-1"}

BASIC_CLIENT = Client("rp-basic", ("https://rp/cb",), "client_secret_basic", sha256_secret("s3cret+/%"))
POST_CLIENT = Client("rp-post", ("https://rp/cb",), "client_secret_post", "clear-secret")
JWT_CLIENT = Client(
    "rp-jwt", ("https://rp/cb",), "private_key_jwt", jwks={"keys": [public_jwk(RP_KEY), EC_PUBLIC_JWK, PS_PUBLIC_JWK]}
)
URI_CLIENT = Client("rp-uri", ("https://rp/cb",), "private_key_jwt", jwks_uri="https://rp.example.fr/jwks")
SETTINGS = make_settings(BASIC_CLIENT, POST_CLIENT, JWT_CLIENT, URI_CLIENT)


class FakeJwks:
    """JwksFetcher serving a list of successive JWK Sets: the next one on refresh."""

    def __init__(self, *sets: Mapping[str, Any]) -> None:
        self.sets = list(sets)
        self.calls: list[bool] = []

    def __call__(self, jwks_uri: str, *, refresh: bool = False) -> Mapping[str, Any]:
        self.calls.append(refresh)
        if refresh and len(self.sets) > 1:
            self.sets.pop(0)
        return self.sets[0]


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def token_request(form: Mapping[str, str] | None = None, authorization: str | None = None) -> Request:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if authorization:
        headers["authorization"] = authorization
    return Request("POST", f"{ISSUER}/token", headers=headers, form=dict(form or {}))


def assertion(
    claims: Mapping[str, Any] | None = None,
    *,
    key: Any = None,
    alg: str = "RS256",
    kid: str | None = "default",
    drop: tuple[str, ...] = (),
) -> str:
    payload = {
        "iss": "rp-jwt",
        "sub": "rp-jwt",
        "aud": f"{ISSUER}/token",
        "exp": int(NOW) + 60,
        "iat": int(NOW),
        "jti": "jti-1",
        **(claims or {}),
    }
    for name in drop:
        payload.pop(name)
    signing_key = key if key is not None else jwt.PyJWK(RP_KEY).key
    headers = {"kid": RP_KEY["kid"] if kid == "default" else kid} if kid is not None else {}
    return jwt.encode(payload, signing_key, algorithm=alg, headers=headers)


def jwt_form(token: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": token, **extra}


def authenticate(request: Request, jwks: FakeJwks | None = None, jti: FakeRowStore | None = None) -> Client:
    store = jti if jti is not None else FakeRowStore("jti", FakeClock())
    return authenticate_client(request, SETTINGS, store, jwks or FakeJwks({"keys": []}), FakeClock())


def refused(request: Request, **kwargs: Any) -> InvalidClientError:
    with pytest.raises(InvalidClientError) as raised:
        authenticate(request, **kwargs)
    assert raised.value.error == "invalid_client"
    assert raised.value.status == 401
    return raised.value


# -- method detection ----------------------------------------------------------------------


def test_presented_methods_detects_each_method() -> None:
    assert presented_methods(token_request(authorization=basic("a", "b"))) == ["client_secret_basic"]
    assert presented_methods(token_request({"client_id": "a", "client_secret": "b"})) == ["client_secret_post"]
    assert presented_methods(token_request(jwt_form("x"))) == ["private_key_jwt"]
    assert presented_methods(token_request(authorization="Bearer abc")) == []


def test_two_methods_in_one_request_is_invalid_request() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_single_method(["client_secret_basic", "client_secret_post"])
    assert raised.value.error == "invalid_request"
    request = token_request({"client_secret": "x"}, authorization=basic("rp-basic", "s3cret+/%"))
    with pytest.raises(InvalidRequestError):
        authenticate(request)


def test_no_credentials_is_invalid_client() -> None:
    assert refused(token_request({"client_id": "rp-basic"})).description == "client authentication is required"


# -- client_secret_basic -------------------------------------------------------------------


def test_basic_credentials_are_form_urldecoded() -> None:
    assert read_basic(basic("rp:1", "a b+c%")) == ("rp:1", "a b+c%")
    assert read_basic("basic " + base64.b64encode(b"id:se%3Acret").decode()) == ("id", "se:cret")


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic ",
                                    "Basic été", "Basic \xff\xfe=="])
def test_malformed_basic_is_invalid_client(header: str) -> None:
    with pytest.raises(InvalidClientError):
        read_basic(header)


def test_basic_with_the_right_secret_authenticates_against_its_sha256() -> None:
    assert authenticate(token_request(authorization=basic("rp-basic", "s3cret+/%"))) == BASIC_CLIENT


def test_basic_with_a_wrong_secret_is_invalid_client() -> None:
    error = refused(token_request(authorization=basic("rp-basic", "wrong")))
    assert error.description == "client authentication failed"


def test_unknown_client_gets_the_same_answer_as_a_wrong_secret() -> None:
    error = refused(token_request(authorization=basic("nobody", "x")))
    assert error.description == "client authentication failed"
    assert "unknown client" in error.detail


def test_body_client_id_must_match_the_basic_one() -> None:
    request = token_request({"client_id": "rp-post"}, authorization=basic("rp-basic", "s3cret+/%"))
    with pytest.raises(InvalidRequestError):
        authenticate(request)


# -- client_secret_post --------------------------------------------------------------------


def test_post_with_the_right_clear_secret_authenticates() -> None:
    assert authenticate(token_request({"client_id": "rp-post", "client_secret": "clear-secret"})) == POST_CLIENT


def test_post_with_a_wrong_secret_is_invalid_client() -> None:
    refused(token_request({"client_id": "rp-post", "client_secret": "clear-secreT"}))


def test_post_without_client_id_is_invalid_request() -> None:
    with pytest.raises(InvalidRequestError):
        authenticate(token_request({"client_secret": "clear-secret"}))


def test_a_method_other_than_the_registered_one_is_invalid_client() -> None:
    error = refused(token_request({"client_id": "rp-basic", "client_secret": "s3cret+/%"}))
    assert error.description == "this client must authenticate with client_secret_basic"
    with pytest.raises(InvalidClientError):
        check_registered_method(JWT_CLIENT, "client_secret_post")


def test_check_secret_refuses_an_empty_registration() -> None:
    with pytest.raises(InvalidClientError):
        check_secret(Client("x", ("https://rp/cb",), client_secret=None), "")


# -- private_key_jwt -----------------------------------------------------------------------


def test_valid_assertion_authenticates_and_records_its_jti_until_exp() -> None:
    store = FakeRowStore("jti", FakeClock())
    assert authenticate(token_request(jwt_form(assertion())), jti=store) == JWT_CLIENT
    [row] = store.rows.values()
    assert (row.partition, row.row) == ("rp-jwt", "jti-1")
    assert row.expires_at == NOW + 60 + 30  # exp plus the leeway during which it would still pass


def test_replayed_jti_is_invalid_client() -> None:
    store = FakeRowStore("jti", FakeClock())
    token = assertion()
    authenticate(token_request(jwt_form(token)), jti=store)
    assert refused(token_request(jwt_form(token)), jti=store).description == "client_assertion was already used"


def test_es256_and_ps256_assertions_are_accepted() -> None:
    es = assertion({"jti": "es"}, key=EC_PRIVATE, alg="ES256", kid="ec-1")
    assert authenticate(token_request(jwt_form(es))) == JWT_CLIENT
    ps = assertion({"jti": "ps"}, key=jwt.PyJWK(PS_KEY).key, alg="PS256", kid="ps-1")
    assert authenticate(token_request(jwt_form(ps))) == JWT_CLIENT


def test_a_key_registered_with_an_alg_is_not_used_with_another() -> None:
    # RFC 7517 4.4: RP_KEY is registered with alg RS256, so a PS256 signature by it is refused.
    refused(token_request(jwt_form(assertion(alg="PS256"))))


def test_issuer_as_audience_is_accepted_too() -> None:
    assert authenticate(token_request(jwt_form(assertion({"aud": ISSUER})))) == JWT_CLIENT


def test_assertion_signed_by_another_key_is_invalid_client() -> None:
    token = assertion(key=jwt.PyJWK(OTHER_KEY).key)
    assert refused(token_request(jwt_form(token))).description == "client authentication failed"


def test_assertion_without_kid_is_tried_against_every_fitting_key() -> None:
    assert authenticate(token_request(jwt_form(assertion(kid=None)))) == JWT_CLIENT


def test_assertion_with_an_unknown_kid_is_invalid_client() -> None:
    refused(token_request(jwt_form(assertion(kid="who"))))


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", None])
def test_only_asymmetric_algorithms_are_accepted(alg: str | None) -> None:
    with pytest.raises(InvalidClientError):
        check_assertion_alg({"alg": alg} if alg else {})


def test_hs256_assertion_signed_with_the_public_key_is_refused() -> None:
    # The classic algorithm-confusion attack: HMAC keyed with the public key's bytes.
    token = jwt.encode({"iss": "rp-jwt", "sub": "rp-jwt"}, "k" * 32, algorithm="HS256")
    refused(token_request(jwt_form(token)))


def test_unsigned_assertion_is_refused() -> None:
    token = jwt.encode({"iss": "rp-jwt", "sub": "rp-jwt", "aud": f"{ISSUER}/token"}, "", algorithm="none")
    refused(token_request(jwt_form(token)))


def test_wrong_audience_is_invalid_client() -> None:
    error = refused(token_request(jwt_form(assertion({"aud": "https://elsewhere.example/token"}))))
    assert error.description == "client_assertion aud must be the issuer or the token endpoint URL"


@pytest.mark.parametrize("audience", [[ISSUER], [ISSUER, "https://elsewhere.example"], [f"{ISSUER}/token"]])
def test_a_multi_valued_audience_is_refused_even_when_it_names_us(audience: list[str]) -> None:
    """OpenID Foundation 2025 advisory on audience injection: one string, never an array."""
    error = refused(token_request(jwt_form(assertion({"aud": audience}))))
    assert error.description == "client_assertion aud must be a single string: the issuer or the token endpoint URL"


def test_an_audience_naming_another_endpoint_of_ours_is_refused() -> None:
    error = refused(token_request(jwt_form(assertion({"aud": f"{ISSUER}/userinfo"}))))
    assert error.description == "client_assertion aud must be the issuer or the token endpoint URL"


def test_iss_other_than_the_client_is_invalid_client() -> None:
    error = refused(token_request(jwt_form(assertion({"iss": "rp-basic"}))))
    assert error.description == "client_assertion iss must be the client_id"


@pytest.mark.parametrize("claim", ["exp", "jti", "aud", "iss"])
def test_required_claims_are_required(claim: str) -> None:
    error = refused(token_request(jwt_form(assertion(drop=(claim,)))))
    assert error.description == f"client_assertion must have {claim}"


def test_assertion_for_a_secret_client_is_invalid_client() -> None:
    token = assertion({"iss": "rp-basic", "sub": "rp-basic"})
    assert refused(token_request(jwt_form(token))).description.startswith("this client must authenticate")


def test_wrong_assertion_type_is_invalid_request() -> None:
    with pytest.raises(InvalidRequestError):
        authenticate(token_request({"client_assertion_type": "urn:x", "client_assertion": assertion()}))
    with pytest.raises(InvalidRequestError):
        authenticate(token_request({"client_assertion_type": ASSERTION_TYPE}))


def test_garbage_assertion_is_invalid_client() -> None:
    assert refused(token_request(jwt_form("not.a.jwt"))).description == "client_assertion is not a valid JWT"


def test_expired_assertion_is_refused() -> None:
    check_assertion_not_expired({"exp": NOW - 29}, NOW)  # within the leeway
    with pytest.raises(InvalidClientError):
        check_assertion_not_expired({"exp": NOW - 30}, NOW)


def test_assertion_valid_for_more_than_five_minutes_is_refused() -> None:
    check_assertion_lifetime({"exp": NOW + 300}, NOW)  # docs/rp-integration.md: at most 5 minutes
    check_assertion_lifetime({"exp": NOW + 300 + 30}, NOW)  # clock skew
    for too_far in (NOW + 331, NOW + 3600):  # 3600: Authlib's default, refused (the guide says how to set it)
        with pytest.raises(InvalidClientError) as raised:
            check_assertion_lifetime({"exp": too_far}, NOW)
        assert raised.value.description == "client_assertion exp must be at most 300 seconds ahead"


def test_assertion_before_its_nbf_is_refused() -> None:
    check_assertion_not_before({}, NOW)
    with pytest.raises(InvalidClientError):
        check_assertion_not_before({"nbf": NOW + 120}, NOW)


def test_jwks_uri_is_refetched_once_for_an_unknown_kid() -> None:
    rotated = generate_private_jwk()
    jwks = FakeJwks({"keys": [public_jwk(RP_KEY)]}, {"keys": [public_jwk(rotated)]})
    token = assertion({"iss": "rp-uri", "sub": "rp-uri"}, key=jwt.PyJWK(rotated).key, kid=rotated["kid"])
    assert authenticate(token_request(jwt_form(token)), jwks=jwks) == URI_CLIENT
    assert jwks.calls == [False, True]


def test_table_key_keeps_safe_values_and_hashes_forbidden_characters() -> None:
    assert table_key("rp-jwt") == "rp-jwt"
    for value in ("a/b", "a\\b", "a#b", "a?b", "a\x00b", "x" * 300):
        hashed = table_key(value)
        assert hashed.startswith("sha256-") and len(hashed) == 7 + 64
    assert json.dumps(table_key("jti/1"))  # a plain string


# -- exact descriptions and logged reasons; the branches the tests above leave open ------------------


def test_two_methods_name_both_in_the_log() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_single_method(["client_secret_basic", "client_secret_post"])
    assert raised.value.description == "use exactly one client authentication method"
    assert raised.value.detail == "client_secret_basic, client_secret_post"


def test_an_assertion_without_its_type_is_still_private_key_jwt_and_needs_the_type() -> None:
    request = token_request({"client_assertion": assertion()})
    assert presented_methods(request) == ["private_key_jwt"]
    with pytest.raises(InvalidRequestError) as raised:
        authenticate(request)
    assert raised.value.description == f"client_assertion_type must be {ASSERTION_TYPE}"
    with pytest.raises(InvalidRequestError) as raised:
        authenticate(token_request({"client_assertion_type": ASSERTION_TYPE}))
    assert raised.value.description == "client_assertion is required"


def test_post_without_client_id_says_so() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        authenticate(token_request({"client_secret": "clear-secret"}))
    assert raised.value.description == "client_id is required with client_secret"


def test_read_basic_descriptions() -> None:
    with pytest.raises(InvalidClientError) as raised:
        read_basic("Bearer abc")
    assert raised.value.description == "the Authorization header is not HTTP Basic"
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                   "Basic " + base64.b64encode(b":no-id").decode()):
        with pytest.raises(InvalidClientError) as raised:
            read_basic(header)
        assert raised.value.description == "malformed HTTP Basic credentials"


def test_basic_credentials_are_strict_base64_and_split_at_the_first_colon() -> None:
    encoded = base64.b64encode(b"id:secret").decode()
    with pytest.raises(InvalidClientError):
        read_basic(f"Basic {encoded[:4]}!{encoded[4:]}")  # a lenient decoder would drop the "!"
    assert read_basic("Basic " + base64.b64encode(b"id:se:cret").decode()) == ("id", "se:cret")


@pytest.mark.parametrize("presented", ["", "XXXX", "anything"])
def test_a_client_without_a_registered_secret_accepts_none(presented: str) -> None:
    with pytest.raises(InvalidClientError) as raised:
        check_secret(Client("x", ("https://rp/cb",), client_secret=None), presented)
    assert raised.value.detail == "client x: wrong secret"


def test_wrong_secret_and_unknown_client_are_told_apart_in_the_log_only() -> None:
    wrong = refused(token_request({"client_id": "rp-post", "client_secret": "nope"}))
    assert (wrong.description, wrong.detail) == ("client authentication failed", "client rp-post: wrong secret")
    unknown = refused(token_request(authorization=basic("x" * 100, "s")))
    assert (unknown.description, unknown.detail) == ("client authentication failed", f"unknown client {'x' * 64!r}")


def test_a_method_other_than_the_registered_one_is_logged() -> None:
    error = refused(token_request({"client_id": "rp-basic", "client_secret": "s3cret+/%"}))
    assert error.detail == "client rp-basic used client_secret_post"


def test_private_key_jwt_alone_defaults_to_the_token_endpoint_audience() -> None:
    from sanscouture.oidc.client_auth import authenticate_private_key_jwt

    store = FakeRowStore("jti", FakeClock())
    request = token_request(jwt_form(assertion({"aud": ISSUER, "nbf": int(NOW)})))
    assert authenticate_private_key_jwt(request, SETTINGS, store, FakeJwks({"keys": []}), FakeClock()) == JWT_CLIENT


@pytest.mark.parametrize("subject", ["", None, 42])
def test_an_assertion_without_a_usable_sub_names_no_client(subject: Any) -> None:
    token = assertion({"sub": subject}) if subject is not None else assertion(drop=("sub",))
    assert refused(token_request(jwt_form(token))).description == "client_assertion must have sub = client_id"


def test_an_unsupported_alg_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(InvalidClientError) as raised:
        check_assertion_alg({"alg": "HS256"})
    assert raised.value.description == "client_assertion alg must be one of RS256, PS256, ES256"


class UriJwks:
    """A JwksFetcher that serves one URI only and records each call."""

    def __init__(self, uri: str, *keys: Mapping[str, Any]) -> None:
        self.uri, self.keys, self.calls = uri, list(keys), []  # type: ignore[var-annotated]

    def __call__(self, jwks_uri: str, *, refresh: bool = False) -> Mapping[str, Any]:
        self.calls.append(refresh)
        return {"keys": self.keys} if jwks_uri == self.uri else {"keys": []}


def uri_assertion(**claims: Any) -> str:
    return assertion({"iss": "rp-uri", "sub": "rp-uri", **claims})


def test_a_known_key_at_the_jwks_uri_is_not_refetched() -> None:
    jwks = UriJwks("https://rp.example.fr/jwks", public_jwk(RP_KEY))
    assert authenticate(token_request(jwt_form(uri_assertion())), jwks=jwks) == URI_CLIENT  # type: ignore[arg-type]
    assert jwks.calls == [False]


def test_the_jwks_uri_is_fetched_through_the_counting_entry_point_too() -> None:
    from sanscouture.oidc.client_auth import authenticate_client_counting_failures

    jwks = UriJwks("https://rp.example.fr/jwks", public_jwk(RP_KEY))
    request = token_request(jwt_form(uri_assertion()))
    client = authenticate_client_counting_failures(request, SETTINGS, FakeRowStore("jti", FakeClock()), jwks,
                                                   FakeClock(), None)
    assert client == URI_CLIENT


def test_failures_are_counted_per_source_address() -> None:
    from sanscouture.limits import RateLimiter
    from sanscouture.limits import SlowDownError
    from sanscouture.oidc.client_auth import authenticate_client_counting_failures

    limiter = RateLimiter(1, FakeClock())

    def attempt(source: str, secret: str) -> Client:
        request = token_request({"client_id": "rp-post", "client_secret": secret})
        request = Request("POST", request.url, {**request.headers, "x-forwarded-for": source}, form=request.form)
        return authenticate_client_counting_failures(request, SETTINGS, FakeRowStore("jti", FakeClock()),
                                                     FakeJwks({"keys": []}), FakeClock(), limiter)

    with pytest.raises(InvalidClientError):
        attempt("192.0.2.1", "nope")
    with pytest.raises(SlowDownError):
        attempt("192.0.2.1", "clear-secret")
    assert attempt("192.0.2.2", "clear-secret") == POST_CLIENT  # another source is not held back


def test_a_failure_that_exhausts_the_limit_concurrently_is_still_answered_as_invalid_client() -> None:
    from sanscouture.limits import RateLimiter
    from sanscouture.limits import SlowDownError
    from sanscouture.oidc.client_auth import authenticate_client_counting_failures

    class Racing(RateLimiter):
        """Another request spent the last event between this one's check and its spend."""

        def spend(self, key: str) -> None:
            raise SlowDownError(60)

    request = token_request({"client_id": "rp-post", "client_secret": "nope"})
    with pytest.raises(InvalidClientError):
        authenticate_client_counting_failures(request, SETTINGS, FakeRowStore("jti", FakeClock()),
                                              FakeJwks({"keys": []}), FakeClock(), Racing(5, FakeClock()))


def test_signature_failures_are_logged_with_their_reason() -> None:
    unknown_kid = refused(token_request(jwt_form(assertion(kid="who"))))
    assert unknown_kid.detail == "client rp-jwt: no key matches kid/alg"
    wrong_key = refused(token_request(jwt_form(assertion(key=jwt.PyJWK(OTHER_KEY).key, kid=RP_KEY["kid"]))))
    assert wrong_key.detail == "client rp-jwt: signature does not verify"
    keyless = Client("rp-keyless", ("https://rp/cb",), "private_key_jwt")
    token = assertion({"iss": "rp-keyless", "sub": "rp-keyless"})
    with pytest.raises(InvalidClientError) as raised:
        authenticate_client(token_request(jwt_form(token)), make_settings(keyless), FakeRowStore("jti", FakeClock()),
                            FakeJwks({"keys": []}), FakeClock())
    assert (raised.value.description, raised.value.detail) == ("client authentication failed",
                                                               "client rp-keyless: no jwks nor jwks_uri")


def test_the_injected_clock_not_the_wall_clock_decides_exp_and_nbf() -> None:
    for now in (1_000_000_000, 4_000_000_000):  # 2001 and 2096: the library must not check the times itself
        token = assertion({"exp": now + 60, "iat": now, "nbf": now - 10, "jti": f"at-{now}"})
        client = authenticate_client(token_request(jwt_form(token)), SETTINGS, FakeRowStore("jti", FakeClock(now)),
                                     FakeJwks({"keys": []}), FakeClock(now))
        assert client == JWT_CLIENT


def test_every_fitting_key_is_tried_in_turn() -> None:
    # Without kid, RS256 fits RP_KEY (first) and PS_KEY (no alg registered): a signature by PS_KEY verifies.
    token = assertion({"jti": "second-key"}, key=jwt.PyJWK(PS_KEY).key, kid=None)
    assert authenticate(token_request(jwt_form(token))) == JWT_CLIENT


def test_unusable_entries_of_a_key_set_are_skipped_not_fatal() -> None:
    good = public_jwk(RP_KEY)
    broken = {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}
    other_alg = {**public_jwk(OTHER_KEY), "alg": "PS256"}
    encryption = {**public_jwk(RP_KEY), "use": "enc"}
    jwks = UriJwks("https://rp.example.fr/jwks", "garbage", broken, other_alg, encryption, good)  # type: ignore[arg-type]
    token = assertion({"iss": "rp-uri", "sub": "rp-uri", "jti": "skip"}, kid=None)
    assert authenticate(token_request(jwt_form(token)), jwks=jwks) == URI_CLIENT  # type: ignore[arg-type]


def test_a_key_for_encryption_is_not_used_to_verify() -> None:
    jwks = UriJwks("https://rp.example.fr/jwks", {**public_jwk(RP_KEY), "use": "enc"})
    error = refused(token_request(jwt_form(uri_assertion())), jwks=jwks)  # type: ignore[arg-type]
    assert error.detail == "client rp-uri: no key matches kid/alg"


def test_time_checks_have_their_descriptions_and_bounds() -> None:
    with pytest.raises(InvalidClientError) as raised:
        check_assertion_not_expired({"exp": NOW - 30}, NOW)
    assert raised.value.description == "client_assertion has expired"
    check_assertion_not_before({"nbf": NOW + 30}, NOW)  # the leeway, inclusive
    check_assertion_not_before({"nbf": NOW}, NOW)
    with pytest.raises(InvalidClientError) as raised:
        check_assertion_not_before({"nbf": NOW + 31}, NOW)
    assert raised.value.description == "client_assertion is not valid yet (nbf)"


@pytest.mark.parametrize("value", [True, "soon", float("inf"), float("nan"), None])
def test_exp_must_be_a_finite_number(value: Any) -> None:
    with pytest.raises(InvalidClientError) as raised:
        check_assertion_not_expired({"exp": value}, NOW)
    assert raised.value.description == "client_assertion exp and nbf must be numbers"


def test_jti_must_not_be_empty() -> None:
    assert refused(token_request(jwt_form(assertion({"jti": ""})))).description == "client_assertion must have a jti"


def test_the_replay_guard_row_names_the_client_and_lives_at_least_a_second() -> None:
    store = FakeRowStore("jti", FakeClock())
    assert authenticate(token_request(jwt_form(assertion({"exp": NOW - 29.5}))), jti=store) == JWT_CLIENT
    [row] = store.rows.values()
    assert row.data == {"client_id": "rp-jwt"} and row.expires_at == NOW + 1
    replay = refused(token_request(jwt_form(assertion({"exp": NOW - 29.5}))), jti=store)
    assert replay.detail == "client rp-jwt: jti replay"


def test_other_token_errors_are_logged_with_their_message() -> None:
    error = refused(token_request(jwt_form(assertion({"jti": 42}))))
    assert (error.description, error.detail) == ("client authentication failed",
                                                 "client rp-jwt: JWT ID must be a string")


def test_the_basic_scheme_is_the_first_word_of_the_header() -> None:
    error = refused(token_request(authorization="Basic abc def"))
    assert error.description == "malformed HTTP Basic credentials"
