"""The deployment scripts as programs: shellcheck, strict mode, --help against the options each script
parses, the code package, and the signing-key generator (checked with PyJWT). Their behaviour against
Azure and Microsoft Graph: test_deploy.py and test_conditional_access.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jwt
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DEPLOY = INFRA / "deploy.sh"
CONDITIONAL_ACCESS = INFRA / "conditional-access.sh"
SIGNING_KEY = INFRA / "signing_key.py"
SCRIPTS = sorted(INFRA.glob("*.sh"))
APP_ID = "11111111-2222-3333-4444-555555555555"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=120, env=env, check=False, cwd=ROOT
    )


def parsed_options(script: Path) -> set[str]:
    """Every option in the `case` patterns of the script's parse_args function."""
    text = script.read_text(encoding="utf-8")
    function = re.search(r"^parse_args\(\) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert function, f"{script.name}: no parse_args() function"
    options: set[str] = set()
    for pattern in re.findall(r"^\s*([-\w|]+)\)\s*$", function.group(1), re.MULTILINE):
        options.update(option for option in pattern.split("|") if option.startswith("-"))
    return options


# ---------------------------------------------------------------------------------------------
# Shell scripts
# ---------------------------------------------------------------------------------------------


def test_scripts_exist_and_are_executable() -> None:
    assert {script.name for script in SCRIPTS} >= {"deploy.sh", "conditional-access.sh"}
    for script in [*SCRIPTS, SIGNING_KEY]:
        assert script.stat().st_mode & stat.S_IXUSR, f"{script.name} is not executable"
        assert script.read_text(encoding="utf-8").startswith("#!/usr/bin/env "), f"{script.name}: shebang"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_scripts_are_strict(script: Path) -> None:
    assert "\nset -euo pipefail\n" in script.read_text(encoding="utf-8")


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck is not installed (apt-get install -y shellcheck; `make` installs it)",
)
def test_shellcheck_is_clean() -> None:
    result = run("shellcheck", *SCRIPTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.name)
def test_help_documents_every_option_the_script_parses(script: Path) -> None:
    options = parsed_options(script)
    assert {"-h", "--help"} <= options
    result = run("bash", script, "--help")
    assert result.returncode == 0, result.stderr
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout), f"{script.name}: {option}"


def test_the_scripts_parse_the_options_of_the_issues() -> None:
    assert parsed_options(DEPLOY) >= {"--resource-group", "--parameters", "--what-if", "--group", "--assign-only"}
    assert parsed_options(CONDITIONAL_ACCESS) >= {"--app-id", "--enable", "--report-only", "--dry-run", "--check"}


def test_deploy_help_documents_the_group_assignment_and_the_order_of_the_steps() -> None:
    result = run("bash", DEPLOY, "--help")
    assert result.returncode == 0, result.stderr
    help_text = re.sub(r"\s+", " ", result.stdout)
    assert "--group <object id> Groupe Entra de professionnels à affecter à l'application d'entreprise" in help_text
    assert "(répétable)" in help_text
    assert "personne ne peut se connecter tant qu'aucun groupe n'est affecté" in help_text
    assert (
        "Ordre : deploy.sh, conditional-access.sh, conditional-access.sh --enable, "
        "deploy.sh --assign-only --group <id>, conditional-access.sh --check." in help_text
    )


def test_deploy_rejects_unknown_options_and_missing_arguments() -> None:
    unknown = run("bash", DEPLOY, "--bogus")
    assert unknown.returncode != 0 and "--bogus" in unknown.stderr
    missing = run("bash", DEPLOY, "--parameters", "infra/bicep/main.bicepparam")
    assert missing.returncode != 0 and "--resource-group" in missing.stderr
    no_value = run("bash", DEPLOY, "--resource-group")
    assert no_value.returncode != 0 and "--resource-group" in no_value.stderr


