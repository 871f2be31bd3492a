"""Signing keys for the simulators: a key set with ``kid``s, rollover, JWKS export, RS256 tokens; PKCE.

Both simulators sign with :class:`KeySet`. Rotation adds a key that signs from then on and keeps the
older ones published, the way Entra ID and Keycloak roll keys over, so a relying party that caches
the JWKS must re-fetch it when it meets an unknown ``kid``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA public JWK: a stable, content-derived ``kid``."""
    canonical = json.dumps(
        {"e": public_jwk["e"], "kty": "RSA", "n": public_jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True)
class SigningKey:
    """One RSA key pair and its ``kid``."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        return cls(kid=jwk_thumbprint(public), private_key=private_key)

    def public_jwk(self) -> dict[str, str]:
        public = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": public["n"], "e": public["e"]}


class KeySet:
    """Thread-safe set of signing keys: the newest signs, every key stays in the JWKS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = [SigningKey.generate()]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[-1]

    def rotate(self) -> SigningKey:
        """Add a new key that signs from now on; the older keys stay published (rollover)."""
        key = SigningKey.generate()
        with self._lock:
            self._keys.append(key)
        return key

    def kids(self) -> list[str]:
        with self._lock:
            return [key.kid for key in self._keys]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set, newest key first (as Entra lists its current key first)."""
        with self._lock:
            return {"keys": [key.public_jwk() for key in reversed(self._keys)]}

    def sign(self, claims: Mapping[str, Any], *, typ: str = "JWT") -> str:
        """An RS256 JWS of ``claims`` with the current key's ``kid`` in the header."""
        key = self.current
        return jwt.encode(dict(claims), key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": typ})

    def forge(self, claims: Mapping[str, Any], signing: str, *, typ: str = "JWT") -> str:
        """``claims`` as a token that a careless relying party would accept (:data:`FORGERIES`), its
        header naming the current key's ``kid`` as a genuine token would; ``"valid"`` signs normally."""
        if signing == "valid":
            return self.sign(claims, typ=typ)
        key = self.current
        if signing == "wrong-key":
            impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return jwt.encode(dict(claims), impostor, algorithm="RS256", headers={"kid": key.kid, "typ": typ})
        if signing == "alg-none":
            return _jws({"alg": "none", "typ": typ, "kid": key.kid}, claims, lambda _signing_input: b"")
        if signing == "hs256-public-key":
            secret = key.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return _jws({"alg": "HS256", "typ": typ, "kid": key.kid}, claims,
                        lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest())
        raise ValueError(f"unknown signing {signing!r}")

    def verify(
        self,
        token: str,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        verify_exp: bool = True,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Claims of a token this set signed; raises ``jwt.InvalidTokenError`` otherwise. ``now``: the
        simulator's clock (its ``clock-offset``), which signed the token; the machine's when None."""
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            key = next((k for k in self._keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidTokenError(f"unknown kid {kid!r}")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={"verify_aud": audience is not None, "verify_exp": verify_exp and now is None,
                     "verify_iat": now is None, "verify_nbf": now is None},
            leeway=60,
        )
        if now is not None and verify_exp and isinstance(claims.get("exp"), (int, float)) and claims["exp"] <= now - 60:
            raise jwt.ExpiredSignatureError("Signature has expired")
        return claims


FORGERIES = ("valid", "wrong-key", "alg-none", "hs256-public-key")
"""How :meth:`KeySet.forge` signs: normally; with a key that is not in the JWKS (a forged or
tampered token); unsigned with ``alg: none`` (RFC 7519 6.1, the "none" attack); or HS256 with the
provider's public key (PEM SubjectPublicKeyInfo) as the HMAC secret, the classic algorithm confusion
(RFC 8725 2.1 and 3.1) that succeeds against a verifier letting the token's header choose the algorithm."""


def _jws(header: Mapping[str, Any], claims: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS (RFC 7515 7.1) built by hand: PyJWT rightly refuses to make these two."""
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (dict(header), dict(claims))
    )
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    """RFC 7636 4.6: does ``code_verifier`` match the stored challenge (``S256`` or ``plain``)?"""
    computed = b64url(hashlib.sha256(verifier.encode()).digest()) if method == "S256" else verifier
    return hmac.compare_digest(computed.encode(), challenge.encode())
