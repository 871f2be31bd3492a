"""Pushed authorization requests (RFC 9126): /par's checks with their exact errors, the pushed request
taken back once at /authorize, and a client that must use PAR."""

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

from sanscouture import journey
from sanscouture.adapters.tables import TRANSIENT_TABLES
from sanscouture.errors import InvalidClientError
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import OAuthError
from sanscouture.keys import KeyRing
from sanscouture.keys import generate_private_jwk
from sanscouture.keys import public_jwk
from sanscouture.limits import RateLimiter
from sanscouture.limits import SlowDownError
from sanscouture.models import Client
from sanscouture.oidc.client_auth import ASSERTION_TYPE
from sanscouture.oidc.client_auth import authenticate_client
from sanscouture.oidc.par import PAR_LIFETIME
from sanscouture.oidc.par import PAR_ROW
from sanscouture.oidc.par import REQUEST_URI_PREFIX
from sanscouture.oidc.par import InvalidRequestUriError
from sanscouture.oidc.par import MethodNotAllowedError
from sanscouture.oidc.par import ParEndpoint
from sanscouture.oidc.par import authorization_parameters
from sanscouture.oidc.par import check_pushed_when_required
from sanscouture.oidc.par import handle_par_request
from sanscouture.oidc.par import par_error_response
from sanscouture.oidc.par import par_required_of_every_client
from sanscouture.oidc.par import push
from sanscouture.oidc.par import take_pushed_request
from sanscouture.settings import SettingsError
from sanscouture.settings import parse_clients
from sanscouture.web import Request
from sanscouture.web import Response
from tests.unit.oidc.fakes import CHALLENGE
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import FakeClock
from tests.unit.oidc.fakes import FakeTables
from tests.unit.oidc.fakes import make_settings
from tests.unit.oidc.fakes import sha256_secret
from tests.unit.oidc.fakes import shared_key_source
from tests.unit.test_journey import AllTables
from tests.unit.test_journey import FakeEntra
from tests.unit.test_journey import FakePsc

REDIRECT = "https://rp.example.fr/callback"
JWT_KEY = generate_private_jwk()
RP_BASIC = Client("rp-basic", (REDIRECT,), "client_secret_basic", sha256_secret("basic-secret"))
RP_POST = Client("rp-post", (REDIRECT,), "client_secret_post", sha256_secret("post-secret"))
RP_JWT = Client("rp-jwt", (REDIRECT,), "private_key_jwt", jwks={"keys": [public_jwk(JWT_KEY)]})
RP_PAR = Client("rp-par", (REDIRECT,), "client_secret_basic", sha256_secret("par-secret"),
                require_pushed_authorization_requests=True)
FORM = "application/x-www-form-urlencoded"
AUTHORIZATION = {
    "client_id": "rp-basic", "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid scope_all",
    "state": "st-1", "nonce": "n-1", "code_challenge": CHALLENGE, "code_challenge_method": "S256",
}


class World:
    def __init__(self, failed_client_auth: RateLimiter | None = None) -> None:
        self.clock = FakeClock()
        self.tables = FakeTables(self.clock)
        self.endpoint = ParEndpoint(
            settings=make_settings(RP_BASIC, RP_POST, RP_JWT, RP_PAR), tables=self.tables,
            client_jwks=lambda uri, refresh=False: {"keys": []}, clock=self.clock,
            failed_client_auth=failed_client_auth,
        )

    def push(self, request: Request) -> str:
        """A successful push: its request_uri."""
        response = handle_par_request(request, self.endpoint)
        assert response.status == 201, response.body
        return str(json.loads(response.body)["request_uri"])

    def rows(self) -> dict[tuple[str, str], Any]:
        return self.tables["par"].rows


@pytest.fixture
def world() -> World:
    return World()


def basic(client_id: str = "rp-basic", secret: str = "basic-secret") -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def par_request(form: Mapping[str, str], *, authorization: str | None = None, method: str = "POST",
                content_type: str = FORM, repeated: frozenset[str] = frozenset()) -> Request:
    headers = {"content-type": content_type}
    if authorization:
        headers["authorization"] = authorization
    return Request(method, f"{ISSUER}/par", headers=headers, form=dict(form), repeated=repeated)


