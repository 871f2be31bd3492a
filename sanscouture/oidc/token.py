"""The token endpoint: authorization code → ID token + access token (RFC 6749 4.1.3, OIDC Core 3.1.3),
and refresh token → new tokens (RFC 6749 6, :mod:`sanscouture.oidc.refresh`).

:func:`exchange_code` reads as the list of its checks, each a small function raising one typed
error. A failed redemption burns the code: whoever holds a stolen code gets one try. A code already
used revokes what it gave (RFC 6749 4.1.2, 10.5): the access tokens and the refresh token family.
A client registered for the ``refresh_token`` grant gets a refresh token with a paired sign-in.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from typing import Protocol

from sanscouture.errors import InvalidClientError
from sanscouture.errors import InvalidGrantError
from sanscouture.errors import InvalidRequestError
from sanscouture.errors import OAuthError
from sanscouture.errors import UnsupportedGrantTypeError
from sanscouture.limits import RateLimiter
from sanscouture.limits import SlowDownError
from sanscouture.models import Client
from sanscouture.models import CodeGrant
from sanscouture.oidc.authorize import AUTHORIZATION_PARAMETERS
from sanscouture.oidc.client_auth import JwksFetcher
from sanscouture.oidc.client_auth import authenticate_client_counting_failures
from sanscouture.oidc.codes import GRANT_ROW
from sanscouture.oidc.codes import REDEEMED_STATE
from sanscouture.oidc.codes import FoundGrant
from sanscouture.oidc.codes import find_grant
from sanscouture.oidc.id_token import build_id_token_claims
from sanscouture.oidc.pkce import check_pkce
from sanscouture.ports import Clock
from sanscouture.ports import RowStore
from sanscouture.ports import TableSet
from sanscouture.settings import Settings
from sanscouture.web import NO_STORE
from sanscouture.web import Request
from sanscouture.web import Response

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - RFC 9068 2.1 media type, not a secret
AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type name
BASIC_CHALLENGE = 'Basic realm="sans-couture"'
SIGNING_THREADS = 4
"""Redemptions signing at once on a worker; more wait their turn (signing is CPU: more threads buy nothing)."""
# The parameters a repeated-parameter error may name (/token, and /par which shares the check).
_PARAMETER_NAMES = frozenset({
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "client_id",
    "client_secret", "client_assertion", "client_assertion_type", *AUTHORIZATION_PARAMETERS,
})


class Key(Protocol):
    """One signing key (``sanscouture.keys.SigningKey``): signing with it can no longer fail on I/O."""

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str: ...


class Signer(Protocol):
    """The broker's signing keys (``sanscouture.keys.KeyRing``): the key that signs now."""

    def current(self) -> Key: ...


@dataclass(frozen=True)
class TokenEndpoint:
    """The collaborators of the token endpoint."""

    settings: Settings
    tables: TableSet
    signer: Signer
    client_jwks: JwksFetcher
    clock: Clock = time.time
    failed_client_auth: RateLimiter | None = None  # per source address (sanscouture/limits.py)


@dataclass(frozen=True)
class IssuedTokens:
    """A successful token response (RFC 6749 5.1, OIDC Core 3.1.3.3 and 12.2)."""

    access_token: str
    id_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None

    def body(self) -> dict[str, Any]:
        body = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "id_token": self.id_token,
            "scope": self.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


def handle_token_request(request: Request, endpoint: TokenEndpoint) -> Response:
    """The HTTP answer for a token request; OAuth errors propagate to the caller."""
    return token_response(exchange_code(request, endpoint))


def exchange_code(request: Request, endpoint: TokenEndpoint) -> IssuedTokens:
    """RFC 6749 4.1.3 and OIDC Core 3.1.3.2 (or RFC 6749 6 for a refresh), one check per line."""
    check_post(request)
    check_form_encoded(request)
    check_no_repeated_parameters(request)
    client = authenticate_client_within_limits(request, endpoint)
    if check_grant_type(request.form) == REFRESH_TOKEN:
        from sanscouture.oidc.refresh import exchange_refresh_token  # one grant type, one module

        return exchange_refresh_token(request, client, endpoint)
    code = check_code_present(request.form)
    codes = endpoint.tables["codes"]
    found = find_grant_or_revoke(codes, code)
    grant = CodeGrant.from_dict(found.row.data)
    try:
        check_code_client(grant, client)
        check_redirect_uri(grant, request.form)
        check_pkce(request.form.get("code_verifier"), grant.code_challenge)
    except OAuthError:
        codes.consume_row(found.row)  # a failed redemption uses the code up too
        raise
    return redeem(codes, found, grant, client, endpoint)


# -- request shape ----------------------------------------------------------------------------


