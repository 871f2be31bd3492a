"""Client authentication at the token endpoint (RFC 6749 2.3, OIDC Core 9, RFC 7523 2.2 and 3).

Three methods, one function each, and a dispatcher. The client must use exactly one method, and
the one it registered (``token_endpoint_auth_method``). Unknown client, wrong secret and bad
signature share one public description, so that the answer does not tell which client ids exist;
the logged ``detail`` says which it was. The pushed authorization request endpoint authenticates
clients "using the same rules as for token endpoint requests" (RFC 9126 2.1) with this module too,
with its own set of accepted assertion audiences (:func:`par_audience`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import math
import re
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol
from urllib.parse import unquote_plus

import jwt

from sanscouture.errors import InvalidClientError
from sanscouture.errors import InvalidRequestError
from sanscouture.limits import RateLimiter
from sanscouture.limits import SlowDownError
from sanscouture.limits import source_of
from sanscouture.models import Client
from sanscouture.ports import Clock
from sanscouture.ports import RowStore
from sanscouture.settings import Settings
from sanscouture.web import Request

BASIC = "client_secret_basic"
POST = "client_secret_post"
PRIVATE_KEY_JWT = "private_key_jwt"

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Asymmetric algorithms only: never "none", never HS* (RFC 8725 3.1, OIDC Core 9).
ASSERTION_ALGS = ("RS256", "PS256", "ES256")
# Seconds between now and exp (docs/rp-integration.md). Authlib signs for 1 h by default and MSAL for
# 10 min: their clients pass a shorter lifetime (the guide shows how).
MAX_ASSERTION_LIFETIME = 300
ASSERTION_LEEWAY = 30  # clock skew tolerated on exp and nbf

FAILED = "client authentication failed"

_KTY_OF_ALG = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC"}
# Azure Table keys may not contain / \ # ? nor control characters, and are at most 1 KiB.
_TABLE_KEY = re.compile(r"^[^/\\#?\x00-\x1f\x7f-\x9f]{1,255}$")


class JwksFetcher(Protocol):
    """Fetches a client's JWK Set from its ``jwks_uri``; ``refresh`` asks to bypass the cache."""

    def __call__(self, jwks_uri: str, *, refresh: bool = False) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Audience:
    """The values a client assertion's ``aud`` may take at one endpoint, each alone (one string),
    and how the error says so."""

    values: tuple[str, ...]
    wording: str


def token_audience(issuer: str) -> Audience:
    """At ``/token``: the issuer or the token endpoint URL (RFC 7523 3, see check_assertion_audience)."""
    return Audience((issuer, f"{issuer}/token"), "the issuer or the token endpoint URL")


def par_audience(issuer: str) -> Audience:
    """At ``/par``: RFC 9126 2 "MUST accept its issuer identifier, token endpoint URL, or pushed
    authorization request endpoint URL" as the audience.

    The OpenID Foundation's 2025 advisory on audience injection is about a value that names another
    server (or an array that lists one): the PAR endpoint URL is this server's alone, so accepting it,
    still as one string, keeps that protection. Authlib's ``PrivateKeyJWT()`` without an endpoint
    signs for the URL it posts to, i.e. the PAR endpoint URL here.
    """
    return Audience(
        (issuer, f"{issuer}/token", f"{issuer}/par"),
        "the issuer, the token endpoint URL or the PAR endpoint URL",
    )


def authenticate_client(
    request: Request,
    settings: Settings,
    jti_store: RowStore,
    client_jwks: JwksFetcher,
    clock: Clock = time.time,
    *,
    audience: Audience | None = None,
) -> Client:
    """Authenticate the client of a token (or pushed authorization) request with the one method it
    presented; ``audience``: what an assertion may name (the token endpoint's by default)."""
    method = check_single_method(presented_methods(request))
    if method == BASIC:
        return authenticate_basic(request, settings)
    if method == POST:
        return authenticate_post(request, settings)
    return authenticate_private_key_jwt(
        request, settings, jti_store, client_jwks, clock, audience=audience or token_audience(settings.issuer)
    )


