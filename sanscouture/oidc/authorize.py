"""Validation of the relying party's authorization request (OIDC Core 3.1.2.1, RFC 6749 4.1.1, RFC 7636).

One function per rule, applied in order by :func:`validate_authorization_request`. The first two
(client, redirect_uri) raise errors that are never redirected: until both are known good, the broker
must not send the browser anywhere (RFC 6749 4.1.2.1). Every later error is redirectable and goes back
to the client with ``state`` and ``iss``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sanscouture.errors import InvalidRedirectUriError
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import InvalidScopeError
from sanscouture.errors import RequestNotSupportedError
from sanscouture.errors import RequestUriNotSupportedError
from sanscouture.errors import UnknownClientError
from sanscouture.errors import UnsupportedResponseTypeError
from sanscouture.models import AuthorizationRequest
from sanscouture.models import Client
from sanscouture.settings import Settings

SUPPORTED_SCOPES = frozenset({"openid", "profile", "email", "scope_all"})
PROMPT_VALUES = frozenset({"none", "login", "consent", "select_account"})
# RFC 7636 4.2: BASE64URL(SHA256(verifier)) is 43 characters, no padding.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_DIGITS = re.compile(r"[0-9]{1,10}")
# Byte limits: state and nonce are echoed back, login_hint travels to Entra inside a URL.
MAX_BYTES = {"state": 2048, "nonce": 512, "login_hint": 256, "id_token_hint": 16384, "acr_values": 256}
_SINGLE_VALUED = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "response_mode", "login_hint", "id_token_hint",
)
# Every parameter the broker reads from an authorization request: what a pushed request keeps (RFC 9126
# 2.1; others are ignored, RFC 6749 3.1).
AUTHORIZATION_PARAMETERS = (*_SINGLE_VALUED, "acr_values", "request", "request_uri")


def check_client(params: Mapping[str, str], settings: Settings) -> Client:
    """RFC 6749 4.1.2.1: an unknown client gets an error page, never a redirect."""
    client_id = params.get("client_id", "")
    client = settings.client(client_id) if client_id else None
    if client is None:
        raise UnknownClientError(
            "client_id is missing or unknown", detail=f"client_id={client_id[:64]!r}"
        )
    return client


def check_redirect_uri(params: Mapping[str, str], client: Client) -> str:
    """OIDC Core 3.1.2.1: redirect_uri is required and must exactly match a registered one."""
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise InvalidRedirectUriError(detail=f"client {client.client_id}: {redirect_uri[:200]!r}")
    return redirect_uri


def check_single_values(repeated: frozenset[str]) -> None:
    """RFC 6749 3.1: request parameters must not be included more than once."""
    duplicated = sorted(repeated.intersection(_SINGLE_VALUED))
    if duplicated:
        raise InvalidRequestError(f"{duplicated[0]} is included more than once")


def check_request_objects(params: Mapping[str, str]) -> None:
    """OIDC Core 6: request objects are not supported (discovery says so)."""
    if "request" in params:
        raise RequestNotSupportedError()
    if "request_uri" in params:
        raise RequestUriNotSupportedError()


def check_response_type(params: Mapping[str, str]) -> None:
    """Only the authorization code flow (``response_type=code``) is implemented."""
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequestError("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseTypeError()


def check_response_mode(params: Mapping[str, str]) -> None:
    """Only the default ``query`` response mode is advertised."""
    mode = params.get("response_mode")
    if mode is not None and mode != "query":
        raise InvalidRequestError("response_mode must be query")


def check_scope(params: Mapping[str, str], client: Client) -> tuple[str, ...]:
    """OIDC Core 3.1.2.1: ``openid`` is required; unknown values are ignored (RFC 6749 3.3)."""
    requested = params.get("scope", "").split()
    if "openid" not in requested:
        raise InvalidScopeError("the openid scope is required")
    allowed = SUPPORTED_SCOPES.intersection(client.scope) | {"openid"}
    kept: list[str] = []
    for value in requested:
        if value in allowed and value not in kept:
            kept.append(value)
    return tuple(kept)


def check_pkce(params: Mapping[str, str]) -> tuple[str, str]:
    """RFC 7636 4.3, docs/design.md: PKCE with S256 is required for every client; ``plain`` is refused.

    A missing method means ``plain`` (RFC 7636 4.3), so it is refused too.
    """
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise InvalidRequestError("code_challenge is required (PKCE S256)")
    if method != "S256":
        raise InvalidRequestError("code_challenge_method must be S256")
    if not _S256_CHALLENGE.match(challenge):
        raise InvalidRequestError("code_challenge must be 43 base64url characters")
    return challenge, method


def check_prompt(params: Mapping[str, str]) -> frozenset[str]:
    """OIDC Core 3.1.2.1: ``none`` cannot be combined; unknown values are ignored."""
    values = frozenset(params.get("prompt", "").split())
    if "none" in values and len(values) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values")
    return values & PROMPT_VALUES


def check_max_age(params: Mapping[str, str]) -> int | None:
    """OIDC Core 3.1.2.1: max_age is a non-negative number of seconds (ASCII digits only)."""
    raw = params.get("max_age")
    if raw is None or raw == "":
        return None
    if not _DIGITS.fullmatch(raw):
        raise InvalidRequestError("max_age must be a non-negative integer")
    return int(raw)


def check_lengths(params: Mapping[str, str]) -> None:
    """Bound, in encoded bytes, what is sealed in the journey cookie or passed upstream in a URL."""
    for name, limit in MAX_BYTES.items():
        if len(params.get(name, "").encode("utf-8")) > limit:
            raise InvalidRequestError(f"{name} is too long")


def validate_client_and_redirect(params: Mapping[str, str], settings: Settings) -> tuple[Client, str]:
    """The two checks that decide whether errors may be redirected at all."""
    client = check_client(params, settings)
    return client, check_redirect_uri(params, client)


def validate_authorization_request(
    params: Mapping[str, str], repeated: frozenset[str], settings: Settings
) -> AuthorizationRequest:
    """Run every check; raise the first :class:`OAuthError`, or return the validated request."""
    client, redirect_uri = validate_client_and_redirect(params, settings)
    check_single_values(repeated)
    check_request_objects(params)
    check_response_type(params)
    check_response_mode(params)
    check_lengths(params)
    scope = check_scope(params, client)
    challenge, method = check_pkce(params)
    prompt = check_prompt(params)
    max_age = check_max_age(params)
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge=challenge,
        code_challenge_method=method,
        state=params.get("state") or None,
        nonce=params.get("nonce") or None,
        prompt=prompt,
        max_age=max_age,
        login_hint=params.get("login_hint") or None,
    )
