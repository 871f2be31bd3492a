"""The administrator's rotation tool over the sandbox's key file: what it prints, what it changes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sanscouture.adapters.keyfile import FileKeySource
from sanscouture.adapters.keyfile import ensure_key_file
from tools.keys import main

NOW = 1_800_000_000.0
DAY = 86400.0


def key_file(tmp_path: Path) -> tuple[dict[str, str], Path]:
    path = tmp_path / "signing-keys.json"
    ensure_key_file(path)
    return {"BROKER_SIGNING_KEY_FILE": str(path)}, path


def run(env: dict[str, str], *argv: str, now: float = NOW) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), env, out, clock=lambda: now), out.getvalue()


def test_rotate_prints_the_policy_and_adds_a_key_that_signs_a_day_later(tmp_path: Path) -> None:
    env, path = key_file(tmp_path)
    [first] = FileKeySource(path).versions()
    status, text = run(env, "rotate")
    assert status == 0
    assert text.splitlines()[0] == (
        "lead 86400 s (at least the workers' key cache 3600 s + the /jwks max-age 300 s); retention 18000 s "
        "(the longest lifetime, session 14400 s, + a margin of 3600 s)"
    )
    keys = json.loads(path.read_text())["keys"]
    assert [key["kid"] for key in keys][1:] == [first.kid] and keys[0]["nbf"] == NOW + DAY
    assert f"add      {keys[0]['kid']}  signs from 2027-01-16 08:00:00 UTC" in text
    assert f"signing  {first.kid}" in text
    assert all(keys[0][member] not in text for member in ("d", "p", "q", "n"))


def test_a_dry_run_changes_nothing_and_a_second_rotation_adds_nothing(tmp_path: Path) -> None:
    env, path = key_file(tmp_path)
    before = path.read_text()
    status, text = run(env, "rotate", "--dry-run")
    assert status == 0 and "would add      (new key)" in text and path.read_text() == before
    run(env, "rotate")
    after_one = path.read_text()
    status, text = run(env, "rotate", now=NOW + 3600)
    assert status == 0 and path.read_text() == after_one and "waiting  " in text and "add " not in text


def test_retire_disables_the_old_key_once_its_retention_has_passed(tmp_path: Path) -> None:
    env, path = key_file(tmp_path)
    [old] = FileKeySource(path).versions()
    run(env, "rotate")
    status, text = run(env, "retire", now=NOW + DAY + 18000 - 1)
    assert status == 0 and f"keep     {old.kid}  no longer signs since 2027-01-16 08:00:00 UTC" in text
    status, text = run(env, "retire", now=NOW + DAY + 18000)
    assert status == 0 and f"disable  {old.kid}" in text
    assert [(version.kid, version.enabled) for version in FileKeySource(path).versions()][1] == (old.kid, False)


def test_the_retention_follows_the_app_settings(tmp_path: Path) -> None:
    env, _ = key_file(tmp_path)
    status, text = run({**env, "BROKER_SESSION_MAX_AGE": "28800"}, "retire", "--dry-run")
    assert status == 0 and "retention 32400 s (the longest lifetime, session 28800 s" in text
    with pytest.raises(SystemExit, match="BROKER_ACCESS_TOKEN_TTL: must be a positive number of seconds"):
        run({**env, "BROKER_ACCESS_TOKEN_TTL": "two minutes"}, "retire")


def test_a_lead_shorter_than_the_caches_is_refused(tmp_path: Path) -> None:
    env, path = key_file(tmp_path)
    before = path.read_text()
    status, text = run(env, "rotate", "--lead", "600")
    assert status == 2 and text.startswith("Refused: a lead of 600 s is shorter") and path.read_text() == before


def test_without_a_key_store_the_tool_says_what_to_set() -> None:
    with pytest.raises(SystemExit, match="Set BROKER_KEYVAULT_URL and BROKER_SIGNING_KEY_NAME"):
        run({}, "rotate")


def test_an_unreadable_key_file_is_reported(tmp_path: Path) -> None:
    status, text = run({"BROKER_SIGNING_KEY_FILE": str(tmp_path / "absent.json")}, "rotate")
    assert status == 1 and text.startswith("The signing keys could not be read or written: cannot read")
