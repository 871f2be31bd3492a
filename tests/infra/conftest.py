"""Shared by the infra tests: running the scripts, and `az` replaced by the stand-in of fake_az.py.

The stand-in answers Microsoft Graph from recorded v1.0 responses (fixtures/graph) and evaluates the
scripts' `--query` with jmespath, the library Azure CLI itself uses (pinned in requirements-dev.txt).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DEPLOY = INFRA / "deploy.sh"
CONDITIONAL_ACCESS = INFRA / "conditional-access.sh"
FAKE_AZ = Path(__file__).with_name("fake_az.py")
GRAPH_FIXTURES = Path(__file__).with_name("fixtures") / "graph"
EXAMPLE_PARAMETERS = INFRA / "bicep" / "main.bicepparam"

APP_ID = "11111111-2222-3333-4444-555555555555"
SP_ID = "22222222-3333-4444-5555-666666666666"
SIGNED_IN_USER = "aaaaaaaa-0000-0000-0000-000000000001"
VAULT_ID = "/subscriptions/0000/resourceGroups/rg-test/providers/Microsoft.KeyVault/vaults/kvx"
POLICY_PREFIX = "AC02-PSCSansCouture-Session4hAvecMFA-Global-ToutePlateforme"
STRENGTHS_PATH = "/policies/authenticationStrengthPolicies"
CONTEXTS_PATH = "/identity/conditionalAccess/authenticationContextClassReferences"
POLICIES_PATH = "/identity/conditionalAccess/policies"

TEMPLATE_OUTPUTS = {
    "issuer": "https://func-x.francecentral-01.azurewebsites.net",
    "pscRedirectUri": "https://func-x.francecentral-01.azurewebsites.net/pair/callback",
    "entraClientId": APP_ID,
    "entraServicePrincipalId": SP_ID,
    "functionAppName": "func-x",
    "keyVaultName": "kvx",
    "keyVaultId": VAULT_ID,
    "signingKeyName": "broker-signing-key",
    "pscCredentialName": "psc-client-secret",
}


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=ROOT
    )


def graph_fixture(name: str) -> dict[str, Any]:
    """A recorded Graph v1.0 list response (a fresh copy: tests change it)."""
    return copy.deepcopy(json.loads((GRAPH_FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def named(document: dict[str, Any], display_name: str) -> dict[str, Any]:
    """The object of a Graph list response with that display name."""
    (item,) = [item for item in document["value"] if item["displayName"] == display_name]
    return item


@dataclass
class AzStandin:
    """`az` on PATH for the scripts run with `env`; its world (JSON) and its call log."""

    env: dict[str, str]
    world_path: Path
    log_path: Path

    def world(self) -> dict[str, Any]:
        return json.loads(self.world_path.read_text(encoding="utf-8"))

    def save(self, world: dict[str, Any]) -> None:
        self.world_path.write_text(json.dumps(world, ensure_ascii=False, indent=2), encoding="utf-8")

    def graph(self, method: str, path: str, document: dict[str, Any] | None = None, **route: Any) -> None:
        """Answer `METHOD path` with `document`, or with route options (error=[reason, code, message];
        hang=True: it never answers, for the time-outs)."""
        world = self.world()
        world["graph"][f"{method} {path}"] = {"json": document, **route}
        self.save(world)

    def arm(self, **changes: Any) -> None:
        world = self.world()
        world["arm"].update(changes)
        self.save(world)

    def calls(self) -> list[list[str]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line)["args"] for line in self.log_path.read_text(encoding="utf-8").splitlines()]

    def logged(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines()]

    def rest_calls(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        """(method, url, body) of every `az rest` call, in order."""
        found = []
        for args in self.calls():
            if args[:1] == ["rest"]:
                method = args[args.index("--method") + 1]
                body = json.loads(args[args.index("--body") + 1]) if "--body" in args else None
                found.append((method, args[args.index("--url") + 1], body))
        return found

    def writes(self) -> list[tuple[str, str, dict[str, Any] | None]]:
        return [call for call in self.rest_calls() if call[0] != "GET"]


@pytest.fixture
def az(tmp_path: Path) -> Iterator[AzStandin]:
    python = sys.executable
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "az"
    shim.write_text(f"#!/bin/sh\nexec '{python}' '{FAKE_AZ}' \"$@\"\n", encoding="utf-8")
    shim.chmod(0o755)
    world = {
        "graph": {
            f"GET {STRENGTHS_PATH}": {"json": graph_fixture("authenticationStrengthPolicies")},
            f"GET {CONTEXTS_PATH}": {"json": graph_fixture("authenticationContextClassReferences")},
            f"GET {POLICIES_PATH}": {"json": graph_fixture("conditionalAccessPolicies")},
        },
        "arm": {
            "account": {
                "name": "Abonnement CHU",
                "id": "0000",
                "tenantId": "3c5b7d9f-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
                "user": {"name": "admin@chu-exemple.fr", "type": "user"},
            },
            "signed_in_user": SIGNED_IN_USER,
            "template_outputs": TEMPLATE_OUTPUTS,
        },
    }
    standin = AzStandin(
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "FAKE_AZ_WORLD": str(tmp_path / "world.json"),
            "FAKE_AZ_LOG": str(tmp_path / "az.log"),
        },
        world_path=tmp_path / "world.json",
        log_path=tmp_path / "az.log",
    )
    standin.env.pop("PSC_CLIENT_SECRET", None)
    standin.save(world)
    yield standin


def parameters_file(directory: Path, environment: str = "prod", **overrides: str) -> Path:
    """main.bicepparam with the example digital service replaced (deploy.sh refuses the example)."""
    text = EXAMPLE_PARAMETERS.read_text(encoding="utf-8")
    text = re.sub(r"sha256:0{64}", "sha256:" + "5e" * 32, text)
    text = text.replace("dpi.chu-exemple.fr", "dpi.chu-test.fr")
    text = re.sub(r"^param environmentName = '[^']*'$", f"param environmentName = '{environment}'", text, flags=re.M)
    for name, value in overrides.items():
        text = re.sub(rf"^param {name} = .*$", f"param {name} = {value}", text, flags=re.MULTILINE)
    path = directory / f"{environment}.bicepparam"
    path.write_text(text, encoding="utf-8")
    return path
