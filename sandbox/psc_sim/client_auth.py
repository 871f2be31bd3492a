"""Client authentication at the PSC token endpoint, as Keycloak's client authenticators do it.

A registration has one method (Keycloak's ``clientAuthenticatorType``); Keycloak runs its
authenticators in turn and keeps only the result of the client's own one
(``ClientAuthenticationFlow.processFlow``), so any other method fails with that authenticator's
error. Sources, keycloak/keycloak ``services/.../authentication/authenticators/client/``:

- ``client_secret_basic`` ("client-secret", ``ClientIdAndSecretAuthenticator``): the secret in HTTP
  Basic or, as Keycloak also takes it, in the form. No client id at all: 400 ``invalid_client``
  "Missing client_id parameter"; a wrong or missing secret: 401 ``invalid_client`` "Invalid client
  or Invalid client credentials".
- ``private_key_jwt`` ("client-jwt", ``JWTClientAuthenticator`` + ``AbstractJWTClientValidator`` +
  ``AbstractBaseJWTValidator`` + ``JWTClientValidator``): an RFC 7523 assertion signed with a key of
  the client's JWKS URL; every failure is 400 ``invalid_client`` with the validator's description;
  15 s clock skew, at most 60 s of validity (``token.endpoint.auth.signing.max.exp`` default), a
  single audience among the realm's issuer and endpoint URLs, a single-use ``jti``.
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Protocol
from urllib.parse import unquote_plus

import jwt
import requests
from jwt.api_jws import PyJWS

from sandbox.psc_sim.errors import ProtocolError

CLIENT_SECRET_BASIC = "client_secret_basic"
PRIVATE_KEY_JWT = "private_key_jwt"
METHODS = (CLIENT_SECRET_BASIC, PRIVATE_KEY_JWT)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
ALLOWED_CLOCK_SKEW = 15  # JWTClientValidator.getAllowedClockSkew
MAX_EXPIRATION = 60  # OIDCAdvancedConfigWrapper.getTokenEndpointAuthSigningMaxExp default
JWKS_MIN_REFETCH_INTERVAL = 10  # Keycloak's public key storage: minTimeBetweenRequests, seconds
BAD_CREDENTIALS = "Invalid client or Invalid client credentials"


class Registration(Protocol):
    """What the token endpoint needs to know of a registered client (``PscClient``)."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> str: ...

    @property
    def token_endpoint_auth_method(self) -> str: ...

    @property
    def jwks_uri(self) -> str | None: ...


@dataclass(frozen=True)
class TokenRequest:
    """The parts of a token request client authentication reads."""

    form: Mapping[str, str]
    authorization: str | None

    def basic(self) -> tuple[str, str] | None:
        """RFC 6749 2.3.1: ``Basic base64(urlencoded id ":" urlencoded secret)``; None if absent or not Basic."""
        scheme, _, value = (self.authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote_plus(user), unquote_plus(password)


def _invalid(description: str, status: int = 400) -> ProtocolError:
    return ProtocolError("invalid_client", description, status)


class ClientJwks:
    """Keycloak's "Use JWKS URL": the client's public keys fetched over HTTPS and cached; a ``kid`` not
    in the cache makes it fetch again, at most every :data:`JWKS_MIN_REFETCH_INTERVAL` seconds."""

    def __init__(self, uri: str, ca_bundle: str | None, clock: Callable[[], float]) -> None:
        self._uri, self._ca_bundle, self._clock = uri, ca_bundle, clock
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] | None = None
        self._fetched_at = float("-inf")

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        with self._lock:
            if self._keys is None or (kid not in self._keys and self._may_refetch()):
                self._fetch()
            jwk = (self._keys or {}).get(kid or "")
        try:
            return jwt.PyJWK(jwk) if jwk is not None else None
        except jwt.PyJWKError:
            return None

    def _may_refetch(self) -> bool:
        return self._clock() - self._fetched_at >= JWKS_MIN_REFETCH_INTERVAL

    def _fetch(self) -> None:
        self._fetched_at = self._clock()
        try:
            response = requests.get(self._uri, timeout=10, verify=self._ca_bundle or True)
            document = response.json() if response.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            document = {}
        keys = document.get("keys", []) if isinstance(document, dict) else []
        self._keys = {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}


