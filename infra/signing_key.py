#!/usr/bin/env python3
"""Print a new private RSA signing key for the broker, as a JSON Web Key (RFC 7517, RFC 7518 §6.3).

Each version of the Key Vault secret named by ``BROKER_SIGNING_KEY_NAME`` holds one such JWK; the
broker signs ID tokens with the newest enabled version and publishes the public part of every
enabled version at ``/jwks``. ``infra/deploy.sh`` uses this script for the first version;
rotations are ``python -m tools.keys rotate`` (docs/deploy.md, section 6).

Standalone on purpose: only the standard library and ``cryptography``, so that an administrator can
run it from any Python 3.9+ with ``pip install cryptography``. The ``kid`` is the key's RFC 7638
thumbprint, so it is derived from the key and never collides between rotations.

    python3 infra/signing_key.py                       # JWK on standard output
    python3 infra/signing_key.py --output key.json     # file readable by its owner only
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys

try:
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError:  # pragma: no cover - depends on the administrator's machine
    sys.exit("signing_key.py: the 'cryptography' package is required (pip install cryptography)")

KEY_SIZES = (2048, 3072, 4096)
# ANSSI (RGS B1) asks for RSA moduli of at least 3072 bits for keys used beyond 2030.
DEFAULT_KEY_SIZE = 3072


def _b64url_uint(value: int) -> str:
    """Base64url (no padding) of an unsigned big-endian integer, as JWK members require."""
    length = max(1, (value.bit_length() + 7) // 8)
    return base64.urlsafe_b64encode(value.to_bytes(length, "big")).rstrip(b"=").decode("ascii")


def thumbprint(n: str, e: str) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key."""
    canonical = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_signing_jwk(key_size: int = DEFAULT_KEY_SIZE, kid: str | None = None) -> dict[str, str]:
    """Generate an RSA key and return it as a private JWK for RS256 signatures."""
    if key_size not in KEY_SIZES:
        raise ValueError(f"key size must be one of {KEY_SIZES}")
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    numbers = private_key.private_numbers()
    public = numbers.public_numbers
    n, e = _b64url_uint(public.n), _b64url_uint(public.e)
    return {
        "kty": "RSA",
        "kid": kid or thumbprint(n, e),
        "alg": "RS256",
        "use": "sig",
        "n": n,
        "e": e,
        "d": _b64url_uint(numbers.d),
        "p": _b64url_uint(numbers.p),
        "q": _b64url_uint(numbers.q),
        "dp": _b64url_uint(numbers.dmp1),
        "dq": _b64url_uint(numbers.dmq1),
        "qi": _b64url_uint(numbers.iqmp),
    }


def _write_private(path: str, text: str) -> None:
    """Write ``text`` to a new file only its owner can read (fails if the file exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Print a new private RSA JWK (RS256, with a kid) for the broker's signing-key secret."
    )
    parser.add_argument(
        "--bits",
        type=int,
        choices=KEY_SIZES,
        default=DEFAULT_KEY_SIZE,
        help=f"RSA modulus size (default {DEFAULT_KEY_SIZE})",
    )
    parser.add_argument("--kid", help="key id (default: the RFC 7638 thumbprint of the key)")
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="write the JWK to this new file (mode 0600) instead of standard output",
    )
    args = parser.parse_args(argv)

    text = json.dumps(new_signing_jwk(args.bits, args.kid), separators=(",", ":")) + "\n"
    if args.output:
        try:
            _write_private(args.output, text)
        except FileExistsError:
            parser.error(f"{args.output} already exists; refusing to overwrite a key file")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
