"""Signing keys in a local JSON file (the sandbox's stand-in for Key Vault).

The file holds ``{"keys": [<private JWK>, ...]}``, newest first, readable by its owner only. As Key
Vault versions carry ``not_before`` and ``enabled``, a key may carry ``nbf`` (epoch seconds: published
before it signs) and ``"disabled": true`` (never loaded again; a rotation sets it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sanscouture.keys import SigningKey
from sanscouture.keys import generate_private_jwk
from sanscouture.models import KeyVersion

DISABLED = "disabled"


class FileKeySource:
    """A :class:`~sanscouture.ports.KeyStore` over private JWKs in a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)

    def load(self) -> list[dict[str, Any]]:
        """The file's enabled keys, in file order (newest first); ValueError if it is not a key set."""
        return [key for key in self._read() if key.get(DISABLED) is not True]

    def versions(self) -> list[KeyVersion]:
        """Every key of the file, disabled ones too, newest first; ``id`` is its ``kid``."""
        return [_version(key, index) for index, key in enumerate(self._read())]

    def add(self, jwk: Mapping[str, Any], not_before: float) -> KeyVersion:
        """Put ``jwk`` first in the file, signing from ``not_before``."""
        key = {**jwk, "nbf": not_before}
        with self._locked():
            self._write([key, *self._read()])
        return _version(key, 0)

    def disable(self, version: KeyVersion) -> None:
        """Mark the key whose ``kid`` is ``version.id`` as disabled (kept in the file, never loaded)."""
        with self._locked():
            keys = self._read()
            for key in keys:
                if key.get("kid") == version.id:
                    key[DISABLED] = True
            self._write(keys)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (a rotation run by hand beside the timer's); readers never wait."""
        lock_path = self._path.with_name(f".{self._path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, keys: list[dict[str, Any]]) -> None:
        """Replace the file in one rename, so that a worker reloading meanwhile reads the old or new set."""
        _write_private(self._path, json.dumps({"keys": keys}, indent=2).encode("utf-8"), replace=True)

    def _read(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ValueError(f"cannot read the signing key file {self._path}: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"the signing key file {self._path} is not JSON (position {error.pos})") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
            raise ValueError(f"the signing key file {self._path} must hold {{\"keys\": [<JWK>, ...]}}")
        return keys


def ensure_key_file(path: Path) -> None:
    """Create ``path`` (and its folder) with one new RSA-2048 private JWK, mode 0600, if it is missing.

    The file is written under a temporary name and hard-linked into place, so that a concurrent
    caller never reads a half-written file and never overwrites a key that is already in use.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path, json.dumps({"keys": [generate_private_jwk()]}, indent=2).encode("utf-8"), replace=False)


def _write_private(path: Path, payload: bytes, *, replace: bool) -> None:
    """Write ``payload`` (mode 0600) under a temporary name, then rename it over ``path`` (``replace``)
    or hard-link it into place only if ``path`` does not exist yet (another process's file is kept)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _version(key: Mapping[str, Any], index: int) -> KeyVersion:
    kid = key.get("kid")
    try:
        usable_kid: str | None = SigningKey.from_jwk(key).kid
    except ValueError:
        usable_kid = None
    not_before = key.get("nbf")
    return KeyVersion(
        id=kid if isinstance(kid, str) and kid else f"#{index}",
        kid=usable_kid,
        created=None,
        not_before=float(not_before) if isinstance(not_before, (int, float)) else None,
        enabled=key.get(DISABLED) is not True,
    )