class ClientAuthenticator:
    """Authenticates the client of a token request with its registered method (thread-safe)."""

    def __init__(
        self,
        clients: Mapping[str, Registration],
        *,
        audiences: tuple[str, ...],
        ca_bundle: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._clients = clients
        self._audiences = audiences
        self._clock = clock
        self._jwks = {
            c.client_id: ClientJwks(c.jwks_uri, ca_bundle, clock)
            for c in clients.values() if c.token_endpoint_auth_method == PRIVATE_KEY_JWT and c.jwks_uri
        }
        self._lock = threading.Lock()
        self._used_jti: dict[str, float] = {}

    def authenticate(self, request: TokenRequest) -> Registration:
        """ClientAuthenticationFlow: the client-secret authenticator first (a client named by Basic or
        ``client_id``), then client-jwt (the client an assertion names); a client is authenticated
        only by the authenticator of its own method."""
        basic = request.basic()
        named_id = (basic[0] if basic else None) or request.form.get("client_id")
        named = self._clients.get(named_id) if named_id else None
        if named is not None and named.token_endpoint_auth_method == CLIENT_SECRET_BASIC:
            _check_secret(named, basic, request.form)
            return named
        if named is None and "client_assertion" not in request.form and "client_assertion_type" not in request.form:
            raise _invalid(BAD_CREDENTIALS, 401) if named_id else _invalid("Missing client_id parameter")
        return self._authenticate_assertion(request.form, named_id)

    # -- private_key_jwt, in the order of Keycloak's validator ---------------------------------

    def _authenticate_assertion(self, form: Mapping[str, str], named_id: str | None) -> Registration:
        assertion = _assertion_parameters(form)
        header, claims = _unverified(assertion)
        _check_subject(claims, form)
        client = self._clients.get(claims["sub"])
        if client is None or client.token_endpoint_auth_method != PRIVATE_KEY_JWT:
            # Not a client-jwt client: Keycloak ignores the assertion and answers with the
            # client-secret authenticator's challenge, or with its final "client not found".
            raise _invalid(BAD_CREDENTIALS, 401) if named_id else _invalid("Missing client_id parameter")
        if header.get("alg") not in ASYMMETRIC_ALGORITHMS:
            raise _invalid("Invalid signature algorithm")
        self._check_signature(client, assertion, header)
        self._check_audience(claims)
        self._check_active(claims)
        self._check_single_use(claims)
        return client

    def _check_signature(self, client: Registration, assertion: str, header: Mapping[str, Any]) -> None:
        jwks = self._jwks.get(client.client_id)
        key = jwks.key(header.get("kid")) if jwks is not None else None
        if key is None:
            raise _invalid("Unable to load public key")
        try:
            PyJWS().decode(assertion, key.key, algorithms=[str(header["alg"])])
        except jwt.InvalidTokenError:
            raise _invalid(
                "Client authentication with signed JWT failed: Signature on JWT token failed validation"
            ) from None

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(value in self._audiences for value in audiences):
            raise _invalid("Invalid token audience")
        if len(audiences) > 1:  # OIDCProviderConfig allowMultipleAudiencesForJwtClientAuthentication: off
            raise _invalid("Multiple audiences not allowed")

    def _check_active(self, claims: Mapping[str, Any]) -> None:
        now = int(self._clock())
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not isinstance(exp, int):
            raise _invalid("Token exp claim is required")
        if now > exp + ALLOWED_CLOCK_SKEW or (isinstance(nbf, int) and nbf > now + ALLOWED_CLOCK_SKEW):
            raise _invalid("Token is not active")
        if not isinstance(iat, int):
            if exp - now > MAX_EXPIRATION:
                raise _invalid("Token expiration is too far in the future and iat claim not present in token")
            return
        if iat - ALLOWED_CLOCK_SKEW > now:
            raise _invalid("Token was issued in the future")
        if min(exp - now, MAX_EXPIRATION) <= 0:
            raise _invalid("Token is not active")
        if now > iat + MAX_EXPIRATION:
            raise _invalid("Token was issued too far in the past to be used now")

    def _check_single_use(self, claims: Mapping[str, Any]) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise _invalid("Token jti claim is required")
        now = self._clock()
        with self._lock:
            self._used_jti = {k: until for k, until in self._used_jti.items() if until > now}
            if jti in self._used_jti:
                raise _invalid("Token reuse detected")
            self._used_jti[jti] = now + MAX_EXPIRATION + ALLOWED_CLOCK_SKEW


def _check_secret(client: Registration, basic: tuple[str, str] | None, form: Mapping[str, str]) -> None:
    """ClientIdAndSecretAuthenticator: the secret from Basic or, as Keycloak also takes it, the form."""
    secret = basic[1] if basic else form.get("client_secret")
    if secret is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
        raise _invalid(BAD_CREDENTIALS, 401)


def _assertion_parameters(form: Mapping[str, str]) -> str:
    assertion_type = form.get("client_assertion_type")
    if assertion_type is None:
        raise _invalid("Parameter client_assertion_type is missing")
    if assertion_type != ASSERTION_TYPE:
        raise _invalid(
            f"Parameter client_assertion_type has value '{assertion_type}' but expected is '{ASSERTION_TYPE}'"
        )
    assertion = form.get("client_assertion")
    if assertion is None:
        raise _invalid("client_assertion parameter missing")
    return assertion


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise _invalid("Client authentication with signed JWT failed: Failed to parse JWT") from None
    return header, claims


def _check_subject(claims: Mapping[str, Any], form: Mapping[str, str]) -> None:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("Token sub claim is required")
    if form.get("client_id") is not None and form["client_id"] != subject:
        raise _invalid("client_id parameter does not match sub claim")
    if claims.get("iss") != subject:
        raise _invalid(
            "Client authentication with signed JWT failed: Issuer mismatch. The issuer should match the subject"
        )
