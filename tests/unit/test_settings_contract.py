"""The settings contract: settings.py, local.settings.json.example and docs/design.md's names agree."""

from __future__ import annotations

import json
from pathlib import Path

from sanscouture.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_example_and_documented() -> None:
    example = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))
    values = {name for name in example["Values"] if name.startswith("BROKER_")}
    documented = {name for name in example["_documentation"] if name.startswith("BROKER_")}
    assert values == set(SETTING_NAMES)
    assert documented == set(SETTING_NAMES)


def test_the_example_clients_parse() -> None:
    from sanscouture.settings import parse_clients

    example = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))
    assert parse_clients(example["Values"]["BROKER_CLIENTS"], "BROKER_CLIENTS")[0].client_id == "portail-demo"
