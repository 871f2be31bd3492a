"""The deployment scripts: shellcheck, --help against the options each script parses, the code package,
the Conditional Access request bodies, and the signing-key generator (checked with PyJWT)."""

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
from typing import Any

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


def test_deploy_parses_the_options_of_the_issue() -> None:
    assert parsed_options(DEPLOY) >= {"--resource-group", "--parameters", "--what-if", "--help"}
    assert parsed_options(CONDITIONAL_ACCESS) >= {"--app-id", "--enable", "--dry-run", "--help"}


def test_deploy_rejects_unknown_options_and_missing_arguments() -> None:
    unknown = run("bash", DEPLOY, "--bogus")
    assert unknown.returncode != 0 and "--bogus" in unknown.stderr
    missing = run("bash", DEPLOY, "--parameters", "infra/bicep/main.bicepparam")
    assert missing.returncode != 0 and "--resource-group" in missing.stderr
    no_value = run("bash", DEPLOY, "--resource-group")
    assert no_value.returncode != 0 and "--resource-group" in no_value.stderr


def test_deploy_checks_prerequisites_and_explains_permission_errors() -> None:
    text = DEPLOY.read_text(encoding="utf-8")
    assert "az account show" in text and "az bicep version" in text
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
# Conditional Access
# ---------------------------------------------------------------------------------------------

GRAPH = "https://graph.microsoft.com/v1.0"
POLICIES_URL = f"{GRAPH}/identity/conditionalAccess/policies"
CONTEXTS_URL = f"{GRAPH}/identity/conditionalAccess/authenticationContextClassReferences"
STRENGTHS_URL = f"{GRAPH}/policies/authenticationStrengthPolicies"
POLICY_PREFIX = "AC02-PSCSansCouture-Session4hAvecMFA-Global-ToutePlateforme"
CONTEXT_NAME = "PSC sans couture — authentification forte"
REPORT_ONLY = "enabledForReportingButNotEnforced"


def dry_run_requests(*args: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, body) of every request --dry-run prints: a `METHOD URL` line, then a JSON line."""
    result = run("bash", CONDITIONAL_ACCESS, "--dry-run", *args)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert len(lines) % 2 == 0, result.stdout
    requests = []
    for request_line, body_line in zip(lines[::2], lines[1::2], strict=True):
        method, url = request_line.split(" ", 1)
        requests.append((method, url, json.loads(body_line)))
    return requests


def dry_run_bodies(*args: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Strength, authentication context, app policy and context policy, in the order they must be applied."""
    requests = dry_run_requests(*args)
    assert [(method, url) for method, url, _ in requests] == [
        ("POST", STRENGTHS_URL),
        ("PATCH", f"{CONTEXTS_URL}/{requests[1][2].get('id')}"),
        ("POST", POLICIES_URL),
        ("POST", POLICIES_URL),
    ]
    strength, context, app_policy, context_policy = (body for _, _, body in requests)
    return strength, context, app_policy, context_policy


def assert_same_controls(policy: dict[str, Any]) -> None:
    assert policy["conditions"]["clientAppTypes"] == ["all"]
    assert set(policy["grantControls"]["authenticationStrength"]) == {"id"}
    assert policy["grantControls"]["operator"] == "OR"
    assert "builtInControls" not in policy["grantControls"]
    assert policy["sessionControls"]["signInFrequency"] == {
        "isEnabled": True,
        "type": "hours",
        "value": 4,
        "authenticationType": "primaryAndSecondaryAuthentication",
        "frequencyInterval": "timeBased",
    }


