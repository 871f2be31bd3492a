"""Signing keys in a local JSON file (the sandbox's stand-in for Key Vault).

The file holds ``{"keys": [<private JWK>, ...]}``, newest first, readable by its owner only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from sanscouture.keys import generate_private_jwk


class FileKeySource:
    """A :class:`~sanscouture.ports.KeySource` reading private JWKs from a JSON file."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)

    def load(self) -> list[dict[str, Any]]:
        """The file's keys, in file order (newest first); ValueError if it is not a key set."""
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
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    payload = json.dumps({"keys": [generate_private_jwk()]}, indent=2).encode("utf-8")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
        # If another process created it first, keep theirs.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