def authenticate_client_counting_failures(
    request: Request,
    settings: Settings,
    jti_store: RowStore,
    client_jwks: JwksFetcher,
    clock: Clock,
    failures: RateLimiter | None,
    *,
    audience: Audience | None = None,
) -> Client:
    """:func:`authenticate_client`, once the source has failed fewer than its limit a minute (a secret
    is not guessed at network speed); each failure counts (sanscouture/limits.py). ``/token`` and
    ``/par`` share the worker's limiter: failures at either count against the source."""
    source = source_of(request)
    if failures is not None:
        failures.check(source)
    try:
        return authenticate_client(request, settings, jti_store, client_jwks, clock, audience=audience)
    except InvalidClientError:
        if failures is not None:
            with contextlib.suppress(SlowDownError):  # this failure is answered as what it is
                failures.spend(source)
        raise


def presented_methods(request: Request) -> list[str]:
    """The client authentication methods the request carries (RFC 6749 2.3: at most one)."""
    methods = []
    if _basic_credentials(request) is not None:
        methods.append(BASIC)
    if "client_secret" in request.form:
        methods.append(POST)
    if "client_assertion" in request.form or "client_assertion_type" in request.form:
        methods.append(PRIVATE_KEY_JWT)
    return methods


def check_single_method(methods: Sequence[str]) -> str:
    """RFC 6749 2.3: "The client MUST NOT use more than one authentication method in each request"."""
    if len(methods) > 1:
        raise InvalidRequestError("use exactly one client authentication method", detail=", ".join(methods))
    if not methods:
        raise InvalidClientError("client authentication is required")
    return methods[0]


# -- client_secret_basic / client_secret_post -------------------------------------------------


def authenticate_basic(request: Request, settings: Settings) -> Client:
    """RFC 6749 2.3.1: HTTP Basic with the form-urlencoded client id and secret."""
    client_id, secret = read_basic(request.header("authorization") or "")
    check_body_client_id(request.form, client_id)
    client = find_client(settings, client_id)
    check_registered_method(client, BASIC)
    check_secret(client, secret)
    return client


def authenticate_post(request: Request, settings: Settings) -> Client:
    """RFC 6749 2.3.1: ``client_id`` and ``client_secret`` in the form body."""
    client_id = request.form.get("client_id", "")
    if not client_id:
        raise InvalidRequestError("client_id is required with client_secret")
    client = find_client(settings, client_id)
    check_registered_method(client, POST)
    check_secret(client, request.form.get("client_secret", ""))
    return client