def test_conditional_access_creates_the_context_and_two_report_only_policies() -> None:
    strength, context, app_policy, context_policy = dry_run_bodies("--app-id", APP_ID)
    assert strength["displayName"] == "FA01-ProSantéConnect"
    assert set(strength["allowedCombinations"]) == {"windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"}

    # The authentication context the broker requires by default (Bicep entraRequiredAcrs = 'c1').
    assert {key: context[key] for key in ("id", "displayName", "isAvailable")} == {
        "id": "c1",
        "displayName": CONTEXT_NAME,
        "isAvailable": True,
    }
    assert context["description"]

    # One policy per target: Graph allows only one kind of target in the applications condition.
    assert app_policy["displayName"] == f"{POLICY_PREFIX}-App"
    assert context_policy["displayName"] == f"{POLICY_PREFIX}-Contexte"
    assert app_policy["conditions"]["applications"] == {"includeApplications": [APP_ID]}
    assert context_policy["conditions"]["applications"] == {"includeAuthenticationContextClassReferences": ["c1"]}
    for policy in (app_policy, context_policy):
        assert policy["state"] == REPORT_ONLY
        assert policy["conditions"]["users"] == {"includeUsers": ["All"], "excludeGroups": []}
        assert_same_controls(policy)
    assert app_policy["grantControls"] == context_policy["grantControls"]
    assert app_policy["sessionControls"] == context_policy["sessionControls"]


def test_conditional_access_enable_switches_both_policies_and_group_scoping_applies_to_both() -> None:
    pilot, breakglass = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee"
    _, _, app_policy, context_policy = dry_run_bodies(
        "--app-id", APP_ID, "--enable", "--include-group", pilot, "--exclude-group", breakglass
    )
    for policy in (app_policy, context_policy):
        assert policy["state"] == "enabled"
        assert policy["conditions"]["users"] == {"includeGroups": [pilot], "excludeGroups": [breakglass]}


def test_conditional_access_auth_context_option() -> None:
    _, context, app_policy, context_policy = dry_run_bodies(
        "--app-id", APP_ID, "--auth-context", "c12", "--policy-name", "AC07-Broker"
    )
    assert context["id"] == "c12"
    assert context_policy["conditions"]["applications"] == {"includeAuthenticationContextClassReferences": ["c12"]}
    assert (app_policy["displayName"], context_policy["displayName"]) == ("AC07-Broker-App", "AC07-Broker-Contexte")
    assert f"{CONTEXTS_URL}/c12" in run("bash", CONDITIONAL_ACCESS, "--dry-run", "--auth-context", "c12").stdout


def test_conditional_access_help_documents_the_auth_context() -> None:
    assert "--auth-context" in parsed_options(CONDITIONAL_ACCESS)
    result = run("bash", CONDITIONAL_ACCESS, "--help")
    assert result.returncode == 0, result.stderr
    assert re.search(r"--auth-context <cN>.*défaut : c1", result.stdout, re.DOTALL)
    assert "entraRequiredAcrs" in result.stdout
    assert "-App" in result.stdout and "-Contexte" in result.stdout


def test_conditional_access_rejects_bad_input() -> None:
    assert run("bash", CONDITIONAL_ACCESS).returncode != 0
    assert run("bash", CONDITIONAL_ACCESS, "--dry-run", "--app-id", "not-a-guid").returncode != 0
    assert run("bash", CONDITIONAL_ACCESS, "--dry-run", "--policy-name", 'a"b').returncode != 0
    for context in ("c0", "c26", "C1", "c1 ", "c01", "1", ""):
        result = run("bash", CONDITIONAL_ACCESS, "--dry-run", "--auth-context", context)
        assert result.returncode != 0 and "--auth-context" in result.stderr, context
    assert run("bash", CONDITIONAL_ACCESS, "--dry-run", "--auth-context").returncode != 0


# Without --dry-run, against a fake `az` that answers Graph from a list of rules and logs every call.
GRAPH_FAKE_AZ = """#!<python>
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AZ_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["account", "show"]:
    print("{}")
    sys.exit(0)
if args[:1] == ["rest"]:
    options = dict(zip(args[1::2], args[2::2]))
    with open(os.environ["FAKE_AZ_RULES"], encoding="utf-8") as rules:
        for method, url, query, out, status in json.load(rules):
            if method == options["--method"] and url in options["--url"] and query in options.get("--query", ""):
                print(out)
                if status:
                    print("ERROR: Forbidden", file=sys.stderr)
                sys.exit(status)
sys.exit(3)
"""


