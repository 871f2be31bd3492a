"""Sealed state: small JSON documents the broker hands to the browser, encrypted and authenticated.

A journey in progress and a broker session travel in ``__Host-`` cookies instead of Table Storage rows
(docs/design.md "State"): the browser holds them, only the broker can read or forge them. Each is
compressed JSON sealed with AES-256-GCM (NIST SP 800-38D) under a key derived from the broker's
current signing key (:meth:`KeyRing.derived_secret`), so that it needs no secret of its own and
rotates with the signing keys. The ``kid`` travels in clear in front; the purpose and the ``kid``
are the associated data, so a journey cannot be replayed as a session nor across keys. A sealed
document carries its expiry; an expired, foreign, truncated or tampered one reads as absent.

Format: ``s1.`` + base64url(``kid`` length (1 byte) ‖ ``kid`` ‖ nonce (12 bytes) ‖ ciphertext+tag).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import zlib
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sanscouture.keys import KeyRing
from sanscouture.keys import UnknownKeyError
from sanscouture.ports import Clock

PREFIX = "s1."
MAX_SEALED = 3800  # bytes: a cookie's name and value must stay under the browsers' 4096
_NONCE = 12


class SealedTooLargeError(ValueError):
    """The document would not fit in a cookie."""


class Sealer:
    """Seal and open documents for one ``purpose`` ("journey", "session")."""

    def __init__(self, keys: KeyRing, purpose: str, clock: Clock = time.time) -> None:
        self._keys = keys
        self._purpose = purpose
        self._clock = clock

    def seal(self, document: Mapping[str, Any], ttl: float) -> str:
        kid, key = self._keys.derived_secret(f"sealed {self._purpose}")
        payload = {"exp": int(self._clock() + ttl), "doc": dict(document)}
        plain = zlib.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), level=6)
        nonce = os.urandom(_NONCE)
        kid_bytes = kid.encode("ascii")
        sealed = AESGCM(key).encrypt(nonce, plain, self._aad(kid_bytes))
        value = PREFIX + _b64(bytes([len(kid_bytes)]) + kid_bytes + nonce + sealed)
        if len(value) > MAX_SEALED:
            raise SealedTooLargeError(f"sealed {self._purpose} of {len(value)} bytes")
        return value

    def open(self, value: str | None) -> dict[str, Any] | None:
        """The document, or None when ``value`` is absent, malformed, forged, foreign or expired."""
        if not value or not value.startswith(PREFIX) or len(value) > MAX_SEALED:
            return None
        try:
            raw = _unb64(value[len(PREFIX):])
            kid_length = raw[0]
            kid_bytes = raw[1:1 + kid_length]
            nonce = raw[1 + kid_length:1 + kid_length + _NONCE]
            sealed = raw[1 + kid_length + _NONCE:]
            _, key = self._keys.derived_secret(f"sealed {self._purpose}", kid_bytes.decode("ascii"))
            plain = AESGCM(key).decrypt(nonce, sealed, self._aad(kid_bytes))
            payload = json.loads(zlib.decompress(plain))
        except (IndexError, ValueError, UnicodeDecodeError, binascii.Error, InvalidTag, UnknownKeyError, zlib.error):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("doc"), dict):
            return None
        if not isinstance(payload.get("exp"), int) or payload["exp"] <= self._clock():
            return None
        return payload["doc"]

    def _aad(self, kid: bytes) -> bytes:
        return b"sans-couture " + self._purpose.encode() + b" " + kid


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