def check_post(request: Request) -> None:
    """RFC 6749 3.2: "The client MUST use the HTTP POST method"."""
    if request.method != "POST":
        raise InvalidRequestError("the token endpoint only accepts POST")


def check_form_encoded(request: Request) -> None:
    """RFC 6749 4.1.3: parameters come as application/x-www-form-urlencoded."""
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequestError("the body must be application/x-www-form-urlencoded")


def check_no_repeated_parameters(request: Request) -> None:
    """RFC 6749 3.2: "Request and response parameters MUST NOT be included more than once".

    The description names the parameter only when it is one the endpoints know: any other name is
    the sender's text, which is neither echoed back nor always within RFC 6749 A.7's characters."""
    if request.repeated:
        known = sorted(request.repeated & _PARAMETER_NAMES)
        if known:
            raise InvalidRequestError(f"repeated parameter: {known[0]}")
        raise InvalidRequestError("a parameter is repeated", detail=f"{len(request.repeated)} repeated names")


def check_grant_type(form: Mapping[str, str]) -> str:
    """RFC 6749 5.2: ``authorization_code`` or ``refresh_token``; none at all is a malformed request."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequestError("grant_type is required")
    if grant_type not in (AUTHORIZATION_CODE, REFRESH_TOKEN):
        raise UnsupportedGrantTypeError()
    return grant_type


def check_code_present(form: Mapping[str, str]) -> str:
    """RFC 6749 4.1.3: ``code`` is required."""
    code = form.get("code")
    if not code:
        raise InvalidRequestError("code is required")
    return code


# -- the code -------------------------------------------------------------------------------


def find_grant_or_revoke(codes: RowStore, code: str) -> FoundGrant:
    """RFC 6749 4.1.2: the code's grant; a code already redeemed revokes the tokens it gave."""
    found = find_grant(codes, code)
    if found is None:
        raise InvalidGrantError("the authorization code is invalid, expired or was already used")
    if found.redeemed:
        codes.delete(found.grant_id, GRANT_ROW)
        raise InvalidGrantError("the authorization code is invalid, expired or was already used",
                                detail="replayed code: the access token it gave was revoked")
    return found


def check_code_client(grant: CodeGrant, client: Client) -> None:
    """RFC 6749 4.1.3: the code was issued to the authenticated client."""
    if grant.client_id != client.client_id:
        raise InvalidGrantError("the authorization code was issued to another client")


def check_redirect_uri(grant: CodeGrant, form: Mapping[str, str]) -> None:
    """RFC 6749 4.1.3: ``redirect_uri`` is present and identical to the authorization request's."""
    redirect_uri = form.get("redirect_uri")
    if not redirect_uri:
        raise InvalidGrantError("redirect_uri is required and must match the authorization request")
    if redirect_uri != grant.redirect_uri:
        raise InvalidGrantError("redirect_uri does not match the authorization request")


# -- issuing --------------------------------------------------------------------------------


def redeem(
    codes: RowStore, found: FoundGrant, grant: CodeGrant, client: Client, endpoint: TokenEndpoint
) -> IssuedTokens:
    """Sign the access token (RFC 9068) and the ID token (OIDC Core 2), and turn the code's row into the
    grant's record (its access token, and the refresh token family of a client registered for it) in
    one ETag-conditional replace: of two concurrent redemptions one wins, and the loser revokes the
    winner's tokens too (the code was used twice)."""
    settings = endpoint.settings
    now = int(endpoint.clock())
    jti = secrets.token_urlsafe(16)
    claims = build_access_token_claims(
        grant, issuer=settings.issuer, grant_id=found.grant_id, jti=jti, now=now, ttl=settings.access_token_ttl
    )
    signed = start_signing(endpoint, claims, grant, now)
    # The record keeps the code's secret hash: a replayed code still finds it, and revokes it.
    record = {**grant_record(grant, {jti: now + settings.access_token_ttl}),
              "secret_sha256": found.row.data["secret_sha256"]}
    refresh_token, lifetime = None, settings.access_token_ttl
    if client.may_refresh and grant.tid is not None:  # bound to a pairing: one-off identities get none
        from sanscouture.oidc.refresh import new_refresh_token

        refresh_token, fields = new_refresh_token(found.grant_id, grant, settings, now)
        record.update(fields)
        lifetime = max(lifetime, int(fields["refresh_until"]) - now)
    if codes.replace(found.row, record, expires_in=lifetime) is None:
        codes.delete(found.grant_id, GRANT_ROW)
        raise InvalidGrantError("the authorization code is invalid, expired or was already used",
                                detail="concurrent redemption: the grant's tokens were revoked")
    access_token, id_token = signed.result()
    return IssuedTokens(access_token, id_token, settings.access_token_ttl, " ".join(grant.scope), refresh_token)