def run_conditional_access(
    tmp_path: Path, rules: list[tuple[str, str, str, str, int]], *args: str
) -> tuple[subprocess.CompletedProcess[str], list[tuple[str, str, dict[str, Any]]]]:
    """Run the script (not --dry-run) with a fake az: rules are (method, url part, --query part, stdout,
    exit status), the first match answers. Returns the result and the (method, url, body) of each write."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "az"
    fake.write_text(GRAPH_FAKE_AZ.replace("<python>", sys.executable, 1), encoding="utf-8")
    fake.chmod(0o755)
    (tmp_path / "rules.json").write_text(json.dumps(rules), encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AZ_LOG": str(tmp_path / "az.log"),
        "FAKE_AZ_RULES": str(tmp_path / "rules.json"),
    }
    result = run("bash", CONDITIONAL_ACCESS, "--app-id", APP_ID, *args, env=env)
    log = tmp_path / "az.log"
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    writes = []
    for call in calls:
        if call[:1] == ["rest"] and call[call.index("--method") + 1] != "GET":
            body = json.loads(call[call.index("--body") + 1])
            writes.append((call[call.index("--method") + 1], call[call.index("--url") + 1], body))
    return result, writes


NEW_TENANT = [
    ("GET", STRENGTHS_URL, "", "", 0),
    ("POST", STRENGTHS_URL, "", "strength-id", 0),
    ("GET", CONTEXTS_URL, "", "", 0),
    ("PATCH", f"{CONTEXTS_URL}/", "", "", 0),
    ("GET", POLICIES_URL, "", "", 0),
    ("POST", POLICIES_URL, "", "policy-id", 0),
]


def test_conditional_access_applies_context_before_the_policies(tmp_path: Path) -> None:
    result, writes = run_conditional_access(tmp_path, NEW_TENANT, "--enable")
    assert result.returncode == 0, result.stderr
    assert [(method, url) for method, url, _ in writes] == [
        ("POST", STRENGTHS_URL),
        ("PATCH", f"{CONTEXTS_URL}/c1"),
        ("POST", POLICIES_URL),
        ("POST", POLICIES_URL),
    ]
    context, app_policy, context_policy = (body for _, _, body in writes[1:])
    assert context["id"] == "c1" and context["isAvailable"] is True
    assert app_policy["conditions"]["applications"] == {"includeApplications": [APP_ID]}
    assert context_policy["conditions"]["applications"] == {"includeAuthenticationContextClassReferences": ["c1"]}
    for policy in (app_policy, context_policy):
        assert policy["state"] == "enabled"
        assert policy["grantControls"]["authenticationStrength"] == {"id": "strength-id"}
    assert "entraRequiredAcrs = 'c1'" in result.stderr


def test_conditional_access_updates_in_place_and_renames_the_former_app_policy(tmp_path: Path) -> None:
    rules = [
        ("GET", STRENGTHS_URL, "", "strength-id", 0),
        ("GET", CONTEXTS_URL, "", CONTEXT_NAME, 0),
        ("PATCH", f"{CONTEXTS_URL}/", "", "", 0),
        ("GET", POLICIES_URL, f"'{POLICY_PREFIX}-App'", "", 0),
        ("GET", POLICIES_URL, f"'{POLICY_PREFIX}'", "former-id", 0),
        ("GET", POLICIES_URL, f"'{POLICY_PREFIX}-Contexte'", "context-policy-id", 0),
        ("PATCH", f"{POLICIES_URL}/", "", "", 0),
    ]
    result, writes = run_conditional_access(tmp_path, rules)
    assert result.returncode == 0, result.stderr
    assert [(method, url) for method, url, _ in writes] == [
        ("PATCH", f"{CONTEXTS_URL}/c1"),
        ("PATCH", f"{POLICIES_URL}/former-id"),
        ("PATCH", f"{POLICIES_URL}/context-policy-id"),
    ]
    assert writes[1][2]["displayName"] == f"{POLICY_PREFIX}-App"
    assert {body["state"] for _, _, body in writes[1:]} == {REPORT_ONLY}


def test_conditional_access_refuses_a_context_used_for_something_else(tmp_path: Path) -> None:
    rules = [("GET", STRENGTHS_URL, "", "strength-id", 0), ("GET", CONTEXTS_URL, "", "Données RH sensibles", 0)]
    result, writes = run_conditional_access(tmp_path, rules)
    assert result.returncode != 0
    assert "Données RH sensibles" in result.stderr and "--auth-context" in result.stderr
    assert writes == []


def test_conditional_access_stops_and_explains_when_graph_refuses_the_context(tmp_path: Path) -> None:
    rules = [
        ("GET", STRENGTHS_URL, "", "strength-id", 0),
        ("GET", CONTEXTS_URL, "", "", 0),
        ("PATCH", f"{CONTEXTS_URL}/", "", "", 1),
    ]
    result, writes = run_conditional_access(tmp_path, rules)
    assert result.returncode != 0
    assert "contexte d'authentification c1" in result.stderr
    assert "Policy.ReadWrite.ConditionalAccess" in result.stderr
    assert [method for method, _, _ in writes] == ["PATCH"], "no policy without its context"


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


# ---------------------------------------------------------------------------------------------
# deploy.sh against a fake az (no Azure here): order of the steps, what-if, error explanations
# ---------------------------------------------------------------------------------------------

FAKE_AZ = r"""
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
state = Path(os.environ["FAKE_AZ_STATE"])
scenario = os.environ.get("FAKE_AZ_SCENARIO", "ok")
with open(state / "calls.jsonl", "a", encoding="utf-8") as log:
    names = ("PSC_CLIENT_SECRET", "DEPLOYER_PRINCIPAL_ID", "DEPLOYER_PRINCIPAL_TYPE")
    env = {name: os.environ.get(name) for name in names}
    log.write(json.dumps({"args": args, "env": env}) + "\n")