def pushed(**overrides: str | None) -> Request:
    """rp-basic pushing AUTHORIZATION with ``overrides`` (None removes a parameter)."""
    form: dict[str, str | None] = {**AUTHORIZATION, **overrides}
    return par_request({k: v for k, v in form.items() if v is not None}, authorization=basic())


def refused(world: World, request: Request, error: str, description: str) -> OAuthError:
    with pytest.raises(OAuthError) as raised:
        push(request, world.endpoint)
    assert (raised.value.error, raised.value.description) == (error, description)
    assert world.rows() == {}  # nothing is kept from a refused push
    return raised.value


def assertion(aud: Any, jti: str = "jti-1") -> str:
    claims = {"iss": "rp-jwt", "sub": "rp-jwt", "aud": aud, "exp": int(NOW) + 60, "iat": int(NOW), "jti": jti}
    return jwt.encode(claims, jwt.PyJWK(JWT_KEY).key, algorithm="RS256", headers={"kid": JWT_KEY["kid"]})


def jwt_pushed(aud: Any) -> Request:
    form = {**AUTHORIZATION, "client_id": "rp-jwt", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(aud)}
    return par_request(form)


# -- POST /par: the answer ----------------------------------------------------------------------------


def test_a_pushed_request_gets_a_single_use_request_uri_for_60_seconds(world: World) -> None:
    response = handle_par_request(pushed(), world.endpoint)
    assert response.status == 201
    assert response.header("Cache-Control") == "no-store"
    body = json.loads(response.body)
    assert sorted(body) == ["expires_in", "request_uri"] and body["expires_in"] == PAR_LIFETIME == 60
    reference = body["request_uri"].removeprefix(REQUEST_URI_PREFIX)
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and len(reference) == 43
    (partition, row), stored = next(iter(world.rows().items()))
    assert (partition, row) == (hashlib.sha256(reference.encode()).hexdigest(), PAR_ROW)
    assert reference not in json.dumps(stored.data)  # the table never holds a usable request_uri
    assert stored.expires_at == NOW + 60
    assert dict(stored.data) == {"client_id": "rp-basic", "params": AUTHORIZATION}


def test_two_pushes_get_two_request_uris(world: World) -> None:
    assert world.push(pushed()) != world.push(pushed())


def test_only_the_parameters_authorize_reads_are_kept(world: World) -> None:
    form = {**AUTHORIZATION, "client_id": "rp-post", "client_secret": "post-secret", "ui_locales": "fr",
            "login_hint": "cpx", "id_token_hint": "eyJ.eyJ.c2ln", "max_age": "0", "prompt": "login"}
    world.push(par_request(form))
    stored = next(iter(world.rows().values())).data["params"]
    assert "client_secret" not in stored and "ui_locales" not in stored
    assert stored == {**AUTHORIZATION, "client_id": "rp-post", "login_hint": "cpx", "id_token_hint": "eyJ.eyJ.c2ln",
                      "max_age": "0", "prompt": "login"}


# -- POST /par: the request's shape ------------------------------------------------------------------


def test_a_get_is_405_with_allow_post(world: World) -> None:
    error = refused(world, Request("GET", f"{ISSUER}/par"), "invalid_request",
                    "the pushed authorization request endpoint only accepts POST")
    assert isinstance(error, MethodNotAllowedError)
    response = par_error_response(error)
    assert (response.status, response.header("Allow"), response.header("Cache-Control")) == (405, "POST", "no-store")


def test_a_body_that_is_not_form_encoded_is_invalid_request(world: World) -> None:
    request = par_request(AUTHORIZATION, authorization=basic(), content_type="application/json")
    refused(world, request, "invalid_request", "the body must be application/x-www-form-urlencoded")


def test_a_repeated_parameter_is_invalid_request(world: World) -> None:
    request = par_request(AUTHORIZATION, authorization=basic(), repeated=frozenset({"scope"}))
    refused(world, request, "invalid_request", "repeated parameter: scope")


