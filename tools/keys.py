"""Rotate the broker's signing key with no failed sign-in — the ES administrator's tool.

    python -m tools.keys rotate [--dry-run] [--lead SECONDS]
    python -m tools.keys retire [--dry-run]

``rotate`` adds a new key version that signs ``--lead`` seconds later (24 hours by default, at least the
workers' key cache plus the ``/jwks`` max-age), so that every broker instance and every relying party
already publishes or holds it when it signs, then disables the versions that no longer sign since longer
than the retention (the longest lifetime of what a key signs or seals, plus a margin; printed).
``retire`` only disables. Both are safe to re-run: no new version while one is waiting for its
activation, never the current or newest one. ``--dry-run`` prints what would be done.

The keys are reached as the broker reaches them: ``BROKER_KEYVAULT_URL`` and ``BROKER_SIGNING_KEY_NAME``
with the administrator's Azure identity (``az login``; *Key Vault Secrets Officer* on that secret,
docs/deploy.md §6), or ``BROKER_SIGNING_KEY_FILE`` in the sandbox. ``BROKER_SESSION_MAX_AGE`` and
``BROKER_ACCESS_TOKEN_TTL``, when the app sets them, must be given too: the retention depends on them.
Only ``kid``s and dates are printed, never key material.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TextIO

from sanscouture.errors import OAuthError
from sanscouture.ports import Clock
from sanscouture.ports import KeyStore
from sanscouture.rotation import DEFAULT_LEAD
from sanscouture.rotation import Durations
from sanscouture.rotation import RotationError
from sanscouture.rotation import rotate
from sanscouture.settings import SettingsError
from sanscouture.settings import seconds_setting


def key_store_from_environment(env: Mapping[str, str]) -> KeyStore:
    key_file = env.get("BROKER_SIGNING_KEY_FILE", "").strip()
    if key_file:
        from sanscouture.adapters.keyfile import FileKeySource

        return FileKeySource(key_file)
    url, name = env.get("BROKER_KEYVAULT_URL", "").strip(), env.get("BROKER_SIGNING_KEY_NAME", "").strip()
    if not url or not name:
        raise SystemExit("Set BROKER_KEYVAULT_URL and BROKER_SIGNING_KEY_NAME (the app's settings), "
                         "or BROKER_SIGNING_KEY_FILE in the sandbox.")
    from azure.identity import DefaultAzureCredential

    from sanscouture.adapters import keyvault

    return keyvault.from_settings(url, name, DefaultAzureCredential())


def durations_from_environment(env: Mapping[str, str]) -> Durations:
    """The retention follows the app's settings, read with the broker's own rules and defaults."""
    try:
        return Durations.from_settings(
            session_max_age=seconds_setting(env, "BROKER_SESSION_MAX_AGE", 4 * 3600),
            access_token_ttl=seconds_setting(env, "BROKER_ACCESS_TOKEN_TTL", 120),
        )
    except SettingsError as error:
        raise SystemExit(str(error)) from None


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] = os.environ,
    out: TextIO = sys.stdout,
    clock: Clock = time.time,
    durations: Durations | None = None,
) -> int:
    """``durations`` replaces those of the settings (the rotation test scales them all down)."""
    parser = argparse.ArgumentParser(prog="python -m tools.keys", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rotation = commands.add_parser("rotate", help="add the next key (signs after --lead), disable retired ones")
    rotation.add_argument("--lead", type=float, help=f"seconds before the new key signs (default {DEFAULT_LEAD})")
    rotation.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    retirement = commands.add_parser("retire", help="only disable the keys retired longer than the retention")
    retirement.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    args = parser.parse_args(argv)

    chosen = durations or durations_from_environment(env)
    if getattr(args, "lead", None) is not None:
        chosen = dataclasses.replace(chosen, lead=args.lead)
    try:
        policy = chosen.policy()
        result = rotate(key_store_from_environment(env), policy, clock, add=args.command == "rotate",
                        dry_run=args.dry_run)
    except RotationError as error:
        out.write(f"Refused: {error}.\n")
        return 2
    except (OAuthError, ValueError) as error:  # the store is unreachable, refuses access, or unreadable
        out.write(f"The signing keys could not be read or written: {getattr(error, 'detail', '') or error}.\n")
        return 1
    for line in result.lines():
        out.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