joined = " ".join(args)
outputs = {
    "issuer": "https://func-x.francecentral-01.azurewebsites.net",
    "pscRedirectUri": "https://func-x.francecentral-01.azurewebsites.net/pair/callback",
    "entraClientId": "11111111-2222-3333-4444-555555555555",
    "functionAppName": "func-x",
    "keyVaultName": "kvx",
    "signingKeyName": "broker-signing-key",
    "pscCredentialName": "psc-client-secret",
}
if args[:2] == ["account", "show"]:
    print("user" if "user.type" in joined else "Abonnement\t0000\tadmin@chu-exemple.fr")
elif args[:2] == ["bicep", "version"]:
    print("Bicep CLI version " + os.environ.get("FAKE_BICEP", "0.37.4") + " (abcdef)")
elif args[:2] == ["ad", "signed-in-user"]:
    print("aaaaaaaa-0000-0000-0000-000000000001")
elif args[:2] == ["group", "exists"]:
    print("false")
elif args[:3] == ["deployment", "group", "show"]:
    if not (state / "deployed").exists():
        sys.exit("ERROR: (DeploymentNotFound) Deployment not found")
    name = joined.split("properties.outputs.", 1)[1].split(".value", 1)[0]
    print(outputs[name])
elif args[:2] == ["resource", "show"]:
    sys.exit("ERROR: (ResourceNotFound) not found")
elif args[:3] == ["deployment", "group", "create"]:
    if scenario == "authorization-failed":
        sys.stderr.write("ERROR: (AuthorizationFailed) The client 'admin@chu-exemple.fr' does not have "
                         "authorization to perform action 'Microsoft.Authorization/roleAssignments/write'\n")
        sys.exit(1)
    if scenario == "graph-denied":
        sys.stderr.write("ERROR: Authorization_RequestDenied: Insufficient privileges to complete the operation.\n")
        sys.exit(1)
    (state / "deployed").touch()
    print("Succeeded")
elif args[:3] == ["keyvault", "secret", "set"]:
    key = json.loads(Path(args[args.index("--file") + 1]).read_text(encoding="utf-8"))
    (state / "key-kty").write_text(key["kty"] + " " + str("d" in key), encoding="utf-8")
    print("https://kvx.vault.azure.net/secrets/broker-signing-key/1")
elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
    assert Path(args[args.index("--src") + 1]).is_file()
    print("{}")
else:
    print("{}")
