"""Discovery, JWKS and ID token verification for the upstream providers (Entra ID and PSC).

MSAL does not verify the ID token's signature (msal 1.38+ "no longer validates the ID token"), and
PSC's tokens arrive through our own token request; so the broker verifies both itself (OIDC Core
3.1.3.7): signature against the provider's JWKS, issuer, audience, expiry and nonce. The JWKS is
cached per worker and fetched again when a token names an unknown ``kid`` (key rollover), at most
once per :data:`REFETCH_INTERVAL`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jwt
import requests

from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
METADATA_TTL = 24 * 3600
JWKS_TTL = 24 * 3600
REFETCH_INTERVAL = 10.0
LEEWAY = 120  # seconds of clock skew tolerated, as MSAL does


def fetch_json(session: requests.Session, url: str, what: str) -> dict[str, Any]:
    """GET a JSON document; network failures and 5xx become UpstreamUnavailableError (503)."""
    try:
        response = session.get(url, headers={"Accept": "application/json"})
    except requests.RequestException as error:
        raise UpstreamUnavailableError(detail=f"{what}: {type(error).__name__}") from error
    if response.status_code != 200:
        raise UpstreamUnavailableError(detail=f"{what}: HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as error:
        raise UpstreamUnavailableError(detail=f"{what}: not JSON") from error
    if not isinstance(document, dict):
        raise UpstreamUnavailableError(detail=f"{what}: not a JSON object")
    return document


class CachedDocument:
    """A JSON document fetched once and kept for ``ttl`` seconds (thread-safe)."""

    def __init__(
        self, session: requests.Session, url: str, what: str, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._session = session
        self._url = url
        self._what = what
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0

    def get(self, force: bool = False) -> dict[str, Any]:
        with self._lock:
            stale = self._document is None or self._clock() - self._fetched_at > self._ttl
            if stale or force:
                self._document = fetch_json(self._session, self._url, self._what)
                self._fetched_at = self._clock()
            assert self._document is not None
            return self._document

    @property
    def what(self) -> str:
        """What the document is, for error details ("entra jwks", "psc discovery")."""
        return self._what


class JwksCache:
    """The provider's signing keys by ``kid``, refetched on an unknown ``kid`` (rollover)."""

    def __init__(self, document: CachedDocument, clock: Callable[[], float] = time.time) -> None:
        self._document = document
        self._clock = clock
        self._last_forced = 0.0

    def key(self, kid: str | None) -> jwt.PyJWK:
        key = self._find(self._document.get(), kid)
        if key is None and self._clock() - self._last_forced > REFETCH_INTERVAL:
            self._last_forced = self._clock()
            key = self._find(self._document.get(force=True), kid)
        if key is None:
            raise SignInRefused("upstream_token_invalid", detail=f"no key with kid {kid!r} in {self._document.what}")
        return key

    @staticmethod
    def _find(jwks: dict[str, Any], kid: str | None) -> jwt.PyJWK | None:
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        if kid is not None:
            keys = [k for k in keys if k.get("kid") == kid]
        elif len(keys) != 1:
            return None  # without kid, only an unambiguous single key may be used
        for candidate in keys:
            try:
                key = jwt.PyJWK(candidate)
            except (jwt.PyJWKError, jwt.InvalidKeyError, NotImplementedError):
                # One unusable entry (unknown kty or crv, missing or malformed n/e, alg "none") is skipped,
                # as any other unusable key: it must not turn every sign-in into an error page.
                continue
            if candidate.get("kty") != "oct":  # a provider signs ID tokens with its private key, never a secret
                return key
        return None


def verify_id_token(
    token: str,
    jwks: JwksCache,
    *,
    audience: str,
    issuer: str | Callable[[dict[str, Any]], str],
    nonce: str | None,
    provider: str,
    now: float | None = None,
) -> dict[str, Any]:
    """OIDC Core 3.1.3.7: verify signature, iss, aud, exp/iat and nonce; return the claims.

    ``issuer`` may be a function of the unverified claims, for Entra's tenant-specific issuer
    (``https://login.microsoftonline.com/{tid}/v2.0``); it is compared after the signature checks.
    ``now`` is the broker's clock (the one its own rules compare ``auth_time`` with); the machine's
    when not given.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise SignInRefused("upstream_token_invalid", detail=f"{provider}: malformed ID token") from error
    if header.get("alg") not in ALGORITHMS:
        raise SignInRefused("upstream_token_invalid", detail=f"{provider}: alg {header.get('alg')!r} refused")
    key = jwks.key(header.get("kid"))
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[header["alg"]],
            audience=audience,
            leeway=LEEWAY,
            options={"require": ["iss", "sub", "aud", "exp", "iat"], "verify_iss": False,
                     **({"verify_exp": False, "verify_iat": False, "verify_nbf": False} if now is not None else {})},
        )
        if now is not None:
            _check_times(claims, now)
    except jwt.InvalidTokenError as error:
        raise SignInRefused(
            "upstream_token_invalid", detail=f"{provider}: {type(error).__name__}: {error}"
        ) from error
    expected_issuer = issuer(claims) if callable(issuer) else issuer
    if claims.get("iss") != expected_issuer:
        raise SignInRefused("upstream_token_invalid", detail=f"{provider}: unexpected issuer")
    if nonce is not None and claims.get("nonce") != nonce:
        raise SignInRefused("upstream_token_invalid", detail=f"{provider}: nonce mismatch")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and claims.get("azp") != audience:
        raise SignInRefused("upstream_token_invalid", detail=f"{provider}: azp does not name us")
    return claims


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    """RFC 7519 4.1.4-4.1.6 as PyJWT checks them (same leeway), against ``now`` instead of the
    machine's clock."""
    for name in ("exp", "iat", "nbf"):
        if name in claims and not isinstance(claims[name], (int, float)):
            raise jwt.InvalidTokenError(f"{name} must be a number")
    if claims["exp"] <= now - LEEWAY:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if claims["iat"] > now + LEEWAY:
        raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")
    if "nbf" in claims and claims["nbf"] > now + LEEWAY:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")