# -- POST /par: client authentication, as at /token ---------------------------------------------------


def test_a_wrong_secret_is_invalid_client_401_with_the_basic_challenge(world: World) -> None:
    request = par_request(AUTHORIZATION, authorization=basic("rp-basic", "wrong"))
    error = refused(world, request, "invalid_client", "client authentication failed")
    response = par_error_response(error)
    assert (response.status, response.header("WWW-Authenticate")) == (401, 'Basic realm="sans-couture"')


def test_no_client_authentication_is_invalid_client(world: World) -> None:
    refused(world, par_request(AUTHORIZATION), "invalid_client", "client authentication is required")


def test_the_method_the_client_registered_is_required(world: World) -> None:
    form = {**AUTHORIZATION, "client_id": "rp-basic", "client_secret": "basic-secret"}
    refused(world, par_request(form), "invalid_client", "this client must authenticate with client_secret_basic")


def test_failed_authentications_count_against_the_source_as_at_token() -> None:
    limited = World(failed_client_auth=RateLimiter(2, clock=FakeClock()))
    for _ in range(2):
        with pytest.raises(InvalidClientError):
            push(par_request(AUTHORIZATION, authorization=basic("rp-basic", "wrong")), limited.endpoint)
    with pytest.raises(SlowDownError) as raised:
        push(pushed(), limited.endpoint)  # even the right secret waits
    response = par_error_response(raised.value)
    assert (response.status, json.loads(response.body)["error"]) == (429, "slow_down")
    assert response.header("Retry-After") is not None


@pytest.mark.parametrize("aud", [ISSUER, f"{ISSUER}/token", f"{ISSUER}/par"])
def test_a_private_key_jwt_assertion_may_name_the_issuer_the_token_or_the_par_endpoint(world: World, aud: str) -> None:
    """RFC 9126 2: the server "MUST accept its issuer identifier, token endpoint URL, or pushed
    authorization request endpoint URL"."""
    assert world.push(jwt_pushed(aud)).startswith(REQUEST_URI_PREFIX)


@pytest.mark.parametrize("aud", [[f"{ISSUER}/par"], [ISSUER, f"{ISSUER}/par"]])
def test_an_assertion_audience_is_still_one_string(world: World, aud: list[str]) -> None:
    """OpenID Foundation 2025 advisory on audience injection: an array is refused, even one naming us."""
    refused(world, jwt_pushed(aud), "invalid_client", "client_assertion aud must be a single string: "
            "the issuer, the token endpoint URL or the PAR endpoint URL")


@pytest.mark.parametrize("aud", ["https://elsewhere.example/par", f"{ISSUER}/authorize"])
def test_an_assertion_naming_another_server_or_endpoint_is_refused(world: World, aud: str) -> None:
    refused(world, jwt_pushed(aud), "invalid_client",
            "client_assertion aud must be the issuer, the token endpoint URL or the PAR endpoint URL")