"""


@pytest.fixture
def fake_az(tmp_path: Path) -> dict[str, str]:
    """An `az` on PATH that records its calls and answers like Azure CLI would."""
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\n{FAKE_AZ}", encoding="utf-8")
    az.chmod(0o755)
    app = tmp_path / "app"
    app.mkdir()
    for name in ("function_app.py", "host.json", "requirements.txt"):
        (app / name).write_text("{}", encoding="utf-8")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_AZ_STATE": str(state),
        "APP": str(app),
    }


def az_calls(env: dict[str, str]) -> list[dict]:
    path = Path(env["FAKE_AZ_STATE"]) / "calls.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def deploy(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    arguments = ["--resource-group", "rg-test", "--parameters", "infra/bicep/main.bicepparam"]
    arguments += ["--source", env["APP"], "--python", sys.executable, *extra]
    return run("bash", DEPLOY, *arguments, env=env)


def command_index(calls: list[dict], *prefix: str) -> int:
    for index, call in enumerate(calls):
        if call["args"][: len(prefix)] == list(prefix):
            return index
    raise AssertionError(f"az {' '.join(prefix)} was not called: {[call['args'][:3] for call in calls]}")


def test_deploy_runs_the_steps_in_order(fake_az: dict[str, str]) -> None:
    env = {**fake_az, "PSC_CLIENT_SECRET": "secret-from-the-ans"}
    result = deploy(env)
    assert result.returncode == 0, result.stderr
    calls = az_calls(env)
    order = [
        command_index(calls, "bicep", "version"),
        command_index(calls, "group", "create"),
        command_index(calls, "deployment", "group", "create"),
        command_index(calls, "keyvault", "secret", "set"),
        command_index(calls, "functionapp", "deployment", "source", "config-zip"),
    ]
    assert order == sorted(order)
    create = calls[command_index(calls, "deployment", "group", "create")]
    assert "infra/bicep/main.bicepparam" in create["args"]
    assert create["env"]["PSC_CLIENT_SECRET"] == "secret-from-the-ans"
    assert create["env"]["DEPLOYER_PRINCIPAL_ID"] == "aaaaaaaa-0000-0000-0000-000000000001"
    assert create["env"]["DEPLOYER_PRINCIPAL_TYPE"] == "User"
    assert all("secret-from-the-ans" not in " ".join(call["args"]) for call in calls), "secret on a command line"
    publish = calls[command_index(calls, "functionapp", "deployment", "source", "config-zip")]
    assert publish["args"][publish["args"].index("--build-remote") + 1] == "true"
    secret_set = calls[command_index(calls, "keyvault", "secret", "set")]["args"]
    assert secret_set[secret_set.index("--name") + 1] == "broker-signing-key"
    assert (Path(env["FAKE_AZ_STATE"]) / "key-kty").read_text(encoding="utf-8") == "RSA True"
    assert "https://func-x.francecentral-01.azurewebsites.net/pair/callback" in result.stdout
    assert "conditional-access.sh --app-id 11111111-2222-3333-4444-555555555555 --auth-context c1" in result.stdout
    assert "--auth-context c1 --enable" in result.stdout


def test_deploy_what_if_changes_nothing(fake_az: dict[str, str]) -> None:
    result = deploy(fake_az, "--what-if")
    # The resource group does not exist in this fake subscription: what-if needs it and says so.
    assert result.returncode != 0 and "az group create" in result.stderr
    calls = [" ".join(call["args"]) for call in az_calls(fake_az)]
    for forbidden in ("group create", "deployment group create", "keyvault secret set", "config-zip"):
        assert not any(call.startswith(forbidden) for call in calls), forbidden


def test_deploy_first_run_needs_the_psc_secret(fake_az: dict[str, str]) -> None:
    result = deploy(fake_az)
    assert result.returncode != 0 and "PSC_CLIENT_SECRET" in result.stderr
    assert not any(call["args"][:3] == ["deployment", "group", "create"] for call in az_calls(fake_az))


@pytest.mark.parametrize(
    ("scenario", "explanation"),
    [("authorization-failed", "User Access"), ("graph-denied", "Cloud Application Administrator")],
)
def test_deploy_explains_missing_roles(fake_az: dict[str, str], scenario: str, explanation: str) -> None:
    env = {**fake_az, "PSC_CLIENT_SECRET": "x", "FAKE_AZ_SCENARIO": scenario}
    result = deploy(env)
    assert result.returncode != 0
    assert explanation in result.stderr


def test_deploy_refuses_an_old_bicep(fake_az: dict[str, str]) -> None:
    result = deploy({**fake_az, "FAKE_BICEP": "0.30.3"})
    assert result.returncode != 0 and "az bicep upgrade" in result.stderr and "0.30.3" in result.stderr
