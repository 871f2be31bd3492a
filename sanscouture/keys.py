"""The broker's signing keys: a per-worker cache over a :class:`~sanscouture.ports.KeySource`.

Keys live in Key Vault (one secret, one private JWK per version) or, in the sandbox, in a file.
Loading them is slow and rate-limited, so :class:`KeyRing` loads them once per worker and again only
after ``refresh_after`` seconds, or, at verification, when a token names a ``kid`` it does not know
(a rotation on another worker), at most once per ``unknown_kid_interval``. Signing uses the newest
active key; ``/jwks`` publishes every enabled key (RFC 7517 5), including one whose ``nbf`` is still
ahead (the *next* key: published before it signs, so that relying parties' JWKS caches already hold
it when it does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt.algorithms import RSAAlgorithm

from sanscouture.errors import TemporarilyUnavailableError
from sanscouture.ports import Clock
from sanscouture.ports import KeySource

log = logging.getLogger(__name__)

SIGNING_ALG = "RS256"

# How long a worker serves its cached keys before reloading them (Key Vault is slow and rate-limited).
KEY_CACHE_LIFETIME = 3600
# How long relying parties and proxies may cache /jwks (its Cache-Control max-age): short, so that
# after a rotation they see the next key soon.
JWKS_MAX_AGE = 300
# Clock skew allowed when the broker verifies its own tokens' exp.
VERIFY_LEEWAY = 30

class UnknownKeyError(jwt.InvalidTokenError):
    """The token's ``kid`` names no key of the ring (or the header has no ``kid``)."""


class WrongTokenTypeError(jwt.InvalidTokenError):
    """The ``typ`` header is not the expected one (RFC 9068 4, RFC 8725 3.11)."""


class KeysUnavailableError(TemporarilyUnavailableError):
    """No usable signing key could be loaded: 503, try again."""

    description = "signing keys are temporarily unavailable, try again"


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA JWK (public or private): a stable, content-derived ``kid``."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def generate_private_jwk(key_size: int = 2048) -> dict[str, Any]:
    """A new RSA private JWK with ``kid`` = its RFC 7638 thumbprint, ``alg`` RS256, ``use`` sig."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private_key, as_dict=True)
    jwk.update({"kid": jwk_thumbprint(jwk), "alg": SIGNING_ALG, "use": "sig"})
    return jwk


def public_jwk(jwk: Mapping[str, Any]) -> dict[str, str]:
    """The public members of an RSA JWK, built from an allow-list so that no private member can leak."""
    return {"kty": "RSA", "use": "sig", "alg": SIGNING_ALG, "kid": str(jwk["kid"]), "n": jwk["n"], "e": jwk["e"]}


@dataclass(frozen=True)
class SigningKey:
    """One key of the ring: its ``kid``, its activation time and the key pair."""

    kid: str
    not_before: float | None
    private_key: rsa.RSAPrivateKey = field(repr=False)
    public: Mapping[str, str]

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        """Parse a private RSA JWK; raise ValueError (naming the ``kid``, never a key member) if unusable."""
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ValueError("signing key without kid")
        if jwk.get("kty") != "RSA" or "d" not in jwk:
            raise ValueError(f"signing key {kid}: not an RSA private JWK")
        if jwk.get("alg", SIGNING_ALG) != SIGNING_ALG or jwk.get("use", "sig") != "sig":
            raise ValueError(f"signing key {kid}: alg must be {SIGNING_ALG} and use sig")
        try:
            private_key = RSAAlgorithm.from_jwk(dict(jwk))
        except (jwt.InvalidKeyError, KeyError, ValueError, TypeError):
            raise ValueError(f"signing key {kid}: malformed RSA members") from None
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError(f"signing key {kid}: not a private key")
        if private_key.key_size < 2048:
            raise ValueError(f"signing key {kid}: RSA keys must be at least 2048 bits")
        not_before = jwk.get("nbf")
        return cls(
            kid=kid,
            not_before=float(not_before) if isinstance(not_before, (int, float)) else None,
            private_key=private_key,
            public=public_jwk(jwk),
        )

    def active(self, now: float) -> bool:
        return self.not_before is None or self.not_before <= now

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """An RS256 JWS of ``claims``, the key's ``kid`` in its header (RFC 7515 4.1.4)."""
        return jwt.encode(dict(claims), self.private_key, algorithm=SIGNING_ALG, headers={"kid": self.kid, "typ": typ})