def start_signing(
    endpoint: TokenEndpoint, access_claims: Mapping[str, Any], grant: CodeGrant, now: int
) -> Future[tuple[str, str]]:
    """The access token and the ID token, signed on another thread while the caller writes the grant's
    row: the two RS256 signatures (a millisecond each, the interpreter released) and the storage round
    trip overlap, and the response waits for the slower of them, not for their sum. The key is resolved
    here, first: what can fail (Key Vault) fails before the code or refresh token is used."""
    key = endpoint.signer.current()
    return _signing_threads().submit(_sign_tokens, key, access_claims, grant, endpoint.settings.issuer, now)


def _sign_tokens(key: Key, claims: Mapping[str, Any], grant: CodeGrant, issuer: str, now: int) -> tuple[str, str]:
    """The access token, then the ID token whose ``at_hash`` names it (OIDC Core 3.1.3.6)."""
    access_token = key.sign(claims, typ=ACCESS_TOKEN_TYP)
    return access_token, key.sign(build_id_token_claims(grant, issuer=issuer, access_token=access_token, now=now))


_signing_pool: ThreadPoolExecutor | None = None
_signing_pool_lock = threading.Lock()


def _signing_threads() -> ThreadPoolExecutor:
    """The worker's signing threads, started on the first redemption (none at import: cold start)."""
    global _signing_pool
    with _signing_pool_lock:
        if _signing_pool is None:
            _signing_pool = ThreadPoolExecutor(max_workers=SIGNING_THREADS, thread_name_prefix="token-signing")
        return _signing_pool


def _forget_signing_threads() -> None:
    """In a forked child: the parent's threads do not exist there, yet its executor would count them and
    start none, and every redemption would wait forever. The child starts its own."""
    global _signing_pool, _signing_pool_lock
    _signing_pool, _signing_pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_signing_threads)


def build_access_token_claims(
    grant: CodeGrant, *, issuer: str, grant_id: str, jti: str, now: int, ttl: int
) -> dict[str, Any]:
    """RFC 9068 2.2 (iss, exp, aud, sub, client_id, iat, jti, scope) plus ``sid`` and ``gid``.

    ``aud`` is the broker itself: its only resource server is ``/userinfo``. ``gid`` names the grant's
    row, so that ``/userinfo`` finds it and a replayed code can revoke it.
    """
    return {
        "iss": issuer,
        "sub": grant.identity.sub,
        "aud": issuer,
        "client_id": grant.client_id,
        "scope": " ".join(grant.scope),
        "exp": now + ttl,
        "iat": now,
        "jti": jti,
        "sid": grant.sid,
        "gid": grant_id,
    }


def grant_record(grant: CodeGrant, access: Mapping[str, int]) -> dict[str, Any]:
    """The grant once redeemed: what ``/userinfo`` serves (the grant's identity and scope) and its live
    access tokens (``jti`` → expiry), kept in the grant's row."""
    return {**grant.to_dict(), "state": REDEEMED_STATE, "access": dict(access)}


# -- responses ------------------------------------------------------------------------------


def token_response(tokens: IssuedTokens) -> Response:
    """RFC 6749 5.1: JSON, never cached."""
    return Response.json(tokens.body(), headers=NO_STORE)


def authenticate_client_within_limits(request: Request, endpoint: TokenEndpoint) -> Client:
    """Client authentication, once the source has failed fewer than its limit a minute (a secret is
    not guessed at network speed); each failure counts."""
    return authenticate_client_counting_failures(
        request, endpoint.settings, endpoint.tables["jti"], endpoint.client_jwks, endpoint.clock,
        endpoint.failed_client_auth,
    )


def token_error_response(error: OAuthError) -> Response:
    """RFC 6749 5.2: the JSON error; ``invalid_client`` with its Basic challenge; 429 with Retry-After."""
    if isinstance(error, InvalidClientError):
        return invalid_client_response(error)
    if isinstance(error, SlowDownError):
        return Response.json(error.body(), status=429, headers={**NO_STORE, "Retry-After": str(error.retry_after)})
    return Response.json(error.body(), status=error.status, headers=NO_STORE)


def invalid_client_response(error: InvalidClientError) -> Response:
    """RFC 6749 5.2: 401 with a challenge of the scheme the token endpoint accepts in a header.

    RFC 6749 requires ``WWW-Authenticate`` matching the scheme when the client used the
    Authorization header (Basic); RFC 9110 15.5.2 requires a challenge on every 401, and Basic is
    the only header scheme of this endpoint, so every invalid_client answer carries it.
    """
    return Response.json(
        error.body(), status=error.status, headers={**NO_STORE, "WWW-Authenticate": BASIC_CHALLENGE}
    )