def test_the_par_endpoint_url_is_not_an_audience_of_the_token_endpoint(world: World) -> None:
    """At /token the accepted audiences stay the issuer and the token endpoint URL (RFC 7523 3)."""
    request = par_request({"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion(f"{ISSUER}/par")})
    with pytest.raises(InvalidClientError) as raised:
        authenticate_client(request, world.endpoint.settings, world.tables["jti"], world.endpoint.client_jwks,
                            world.clock)
    assert raised.value.description == "client_assertion aud must be the issuer or the token endpoint URL"


# -- POST /par: the authorization request -------------------------------------------------------------


def test_client_id_is_required(world: World) -> None:
    refused(world, pushed(client_id=None), "invalid_request", "client_id is required")


def test_client_id_must_name_the_authenticated_client(world: World) -> None:
    refused(world, pushed(client_id="rp-post"), "invalid_request",
            "client_id in the body does not match the authenticated client")


def test_a_request_uri_must_not_be_pushed(world: World) -> None:
    refused(world, pushed(request_uri=REQUEST_URI_PREFIX + "x"), "invalid_request", "request_uri must not be pushed")


def test_a_request_object_is_not_supported(world: World) -> None:
    refused(world, pushed(request="eyJ.eyJ.sig"), "request_not_supported", "request objects are not supported")


@pytest.mark.parametrize(
    ("overrides", "error", "description"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request",
         "redirect_uri did not match any of the client's registered redirect_uris"),
        ({"redirect_uri": None}, "invalid_request",
         "redirect_uri did not match any of the client's registered redirect_uris"),
        ({"response_type": "token"}, "unsupported_response_type", "only response_type=code is supported"),
        ({"scope": "profile"}, "invalid_scope", "the openid scope is required"),
        ({"code_challenge": None}, "invalid_request", "code_challenge is required (PKCE S256)"),
        ({"code_challenge_method": "plain"}, "invalid_request", "code_challenge_method must be S256"),
        ({"prompt": "none login"}, "invalid_request", "prompt=none cannot be combined with other values"),
        ({"max_age": "-1"}, "invalid_request", "max_age must be a non-negative integer"),
        ({"state": "s" * 2049}, "invalid_request", "state is too long"),
    ],
)
def test_the_pushed_request_is_validated_as_authorize_would(
    world: World, overrides: dict[str, str | None], error: str, description: str
) -> None:
    """RFC 9126 2.3: the errors of the authorization endpoint, as JSON (a bad redirect_uri: invalid_request)."""
    raised = refused(world, pushed(**overrides), error, description)
    assert par_error_response(raised).status == 400


# -- /authorize: the pushed request taken back --------------------------------------------------------


def authorize_request(query: Mapping[str, str], repeated: frozenset[str] = frozenset()) -> Request:
    return Request("GET", f"{ISSUER}/authorize", query=dict(query), repeated=repeated)


def test_a_plain_authorization_request_is_its_own_parameters_and_touches_no_table(world: World) -> None:
    found = authorization_parameters(authorize_request(AUTHORIZATION), world.tables["par"])
    assert (found.params, found.pushed) == (AUTHORIZATION, False)
    assert world.tables["par"].calls == []


def test_a_request_uri_stands_for_the_pushed_parameters_only(world: World) -> None:
    """RFC 9126 4: parameters of the authorization request other than client_id and request_uri are ignored."""
    request_uri = world.push(pushed())
    query = {"client_id": "rp-basic", "request_uri": request_uri, "redirect_uri": "https://evil.example/cb",
             "scope": "openid email", "state": "forged"}
    found = authorization_parameters(authorize_request(query), world.tables["par"])
    assert (found.params, found.repeated, found.pushed) == (AUTHORIZATION, frozenset(), True)
    assert world.rows() == {}  # consumed


def take(world: World, request_uri: str, client_id: str = "rp-basic") -> dict[str, str]:
    return take_pushed_request(world.tables["par"], {"client_id": client_id, "request_uri": request_uri}, ())


def test_a_request_uri_is_used_once(world: World) -> None:
    request_uri = world.push(pushed())
    assert take(world, request_uri) == AUTHORIZATION
    with pytest.raises(InvalidRequestUriError) as raised:
        take(world, request_uri)
    assert (raised.value.error, raised.value.description) == (
        "invalid_request_uri", "the request_uri is unknown, expired or was already used")


def test_an_expired_request_uri_is_invalid(world: World) -> None:
    request_uri = world.push(pushed())
    world.clock.now += 60
    with pytest.raises(InvalidRequestUriError):
        take(world, request_uri)


def test_a_request_uri_is_still_good_just_before_60_seconds(world: World) -> None:
    request_uri = world.push(pushed())
    world.clock.now += 59
    assert take(world, request_uri) == AUTHORIZATION


def test_an_unknown_request_uri_is_invalid(world: World) -> None:
    with pytest.raises(InvalidRequestUriError):
        take(world, REQUEST_URI_PREFIX + "never-issued/\\#?")  # any characters: the key is a hash


def test_another_clients_request_uri_is_invalid_and_burnt(world: World) -> None:
    """RFC 9126 2.2: "The request_uri value MUST be bound to the client that posted the authorization request"."""
    request_uri = world.push(pushed())
    with pytest.raises(InvalidRequestUriError):
        take(world, request_uri, client_id="rp-post")
    with pytest.raises(InvalidRequestUriError):
        take(world, request_uri)


def test_client_id_is_required_with_a_request_uri(world: World) -> None:
    request_uri = world.push(pushed())
    with pytest.raises(InvalidRequestError) as raised:
        take_pushed_request(world.tables["par"], {"request_uri": request_uri}, ())
    assert raised.value.description == "client_id is required with request_uri"
    assert take(world, request_uri) == AUTHORIZATION  # not burnt by a request that names no client


@pytest.mark.parametrize("name", ["request_uri", "client_id"])
def test_a_repeated_request_uri_or_client_id_is_invalid_request(world: World, name: str) -> None:
    request_uri = world.push(pushed())
    with pytest.raises(InvalidRequestError) as raised:
        take_pushed_request(world.tables["par"], {"client_id": "rp-basic", "request_uri": request_uri}, {name})
    assert raised.value.description == f"{name} is included more than once"


# -- clients that must use PAR ------------------------------------------------------------------------


def test_a_client_that_requires_par_must_send_a_pushed_request() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_pushed_when_required(RP_PAR, pushed=False)
    assert raised.value.description == "this client must use pushed authorization requests (PAR)"
    check_pushed_when_required(RP_PAR, pushed=True)
    check_pushed_when_required(RP_BASIC, pushed=False)


def test_discovery_requires_par_only_when_every_client_does() -> None:
    assert par_required_of_every_client([RP_PAR]) is True
    assert par_required_of_every_client([RP_PAR, RP_BASIC]) is False
    assert par_required_of_every_client([]) is False


def test_the_registration_flag_is_parsed_and_must_be_a_boolean() -> None:
    base = {"client_id": "sn", "client_secret": "s", "redirect_uris": [REDIRECT]}
    (default,) = parse_clients(json.dumps([base]), "BROKER_CLIENTS")
    (required,) = parse_clients(json.dumps([{**base, "require_pushed_authorization_requests": True}]), "X")
    assert (default.require_pushed_authorization_requests, required.require_pushed_authorization_requests) == (
        False, True)
    with pytest.raises(SettingsError) as raised:
        parse_clients(json.dumps([{**base, "require_pushed_authorization_requests": "yes"}]), "BROKER_CLIENTS")
    assert "require_pushed_authorization_requests must be true or false" in str(raised.value)


def test_the_par_table_is_swept_like_every_transient_table() -> None:
    assert "par" in TRANSIENT_TABLES


# -- /authorize (the journey's entry) with PAR --------------------------------------------------------


class Browser:
    """journey.authorize on fakes, with the PAR endpoint over the same tables."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.tables = AllTables(self.clock)
        self.entra = FakeEntra(self.clock)
        settings = make_settings(RP_BASIC, RP_PAR)
        self.broker = journey.Broker(settings, self.tables, self.entra, FakePsc(self.clock),
                                     keys=KeyRing(shared_key_source(), clock=self.clock), clock=self.clock)
        self.par = ParEndpoint(settings, self.tables, lambda uri, refresh=False: {"keys": []}, self.clock)

    def push(self, client_id: str, secret: str, **overrides: str) -> str:
        form = {**AUTHORIZATION, "client_id": client_id, **overrides}
        response = handle_par_request(par_request(form, authorization=basic(client_id, secret)), self.par)
        return str(json.loads(response.body)["request_uri"])

    def authorize(self, query: Mapping[str, str]) -> Response:
        return journey.authorize(self.broker, authorize_request(query))


def redirect_params(response: Response) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(response.header("Location") or "").query).items()}


def test_authorize_with_a_request_uri_starts_the_pushed_sign_in() -> None:
    browser = Browser()
    request_uri = browser.push("rp-par", "par-secret", login_hint="cpx")
    response = browser.authorize({"client_id": "rp-par", "request_uri": request_uri})
    assert response.status == 302 and (response.header("Location") or "").startswith("https://entra.test/")
    assert browser.entra.begun[-1]["login_hint"] == "cpx"  # the pushed login_hint reached Entra ID


def test_authorize_with_a_used_request_uri_shows_a_page_and_redirects_nowhere() -> None:
    browser = Browser()
    request_uri = browser.push("rp-par", "par-secret")
    browser.authorize({"client_id": "rp-par", "request_uri": request_uri})
    again = browser.authorize({"client_id": "rp-par", "request_uri": request_uri, "redirect_uri": REDIRECT})
    assert again.status == 400 and again.header("Location") is None
    assert "Demande de connexion expirée" in again.body.decode()


def test_a_client_that_requires_par_gets_invalid_request_at_its_redirect_uri() -> None:
    response = Browser().authorize({**AUTHORIZATION, "client_id": "rp-par"})
    assert response.status == 302 and (response.header("Location") or "").startswith(REDIRECT)
    assert redirect_params(response) == {
        "error": "invalid_request", "error_description": "this client must use pushed authorization requests (PAR)",
        "state": "st-1", "iss": ISSUER,
    }


def test_an_error_of_the_pushed_request_goes_to_its_redirect_uri_with_its_state() -> None:
    """prompt=none pushed, no broker session: login_required, at the pushed redirect_uri with the pushed
    state (the query's state is ignored)."""
    browser = Browser()
    request_uri = browser.push("rp-basic", "basic-secret", prompt="none", state="pushed-state")
    response = browser.authorize({"client_id": "rp-basic", "request_uri": request_uri, "state": "forged"})
    assert redirect_params(response)["error"] == "login_required"
    assert redirect_params(response)["state"] == "pushed-state"


def test_each_unusable_request_uri_logs_why(world: World) -> None:
    with pytest.raises(InvalidRequestUriError) as unknown:
        take(world, REQUEST_URI_PREFIX + "never-issued")
    assert unknown.value.detail == "unknown, expired or already used request_uri"
    request_uri = world.push(pushed())
    with pytest.raises(InvalidRequestUriError) as other:
        take(world, request_uri, client_id="c" * 100)
    assert other.value.detail == f"request_uri pushed by 'rp-basic', used by {'c' * 64!r}"
    broken = world.push(pushed())
    row_key = hashlib.sha256(broken.removeprefix(REQUEST_URI_PREFIX).encode()).hexdigest()
    row = world.tables["par"].find(row_key, PAR_ROW)
    assert row is not None
    world.tables["par"].save(row_key, PAR_ROW, {**row.data, "params": "not a dict"}, expires_in=60)
    with pytest.raises(InvalidRequestUriError) as malformed:
        take(world, broken)
    assert malformed.value.detail == "malformed pushed request row"


def test_a_client_with_a_jwks_uri_authenticates_at_par_through_the_endpoint_fetcher() -> None:
    rp_uri = Client("rp-uri", (REDIRECT,), "private_key_jwt", jwks_uri="https://rp-uri.example.fr/jwks")
    clock = FakeClock()
    endpoint = ParEndpoint(
        settings=make_settings(rp_uri), tables=FakeTables(clock), clock=clock,
        client_jwks=lambda uri, refresh=False: {"keys": [public_jwk(JWT_KEY)]} if uri == rp_uri.jwks_uri else {},
    )
    claims = {"iss": "rp-uri", "sub": "rp-uri", "aud": ISSUER, "exp": int(NOW) + 60, "iat": int(NOW), "jti": "u-1"}
    token = jwt.encode(claims, jwt.PyJWK(JWT_KEY).key, algorithm="RS256", headers={"kid": JWT_KEY["kid"]})
    form = {**AUTHORIZATION, "client_id": "rp-uri", "client_assertion_type": ASSERTION_TYPE, "client_assertion": token}
    assert push(par_request(form), endpoint).request_uri.startswith(REQUEST_URI_PREFIX)