@dataclass(frozen=True)
class _Snapshot:
    keys: tuple[SigningKey, ...]
    loaded_at: float


class KeyRing:
    """The worker's cache of signing keys (thread-safe; see the module docstring)."""

    def __init__(
        self,
        source: KeySource,
        clock: Clock = time.time,
        refresh_after: float = KEY_CACHE_LIFETIME,
        unknown_kid_interval: float = 60,
        retry_after_failure: float = 30,
    ) -> None:
        self._source = source
        self._clock = clock
        self._refresh_after = refresh_after
        self._unknown_kid_interval = unknown_kid_interval
        self._retry_after_failure = retry_after_failure
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._next_attempt = 0.0
        self._last_unknown_kid_reload = float("-inf")
        self._derived: dict[tuple[str, str], bytes] = {}

    def sign(self, claims: Mapping[str, Any], typ: str = "JWT") -> str:
        """An RS256 JWS of ``claims`` with the newest active key, its ``kid`` in the header (RFC 7515 4.1.4)."""
        return self._signing_key().sign(claims, typ)

    def current(self) -> SigningKey:
        """The key that signs now, loaded if need be: whatever can fail (Key Vault) fails here, so that a
        caller can resolve it before a step that cannot be undone and sign afterwards."""
        return self._signing_key()

    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set of every enabled key, newest first (RFC 7517 5)."""
        return {"keys": [dict(key.public) for key in self._keys()]}

    def decode(
        self,
        token: str,
        *,
        issuer: str,
        audience: str | Sequence[str] | None = None,
        typ: str | None = None,
        leeway: float = VERIFY_LEEWAY,
        verify_exp: bool = True,
    ) -> dict[str, Any]:
        """Verify one of the broker's own tokens and return its claims.

        RS256 only (RFC 8725 3.1), ``kid`` required, ``typ`` checked when given (RFC 9068 4),
        ``iss`` and, when given, ``aud`` checked; ``exp`` and ``iat`` required, ``exp`` checked
        against the ring's clock unless ``verify_exp`` is False (an ``id_token_hint`` at logout may
        have expired, OIDC RP-Initiated Logout 2). Raises ``jwt.InvalidTokenError`` subclasses.
        """
        header = jwt.get_unverified_header(token)
        check_token_type(header, typ)
        key = self._verification_key(header.get("kid"))
        claims = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[SIGNING_ALG],
            issuer=issuer,
            audience=audience,
            options={
                "require": ["iss", "exp", "iat"],
                "verify_aud": audience is not None,
                # Time is checked below against the injected clock, so that tests control it.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
        if verify_exp:
            check_not_expired(claims, self._clock(), leeway)
        return claims

    def probe(self) -> None:
        """For /health: raise unless a signing key is loaded (from cache when fresh)."""
        self._signing_key()

    def derived_secret(self, purpose: str, kid: str | None = None) -> tuple[str, bytes]:
        """A 256-bit secret for ``purpose`` derived from the signing key ``kid`` (the current one when
        None), with that ``kid``: HKDF-SHA256 (RFC 5869) over the private key, so that the broker's
        sealed cookies need no secret of their own and rotate with the signing keys. Raises
        :class:`UnknownKeyError` for a ``kid`` the ring does not hold."""
        key = self._signing_key() if kid is None else self._verification_key(kid)
        cache_key = (key.kid, purpose)
        secret = self._derived.get(cache_key)
        if secret is None:
            secret = _hkdf(key.private_key, purpose)
            self._derived[cache_key] = secret
        return key.kid, secret

    # -- cache ---------------------------------------------------------------------------------

    def _signing_key(self) -> SigningKey:
        keys = self._keys()
        now = self._clock()
        active = [key for key in keys if key.active(now)]
        # If every key is still ahead of its nbf (a misconfigured rotation), signing with the one
        # that activates first beats refusing every sign-in.
        return active[0] if active else keys[-1]

    def _verification_key(self, kid: object) -> SigningKey:
        if not isinstance(kid, str) or not kid:
            raise UnknownKeyError("the token header has no kid")
        key = _find(self._keys(), kid)
        if key is None and self._may_reload_for_unknown_kid():
            key = _find(self._reload(force=True), kid)
        if key is None:
            raise UnknownKeyError("the token was not signed by a key of this broker")
        return key

    def _may_reload_for_unknown_kid(self) -> bool:
        # Forged kids must not turn into one Key Vault call each: one reload per interval at most.
        with self._lock:
            now = self._clock()
            if now - self._last_unknown_kid_reload < self._unknown_kid_interval:
                return False
            self._last_unknown_kid_reload = now
            return True

    def _keys(self) -> tuple[SigningKey, ...]:
        snapshot = self._snapshot
        if snapshot is not None and self._clock() - snapshot.loaded_at < self._refresh_after:
            return snapshot.keys
        return self._reload(force=False)

    def _reload(self, *, force: bool) -> tuple[SigningKey, ...]:
        with self._lock:
            now = self._clock()
            snapshot = self._snapshot
            fresh = snapshot is not None and now - snapshot.loaded_at < self._refresh_after
            if snapshot is not None and ((fresh and not force) or now < self._next_attempt):
                return snapshot.keys  # another thread reloaded meanwhile, or we are backing off
            try:
                keys = _parse_keys(self._source.load())
            except Exception as error:
                self._next_attempt = now + self._retry_after_failure
                if snapshot is None:
                    raise KeysUnavailableError(detail=f"key source: {_describe(error)}") from error
                # Serve the keys we have: a Key Vault hiccup must not stop sign-ins.
                log.warning(
                    "signing keys could not be reloaded; keeping the %d cached",
                    len(snapshot.keys),
                    extra={"error_detail": _describe(error)},
                )
                return snapshot.keys
            self._snapshot = _Snapshot(keys, now)
            self._next_attempt = 0.0
            log.info("signing keys loaded", extra={"kids": [key.kid for key in keys]})
            return keys


def _parse_keys(jwks: list[dict[str, Any]]) -> tuple[SigningKey, ...]:
    keys: list[SigningKey] = []
    for jwk in jwks:
        try:
            key = SigningKey.from_jwk(jwk)
        except ValueError as error:
            # One bad version (an operator's mistake) must not take the others down.
            log.error("signing key skipped: %s", error)
            continue
        if _find(keys, key.kid) is None:
            keys.append(key)
    if not keys:
        raise ValueError("the key source holds no usable signing key")
    return tuple(keys)


def _hkdf(private_key: rsa.RSAPrivateKey, purpose: str) -> bytes:
    """HKDF-SHA256 with the private exponent as input keying material (far more than 256 bits of
    secret) and the purpose as ``info``: one derived key per purpose, none revealing another or the
    signing key."""
    exponent = private_key.private_numbers().d
    material = exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sans-couture derived secret", info=purpose.encode())
    return kdf.derive(material)


def _find(keys: Sequence[SigningKey], kid: str) -> SigningKey | None:
    return next((key for key in keys if key.kid == kid), None)


def _describe(error: Exception) -> str:
    detail = getattr(error, "detail", "")
    return f"{type(error).__name__}: {detail or error}"


def check_token_type(header: Mapping[str, Any], expected: str | None) -> None:
    """RFC 9068 4: ``typ`` must be ``at+jwt`` (or ``application/at+jwt``), compared case-insensitively."""
    if expected is None:
        return
    actual = str(header.get("typ", "")).lower()
    if actual.removeprefix("application/") != expected.lower().removeprefix("application/"):
        raise WrongTokenTypeError(f"the token typ is not {expected}")


def check_not_expired(claims: Mapping[str, Any], now: float, leeway: float) -> None:
    """RFC 7519 4.1.4: reject a token at or after ``exp`` (plus a small clock-skew leeway)."""
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise jwt.DecodeError("exp must be a number")
    if exp + leeway <= now:
        raise jwt.ExpiredSignatureError("the token has expired")