def read_basic(header: str) -> tuple[str, str]:
    """RFC 7617 2 and RFC 6749 2.3.1: decode ``Basic base64(urlencode(id) ":" urlencode(secret))``."""
    encoded = _basic_credentials_of(header)
    if encoded is None:
        raise InvalidClientError("the Authorization header is not HTTP Basic")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text (b64decode's own ValueError)
        raise InvalidClientError("malformed HTTP Basic credentials") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator or not client_id:
        raise InvalidClientError("malformed HTTP Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def check_body_client_id(form: Mapping[str, str], client_id: str) -> None:
    """A ``client_id`` repeated in the body must name the client that authenticated."""
    if "client_id" in form and form["client_id"] != client_id:
        raise InvalidRequestError("client_id in the body does not match the authenticated client")


def check_secret(client: Client, presented: str) -> None:
    """Compare in constant time with the registered secret or its ``sha256:<hex>`` form."""
    registered = client.client_secret or ""
    if registered.startswith("sha256:"):
        expected = registered.removeprefix("sha256:").encode("ascii")
        actual = hashlib.sha256(presented.encode("utf-8")).hexdigest().encode("ascii")
    else:
        expected, actual = registered.encode("utf-8"), presented.encode("utf-8")
    # Both sides are compared even when the registration has no secret, so timing says nothing.
    if not hmac.compare_digest(expected, actual) or not registered:
        raise InvalidClientError(FAILED, detail=f"client {client.client_id}: wrong secret")


# -- shared -------------------------------------------------------------------------------


def find_client(settings: Settings, client_id: str) -> Client:
    """The registered client; InvalidClientError (same description as a wrong secret) if unknown."""
    client = settings.client(client_id)
    if client is None:
        raise InvalidClientError(FAILED, detail=f"unknown client {client_id[:64]!r}")
    return client


def check_registered_method(client: Client, method: str) -> None:
    """OIDC Core 9 / RFC 7591 2: only the client's registered ``token_endpoint_auth_method`` is accepted."""
    if client.token_endpoint_auth_method != method:
        raise InvalidClientError(
            f"this client must authenticate with {client.token_endpoint_auth_method}",
            detail=f"client {client.client_id} used {method}",
        )


# -- private_key_jwt ----------------------------------------------------------------------


def authenticate_private_key_jwt(
    request: Request,
    settings: Settings,
    jti_store: RowStore,
    client_jwks: JwksFetcher,
    clock: Clock = time.time,
    *,
    audience: Audience | None = None,
) -> Client:
    """RFC 7523 2.2 and 3, OIDC Core 9: a JWT signed with a key of the client, used once."""
    check_assertion_type(request.form)
    assertion = request.form.get("client_assertion", "")
    client_id = assertion_client_id(assertion)
    check_body_client_id(request.form, client_id)
    client = find_client(settings, client_id)
    check_registered_method(client, PRIVATE_KEY_JWT)
    header = assertion_header(assertion)
    check_assertion_alg(header)
    claims = verify_assertion_signature(assertion, client, header, client_jwks)
    now = clock()
    check_assertion_audience(claims, audience or token_audience(settings.issuer))
    check_assertion_subject(claims, client.client_id)
    check_assertion_not_expired(claims, now)
    check_assertion_lifetime(claims, now)
    check_assertion_not_before(claims, now)
    record_assertion_jti(jti_store, client.client_id, claims, now)
    return client


def check_assertion_type(form: Mapping[str, str]) -> None:
    """RFC 7521 4.2: ``client_assertion_type`` is the JWT bearer URN and ``client_assertion`` is present."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidRequestError(f"client_assertion_type must be {ASSERTION_TYPE}")
    if not form.get("client_assertion"):
        raise InvalidRequestError("client_assertion is required")


def assertion_client_id(assertion: str) -> str:
    """The client the assertion claims to be: its ``sub`` (RFC 7523 3), read before verification."""
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise InvalidClientError("client_assertion is not a valid JWT") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidClientError("client_assertion must have sub = client_id")
    return subject


def assertion_header(assertion: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise InvalidClientError("client_assertion is not a valid JWT") from None


def check_assertion_alg(header: Mapping[str, Any]) -> None:
    """OIDC Core 9, RFC 8725 3.1: asymmetric algorithms only (RS256, PS256, ES256)."""
    if header.get("alg") not in ASSERTION_ALGS:
        raise InvalidClientError(f"client_assertion alg must be one of {', '.join(ASSERTION_ALGS)}")


def verify_assertion_signature(
    assertion: str,
    client: Client,
    header: Mapping[str, Any],
    client_jwks: JwksFetcher,
) -> dict[str, Any]:
    """RFC 7523 3 items 1 and 9: signature by a key of the client, ``iss`` = client_id."""
    keys = candidate_keys(client_key_set(client, client_jwks, refresh=False), header)
    if not keys and client.jwks_uri and not client.jwks:
        # An unknown kid: the client may have rotated its keys since we cached its set.
        keys = candidate_keys(client_key_set(client, client_jwks, refresh=True), header)
    if not keys:
        raise InvalidClientError(FAILED, detail=f"client {client.client_id}: no key matches kid/alg")
    for key in keys:
        try:
            return jwt.decode(
                assertion,
                key,
                algorithms=[str(header["alg"])],
                issuer=client.client_id,
                options={
                    "require": ["iss", "sub", "aud", "exp", "jti"],
                    # The audience and the times are checked by the functions below (the clock is injected).
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidIssuerError:
            raise InvalidClientError("client_assertion iss must be the client_id") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidClientError(f"client_assertion must have {error.claim}") from None
        except jwt.InvalidTokenError as error:
            raise InvalidClientError(FAILED, detail=f"client {client.client_id}: {error}") from None
    raise InvalidClientError(FAILED, detail=f"client {client.client_id}: signature does not verify")


def client_key_set(client: Client, client_jwks: JwksFetcher, *, refresh: bool) -> Mapping[str, Any]:
    """The client's registered ``jwks``, else the JWK Set at its ``jwks_uri`` (RFC 7591 2)."""
    if client.jwks:
        return client.jwks
    if client.jwks_uri:
        return client_jwks(client.jwks_uri, refresh=refresh)
    raise InvalidClientError(FAILED, detail=f"client {client.client_id}: no jwks nor jwks_uri")


def candidate_keys(jwks: Mapping[str, Any], header: Mapping[str, Any]) -> list[Any]:
    """Public keys of the set that fit the header: same ``kid`` if given, key type of ``alg``, use sig."""
    alg = str(header.get("alg"))
    kid = header.get("kid")
    keys = []
    for jwk in jwks.get("keys") or ():
        if not isinstance(jwk, Mapping) or jwk.get("kty") != _KTY_OF_ALG.get(alg):
            continue
        if (kid is not None and jwk.get("kid") != kid) or jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("alg", alg) != alg:
            continue
        try:
            keys.append(jwt.PyJWK(dict(jwk), algorithm=alg).key)
        except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, ValueError, TypeError):
            continue
    return keys


def check_assertion_subject(claims: Mapping[str, Any], client_id: str) -> None:
    """RFC 7523 3 item 2: ``sub`` is the client_id (``iss`` was checked with the signature)."""
    if claims.get("sub") != client_id:
        raise InvalidClientError("client_assertion must have sub = client_id")


def check_assertion_audience(claims: Mapping[str, Any], accepted: Audience) -> None:
    """RFC 7523 3 item 3: ``aud`` identifies this server, as ONE string, never an array.

    The OpenID Foundation's 2025 advisory on audience injection in private_key_jwt asks servers to
    accept their issuer identifier as the single audience, and to refuse arrays (a client fooled
    into listing another server's value could be impersonated there). The token endpoint URL is
    accepted too: it is this server's alone, and certified client libraries (Authlib, MSAL) send
    it by default (RFC 7523 3: "the token endpoint URL ... MAY be used"). At ``/par``, the PAR
    endpoint URL as well (:func:`par_audience`).
    """
    audience = claims.get("aud")
    if not isinstance(audience, str):
        raise InvalidClientError(f"client_assertion aud must be a single string: {accepted.wording}")
    if audience not in accepted.values:
        raise InvalidClientError(f"client_assertion aud must be {accepted.wording}")


def check_assertion_not_expired(claims: Mapping[str, Any], now: float) -> None:
    """RFC 7523 3 item 4: reject an assertion at or after its ``exp``."""
    if _number(claims.get("exp")) + ASSERTION_LEEWAY <= now:
        raise InvalidClientError("client_assertion has expired")


def check_assertion_lifetime(claims: Mapping[str, Any], now: float) -> None:
    """RFC 7523 3 item 4 (MAY reject an exp unreasonably far ahead): at most 5 minutes.

    The bound also bounds how long the ``jti`` replay guard must remember the assertion.
    """
    if _number(claims.get("exp")) > now + MAX_ASSERTION_LIFETIME + ASSERTION_LEEWAY:
        raise InvalidClientError(f"client_assertion exp must be at most {MAX_ASSERTION_LIFETIME} seconds ahead")


def check_assertion_not_before(claims: Mapping[str, Any], now: float) -> None:
    """RFC 7523 3 item 5: an ``nbf``, when present, has passed."""
    if "nbf" in claims and _number(claims.get("nbf")) > now + ASSERTION_LEEWAY:
        raise InvalidClientError("client_assertion is not valid yet (nbf)")


def record_assertion_jti(jti_store: RowStore, client_id: str, claims: Mapping[str, Any], now: float) -> None:
    """RFC 7523 3 item 7, OIDC Core 9: each ``jti`` is accepted once, remembered until ``exp``."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClientError("client_assertion must have a jti")
    expires_in = max(_number(claims.get("exp")) + ASSERTION_LEEWAY - now, 1)
    if not jti_store.insert(table_key(client_id), table_key(jti), {"client_id": client_id}, expires_in=expires_in):
        raise InvalidClientError("client_assertion was already used", detail=f"client {client_id}: jti replay")


def table_key(value: str) -> str:
    """``value`` itself when it is a valid Table key, else its hex SHA-256 (prefixed, so readers can tell)."""
    if _TABLE_KEY.fullmatch(value):
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidClientError("client_assertion exp and nbf must be numbers")
    return float(value)


def _basic_credentials(request: Request) -> str | None:
    return _basic_credentials_of(request.header("authorization") or "")


def _basic_credentials_of(header: str) -> str | None:
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    return credentials.strip()
