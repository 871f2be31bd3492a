"""The monthly rotation timer (functions/keys.py): off unless BROKER_KEY_ROTATION_ENABLED, logs no key material."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import function_app
from functions._wiring import Services
from functions.keys import ROTATION_SCHEDULE
from functions.keys import run_rotation
from sandbox.host import functions_of
from sanscouture.adapters.keyfile import ensure_key_file
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import make_settings


def wired(tmp_path: Path, *, enabled: bool) -> tuple[Services, Path]:
    path = tmp_path / "signing-keys.json"
    ensure_key_file(path)
    return Services(make_settings(signing_key_file=str(path), key_rotation_enabled=enabled)), path


def test_the_timer_runs_at_three_in_the_morning_utc_on_the_first_of_each_month() -> None:
    timers = {f.get_function_name(): f.get_trigger() for f in functions_of(function_app.app)
              if f.get_trigger().get_binding_name() == "timerTrigger"}
    assert timers["rotate_signing_key"].schedule == ROTATION_SCHEDULE == "0 0 3 1 * *"
    assert timers["rotate_signing_key"].run_on_startup is False


def test_off_by_default_it_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    services, path = wired(tmp_path, enabled=False)
    before = path.read_text()
    with caplog.at_level(logging.INFO, logger="sanscouture.keys.rotation"):
        assert run_rotation(services, clock=lambda: NOW) is None
    assert path.read_text() == before
    assert "BROKER_KEY_ROTATION_ENABLED=false" in caplog.text


def test_enabled_it_rotates_and_logs_kids_and_dates_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    services, path = wired(tmp_path, enabled=True)
    with caplog.at_level(logging.INFO, logger="sanscouture.keys.rotation"):
        result = run_rotation(services, clock=lambda: NOW)
    assert result is not None and result.added is not None
    keys = json.loads(path.read_text())["keys"]
    assert keys[0]["kid"] == result.added.kid and keys[0]["nbf"] == NOW + 86400
    [record] = [r for r in caplog.records if r.getMessage() == "signing key rotation done"]
    assert record.added_kid == result.added.kid and record.retention_s == 18000  # type: ignore[attr-defined]
    logged = caplog.text + repr(vars(record))
    assert all(key[member] not in logged for key in keys for member in ("d", "p", "q", "dp", "dq", "qi"))


def test_a_failure_is_logged_then_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    services, path = wired(tmp_path, enabled=True)
    path.write_text("not json")
    with caplog.at_level(logging.ERROR, logger="sanscouture.keys.rotation"), pytest.raises(ValueError):
        run_rotation(services, clock=lambda: NOW)
    [record] = caplog.records
    assert record.getMessage() == "signing key rotation failed" and "is not JSON" in record.error_detail  # type: ignore[attr-defined]