def test_deploy_checks_prerequisites_and_explains_permission_errors() -> None:
    text = DEPLOY.read_text(encoding="utf-8")
    assert "account show" in text and "bicep version" in text
    assert not re.search(r"^[^#\n]*account set", text, re.MULTILINE), "each call names its subscription instead"
    assert 'MIN_BICEP_VERSION="0.36.1"' in text
    for marker in ("AuthorizationFailed", "Authorization_RequestDenied"):
        assert marker in text, f"deploy.sh must explain {marker}"
    assert "deployment group what-if" in text and "deployment group create" in text
    assert "--build-remote true" in text
    assert "signing_key.py" in text


def test_deploy_package_respects_funcignore(tmp_path: Path) -> None:
    source = tmp_path / "app"
    kept = [
        "function_app.py",
        "host.json",
        "requirements.txt",
        "sanscouture/__init__.py",
        "sanscouture/pages/templates/base.html",
        "functions/health.py",
    ]
    dropped = [
        "local.settings.json",
        "local.settings.json.example",
        "README.md",
        "pyproject.toml",
        ".gitignore",
        ".venv/lib/site.py",
        ".data/keys.json",
        "node_modules/azurite/index.js",
        "tests/test_x.py",
        "infra/deploy.sh",
        "sandbox/run.py",
        "docs/deploy.md",
        "sanscouture/__pycache__/settings.cpython-311.pyc",
        "functions/__pycache__/health.cpython-311.pyc",
    ]
    for name in kept + dropped:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x", encoding="utf-8")
    shutil.copy(ROOT / ".funcignore", source / ".funcignore")
    package = tmp_path / "app.zip"

    result = run("bash", DEPLOY, "--package-only", package, "--source", source, "--python", sys.executable)

    assert result.returncode == 0, result.stderr
    names = set(zipfile.ZipFile(package).namelist())
    assert set(kept) <= names
    assert not names & set(dropped), sorted(names & set(dropped))


def test_deploy_package_refuses_a_directory_without_the_app(tmp_path: Path) -> None:
    result = run("bash", DEPLOY, "--package-only", tmp_path / "x.zip", "--source", tmp_path)
    assert result.returncode != 0 and "host.json" in result.stderr


# ---------------------------------------------------------------------------------------------
# Signing key
# ---------------------------------------------------------------------------------------------


def b64url_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def new_jwk(*args: str) -> dict[str, str]:
    result = run(sys.executable, SIGNING_KEY, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_signing_key_is_a_private_rsa_jwk_pyjwt_can_sign_with() -> None:
    jwk = new_jwk()
    assert set(jwk) == {"kty", "kid", "alg", "use", "n", "e", "d", "p", "q", "dp", "dq", "qi"}
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert b64url_int(jwk["n"]).bit_length() == 3072
    assert b64url_int(jwk["p"]) * b64url_int(jwk["q"]) == b64url_int(jwk["n"])

    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert jwk["kid"] == thumbprint, "kid is the RFC 7638 thumbprint"

    private = jwt.PyJWK(jwk)
    token = jwt.encode(
        {"sub": "899700218896", "aud": "rp"}, private.key, algorithm="RS256", headers={"kid": jwk["kid"]}
    )
    public = jwt.PyJWK({name: jwk[name] for name in ("kty", "kid", "alg", "use", "n", "e")})
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    assert jwt.decode(token, public.key, algorithms=["RS256"], audience="rp")["sub"] == "899700218896"


def test_signing_keys_differ_and_accept_options(tmp_path: Path) -> None:
    first, second = new_jwk("--bits", "2048"), new_jwk("--bits", "2048", "--kid", "2026-01")
    assert first["n"] != second["n"] and first["kid"] != second["kid"]
    assert second["kid"] == "2026-01"
    assert b64url_int(first["n"]).bit_length() == 2048

    output = tmp_path / "key.json"
    assert run(sys.executable, SIGNING_KEY, "--bits", "2048", "--output", output).returncode == 0
    if os.name == "posix":
        assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert json.loads(output.read_text(encoding="utf-8"))["kty"] == "RSA"
    again = run(sys.executable, SIGNING_KEY, "--output", output)
    assert again.returncode != 0 and "already exists" in again.stderr
