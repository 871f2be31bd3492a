"""infra/conditional-access.sh: the request bodies (--offline), then its behaviour against recorded
Microsoft Graph v1.0 responses (the `az` stand-in of conftest.py): a re-run keeps each policy's state,
an existing authentication strength is reused only if it allows exactly the expected methods, and
--check says the authentication context is protected only when an ENABLED policy with that strength
targets it — Entra issues a requested context that no enforced policy applies to
(MicrosoftDocs/entra-docs, docs/identity-platform/developer-guide-conditional-access-authentication-context.md)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.infra.conftest import APP_ID
from tests.infra.conftest import CONDITIONAL_ACCESS
from tests.infra.conftest import CONTEXTS_PATH
from tests.infra.conftest import POLICIES_PATH
from tests.infra.conftest import POLICY_PREFIX
from tests.infra.conftest import STRENGTHS_PATH
from tests.infra.conftest import AzStandin
from tests.infra.conftest import graph_fixture
from tests.infra.conftest import named
from tests.infra.conftest import run

GRAPH = "https://graph.microsoft.com/v1.0"
POLICIES_URL = GRAPH + POLICIES_PATH
CONTEXTS_URL = GRAPH + CONTEXTS_PATH
STRENGTHS_URL = GRAPH + STRENGTHS_PATH
CONTEXT_NAME = "PSC sans couture — authentification forte"
REPORT_ONLY = "enabledForReportingButNotEnforced"
EXPECTED = {"windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor"}
APP_POLICY = f"{POLICY_PREFIX}-App"
CONTEXT_POLICY = f"{POLICY_PREFIX}-Contexte"
STRENGTH_ID = "5a3c6d2e-8b41-4f0e-9c27-3e1d4b6a7f90"  # FA01-ProSantéConnect in the fixtures
APP_POLICY_ID = "7d2a8c41-6e3b-4f59-a0d1-2c9e5b7f3a18"
CONTEXT_POLICY_ID = "e4f1b9a2-0c7d-4a63-8b25-9d1e6f4c2a70"
PILOT_GROUP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
FORBIDDEN = ["Forbidden", "Authorization_RequestDenied", "Insufficient privileges to complete the operation."]


def printed_requests(stdout: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, url, body) of every request --dry-run / --offline prints: `METHOD URL`, then the JSON."""
    lines = [line for line in stdout.splitlines() if line and not line.startswith("#")]
    assert len(lines) % 2 == 0, stdout
    requests = []
    for request_line, body_line in zip(lines[::2], lines[1::2], strict=True):
        method, url = request_line.split(" ", 1)
        requests.append((method, url, json.loads(body_line)))
    return requests


def offline_bodies(*args: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Strength, authentication context, app policy and context policy, in the order they must be applied."""
    result = run("bash", CONDITIONAL_ACCESS, "--offline", *args)
    assert result.returncode == 0, result.stderr
    requests = printed_requests(result.stdout)
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


def ca(az: AzStandin, *args: str) -> Any:
    return run("bash", CONDITIONAL_ACCESS, *args, env=az.env)


def set_policy(az: AzStandin, display_name: str, **changes: Any) -> dict[str, Any]:
    document = graph_fixture("conditionalAccessPolicies")
    named(document, display_name).update(changes)
    az.graph("GET", POLICIES_PATH, document)
    return document


def without_broker_policies(az: AzStandin) -> None:
    document = graph_fixture("conditionalAccessPolicies")
    document["value"] = [item for item in document["value"] if not item["displayName"].startswith(POLICY_PREFIX)]
    az.graph("GET", POLICIES_PATH, document)


def gets_only(az: AzStandin) -> bool:
    return all(method == "GET" for method, _, _ in az.rest_calls())


# ---------------------------------------------------------------------------------------------
# Request bodies (--offline: no call at all)
# ---------------------------------------------------------------------------------------------


def test_offline_prints_the_context_and_two_report_only_policies() -> None:
    strength, context, app_policy, context_policy = offline_bodies("--app-id", APP_ID)
    assert strength["displayName"] == "FA01-ProSantéConnect"
    assert set(strength["allowedCombinations"]) == EXPECTED

    # The authentication context the broker requires by default (Bicep entraRequiredAcrs = 'c1').
    assert {key: context[key] for key in ("id", "displayName", "isAvailable")} == {
        "id": "c1",
        "displayName": CONTEXT_NAME,
        "isAvailable": True,
    }
    assert context["description"]

    # One policy per target: Graph allows only one kind of target in the applications condition.
    assert app_policy["displayName"] == APP_POLICY
    assert context_policy["displayName"] == CONTEXT_POLICY
    assert app_policy["conditions"]["applications"] == {"includeApplications": [APP_ID]}
    assert context_policy["conditions"]["applications"] == {"includeAuthenticationContextClassReferences": ["c1"]}
    for policy in (app_policy, context_policy):
        assert policy["state"] == REPORT_ONLY
        assert policy["conditions"]["users"] == {"includeUsers": ["All"], "excludeGroups": []}
        assert_same_controls(policy)
    assert app_policy["grantControls"] == context_policy["grantControls"]
    assert app_policy["sessionControls"] == context_policy["sessionControls"]


def test_offline_enable_and_group_scoping_apply_to_both_policies() -> None:
    pilot, breakglass = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee"
    _, _, app_policy, context_policy = offline_bodies(
        "--app-id", APP_ID, "--enable", "--include-group", pilot, "--exclude-group", breakglass
    )
    for policy in (app_policy, context_policy):
        assert policy["state"] == "enabled"
        assert policy["conditions"]["users"] == {"includeGroups": [pilot], "excludeGroups": [breakglass]}


def test_offline_auth_context_option() -> None:
    _, context, app_policy, context_policy = offline_bodies(
        "--app-id", APP_ID, "--auth-context", "c12", "--policy-name", "AC07-Broker"
    )
    assert context["id"] == "c12"
    assert context_policy["conditions"]["applications"] == {"includeAuthenticationContextClassReferences": ["c12"]}
    assert (app_policy["displayName"], context_policy["displayName"]) == ("AC07-Broker-App", "AC07-Broker-Contexte")


def test_help_documents_the_auth_context_the_state_keeping_and_the_check() -> None:
    result = run("bash", CONDITIONAL_ACCESS, "--help")
    assert result.returncode == 0, result.stderr
    assert re.search(r"--auth-context <cN>.*défaut : c1", result.stdout, re.DOTALL)
    assert "entraRequiredAcrs" in result.stdout
    assert "-App" in result.stdout and "-Contexte" in result.stdout
    assert "CONSERVANT leur état" in result.stdout and "--report-only" in result.stdout
    assert re.search(r"--check\s+Vérifie, en lecture seule", result.stdout)


def test_bad_input_is_refused() -> None:
    assert run("bash", CONDITIONAL_ACCESS).returncode != 0
    assert run("bash", CONDITIONAL_ACCESS, "--offline", "--app-id", "not-a-guid").returncode != 0
    assert run("bash", CONDITIONAL_ACCESS, "--offline", "--policy-name", 'a"b').returncode != 0
    for context in ("c0", "c26", "C1", "c1 ", "c01", "1", ""):
        result = run("bash", CONDITIONAL_ACCESS, "--offline", "--auth-context", context)
        assert result.returncode != 0 and "--auth-context" in result.stderr, context
    assert run("bash", CONDITIONAL_ACCESS, "--offline", "--auth-context").returncode != 0
    both = run("bash", CONDITIONAL_ACCESS, "--offline", "--enable", "--report-only")
    assert both.returncode != 0 and "--enable et --report-only" in both.stderr
    modes = run("bash", CONDITIONAL_ACCESS, "--check", "--dry-run")
    assert modes.returncode != 0 and "ne vont pas ensemble" in modes.stderr


# ---------------------------------------------------------------------------------------------
# Re-runs keep each policy's state (--dry-run reads, then prints the writes it would send)
# ---------------------------------------------------------------------------------------------


def test_dry_run_of_a_rerun_keeps_the_enabled_policies_enabled_and_reuses_the_strength(az: AzStandin) -> None:
    result = ca(az, "--app-id", APP_ID, "--dry-run")

    assert result.returncode == 0, result.stderr
    requests = printed_requests(result.stdout)
    assert [(method, url) for method, url, _ in requests] == [
        ("PATCH", f"{CONTEXTS_URL}/c1"),
        ("PATCH", f"{POLICIES_URL}/{APP_POLICY_ID}"),
        ("PATCH", f"{POLICIES_URL}/{CONTEXT_POLICY_ID}"),
    ], "the existing strength is reused, nothing is created"
    for _, _, policy in requests[1:]:
        assert policy["state"] == "enabled"
        assert policy["grantControls"]["authenticationStrength"] == {"id": STRENGTH_ID}
    assert "état conservé : active (enabled)" in result.stdout
    assert "méthodes conformes" in result.stdout
    assert gets_only(az), "--dry-run sends no write"


@pytest.mark.parametrize(
    ("initial", "flag", "expected"),
    [
        ("enabled", "--report-only", REPORT_ONLY),
        (REPORT_ONLY, "--enable", "enabled"),
        ("disabled", None, "disabled"),
        (REPORT_ONLY, None, REPORT_ONLY),
    ],
)
def test_dry_run_changes_a_state_only_when_asked(az: AzStandin, initial: str, flag: str | None, expected: str) -> None:
    document = set_policy(az, APP_POLICY, state=initial)
    named(document, CONTEXT_POLICY)["state"] = initial
    az.graph("GET", POLICIES_PATH, document)

    result = ca(az, "--app-id", APP_ID, "--dry-run", *([flag] if flag else []))

    assert result.returncode == 0, result.stderr
    states = [body["state"] for _, url, body in printed_requests(result.stdout) if url.startswith(POLICIES_URL)]
    assert states == [expected, expected]
    assert gets_only(az)


def test_dry_run_creates_missing_policies_in_report_only_mode(az: AzStandin) -> None:
    without_broker_policies(az)
    result = ca(az, "--app-id", APP_ID, "--dry-run")
    assert result.returncode == 0, result.stderr
    requests = printed_requests(result.stdout)
    assert [(method, url) for method, url, _ in requests] == [
        ("PATCH", f"{CONTEXTS_URL}/c1"),
        ("POST", POLICIES_URL),
        ("POST", POLICIES_URL),
    ]
    assert [body["state"] for _, _, body in requests[1:]] == [REPORT_ONLY, REPORT_ONLY]
    assert gets_only(az)


# ---------------------------------------------------------------------------------------------
# An existing authentication strength must allow exactly the expected methods
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["--dry-run", None])
@pytest.mark.parametrize(
    "combinations",
    [
        ["windowsHelloForBusiness", "fido2", "x509CertificateMultiFactor", "password,sms"],  # weaker
        ["fido2"],  # different
    ],
)
def test_an_existing_strength_with_other_methods_is_refused(
    az: AzStandin, mode: str | None, combinations: list[str]
) -> None:
    strengths = graph_fixture("authenticationStrengthPolicies")
    named(strengths, "FA01-ProSantéConnect")["allowedCombinations"] = combinations
    az.graph("GET", STRENGTHS_PATH, strengths)

    result = ca(az, "--app-id", APP_ID, *([mode] if mode else []))

    assert result.returncode == 1
    assert "n'autorise pas\nexactement les méthodes attendues" in result.stderr
    assert "attendues : fido2 windowsHelloForBusiness x509CertificateMultiFactor" in result.stderr
    assert f"trouvées  : {' '.join(sorted(combinations))}" in result.stderr
    assert "--strength-name" in result.stderr
    assert printed_requests(result.stdout) == [] and az.writes() == []


def test_a_missing_strength_is_created_with_the_expected_methods(az: AzStandin) -> None:
    strengths = graph_fixture("authenticationStrengthPolicies")
    strengths["value"] = [item for item in strengths["value"] if item["policyType"] == "builtIn"]
    az.graph("GET", STRENGTHS_PATH, strengths)
    result = ca(az, "--app-id", APP_ID, "--dry-run")
    assert result.returncode == 0, result.stderr
    method, url, body = printed_requests(result.stdout)[0]
    assert (method, url) == ("POST", STRENGTHS_URL)
    assert set(body["allowedCombinations"]) == EXPECTED
    # Only custom strengths are looked at: the built-in "Phishing resistant MFA" is not taken for FA01.
    (get_strengths,) = [url for method, url, _ in az.rest_calls() if STRENGTHS_PATH in url]
    assert get_strengths.endswith("?$filter=policyType%20eq%20'custom'")


# ---------------------------------------------------------------------------------------------
# --check: protected only by an ENABLED policy with the expected strength, for everyone
# ---------------------------------------------------------------------------------------------


def test_check_reports_a_context_bound_to_an_enabled_policy_with_the_strength_as_protected(az: AzStandin) -> None:
    result = ca(az, "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"PROTÉGÉ : le contexte c1 est lié à la stratégie active « {CONTEXT_POLICY} »")
    assert "Exclusions : 0 utilisateur(s), 1 groupe(s)" in result.stderr
    assert gets_only(az), "--check is read-only"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"state": REPORT_ONLY}, "rapport seulement : elle n'impose rien"),
        ({"state": "disabled"}, "désactivée : elle n'impose rien"),
    ],
)
def test_check_reports_a_context_whose_policy_is_not_enforced_as_unprotected(
    az: AzStandin, changes: dict[str, str], reason: str
) -> None:
    set_policy(az, CONTEXT_POLICY, **changes)
    result = ca(az, "--check")
    assert result.returncode == 1
    assert result.stdout.startswith("NON PROTÉGÉ : aucune stratégie active")
    assert f"« {CONTEXT_POLICY} » : ne protège pas c1 ({reason})" in result.stderr
    assert "--enable" in result.stderr


def test_check_reports_a_context_no_policy_targets_as_unprotected(az: AzStandin) -> None:
    without_broker_policies(az)
    result = ca(az, "--check")
    assert result.returncode == 1
    assert result.stdout.startswith("NON PROTÉGÉ")
    assert "Entra délivre alors c1 à qui le demande, sans rien exiger" in result.stderr


def test_check_reports_a_context_whose_policy_is_missing_from_the_tenant_as_unprotected(az: AzStandin) -> None:
    contexts = graph_fixture("authenticationContextClassReferences")
    contexts["value"] = [item for item in contexts["value"] if item["id"] != "c1"]
    az.graph("GET", CONTEXTS_PATH, contexts)
    without_broker_policies(az)
    result = ca(az, "--check")
    assert result.returncode == 1
    assert "Contexte d'authentification c1 : absent du tenant." in result.stderr


def builtin_mfa_strength() -> dict[str, Any]:
    return named(graph_fixture("authenticationStrengthPolicies"), "Multifactor authentication")


@pytest.mark.parametrize(
    ("grant", "users", "reason"),
    [
        ({"authenticationStrength": builtin_mfa_strength()}, None, "force d'authentification deviceBasedPush"),
        ({"builtInControls": ["mfa"]}, None, "un autre contrôle (mfa) suffit à la place de la force"),
        (None, {"includeUsers": [], "includeGroups": [PILOT_GROUP]}, "tous les utilisateurs"),
    ],
    ids=["weaker-strength", "or-mfa", "pilot-group"],
)
def test_check_reports_an_enabled_policy_that_does_not_require_the_strength_of_everyone_as_unprotected(
    az: AzStandin, grant: dict[str, Any] | None, users: dict[str, Any] | None, reason: str
) -> None:
    document = graph_fixture("conditionalAccessPolicies")
    policy = named(document, CONTEXT_POLICY)
    policy["grantControls"].update(grant or {})
    policy["conditions"]["users"].update(users or {})
    az.graph("GET", POLICIES_PATH, document)
    result = ca(az, "--check")
    assert result.returncode == 1
    assert result.stdout.startswith("NON PROTÉGÉ")
    assert reason in result.stderr


def test_check_looks_at_the_context_it_is_given(az: AzStandin) -> None:
    result = ca(az, "--check", "--auth-context", "c2")
    assert result.returncode == 1, "no policy targets c2 in the recorded tenant"
    assert "« Données RH sensibles »" in result.stderr


# ---------------------------------------------------------------------------------------------
# Applying (writes sent through the stand-in)
# ---------------------------------------------------------------------------------------------


def test_a_first_run_creates_the_strength_then_the_context_then_report_only_policies(az: AzStandin) -> None:
    strengths = graph_fixture("authenticationStrengthPolicies")
    strengths["value"] = [item for item in strengths["value"] if item["policyType"] == "builtIn"]
    az.graph("GET", STRENGTHS_PATH, strengths)
    az.graph("GET", CONTEXTS_PATH, {"value": []})
    without_broker_policies(az)
    az.graph("POST", STRENGTHS_PATH, {"id": "strength-id", "displayName": "FA01-ProSantéConnect"})

    result = ca(az, "--app-id", APP_ID)

    assert result.returncode == 0, result.stderr
    writes = az.writes()
    assert [(method, url) for method, url, _ in writes] == [
        ("POST", STRENGTHS_URL),
        ("PATCH", f"{CONTEXTS_URL}/c1"),
        ("POST", POLICIES_URL),
        ("POST", POLICIES_URL),
    ]
    for _, _, policy in writes[2:]:
        assert policy is not None
        assert policy["state"] == REPORT_ONLY
        assert policy["grantControls"]["authenticationStrength"] == {"id": "strength-id"}
    assert "ne sont pas toutes\nactives" in result.stderr
    assert f"--app-id {APP_ID} --auth-context c1 --enable" in result.stderr
    assert "--check --auth-context c1" in result.stderr


def test_a_rerun_with_enable_updates_in_place_and_points_to_the_check(az: AzStandin) -> None:
    result = ca(az, "--app-id", APP_ID, "--enable")
    assert result.returncode == 0, result.stderr
    assert [(method, url) for method, url, _ in az.writes()] == [
        ("PATCH", f"{CONTEXTS_URL}/c1"),
        ("PATCH", f"{POLICIES_URL}/{APP_POLICY_ID}"),
        ("PATCH", f"{POLICIES_URL}/{CONTEXT_POLICY_ID}"),
    ]
    assert "Les deux stratégies sont ACTIVES" in result.stderr
    assert "infra/conditional-access.sh --check --auth-context c1" in result.stderr


def test_the_app_policy_of_a_former_version_is_renamed_not_duplicated(az: AzStandin) -> None:
    set_policy(az, APP_POLICY, displayName=POLICY_PREFIX, state=REPORT_ONLY)
    result = ca(az, "--app-id", APP_ID)
    assert result.returncode == 0, result.stderr
    _, url, body = az.writes()[1]
    assert url == f"{POLICIES_URL}/{APP_POLICY_ID}"
    assert body is not None and body["displayName"] == APP_POLICY and body["state"] == REPORT_ONLY


def test_a_context_used_for_something_else_is_refused(az: AzStandin) -> None:
    contexts = graph_fixture("authenticationContextClassReferences")
    contexts["value"][0]["displayName"] = "Données RH sensibles"
    az.graph("GET", CONTEXTS_PATH, contexts)
    result = ca(az, "--app-id", APP_ID)
    assert result.returncode != 0
    assert "Données RH sensibles" in result.stderr and "--auth-context" in result.stderr
    assert az.writes() == []


def test_a_refused_context_stops_before_any_policy_and_is_explained(az: AzStandin) -> None:
    az.graph("PATCH", f"{CONTEXTS_PATH}/c1", error=FORBIDDEN)
    result = ca(az, "--app-id", APP_ID)
    assert result.returncode != 0
    assert "contexte d'authentification c1" in result.stderr
    assert "Policy.ReadWrite.ConditionalAccess" in result.stderr and "--offline" in result.stderr
    assert [method for method, _, _ in az.writes()] == ["PATCH"], "no policy without its context"


def test_the_app_id_is_read_from_this_environment_s_deployment(az: AzStandin) -> None:
    az.arm(deployments={"psc-sans-couture-recette": {"outputs": {"entraClientId": APP_ID}, "parameters": {}}})
    result = ca(az, "--resource-group", "rg-test", "--environment", "recette", "--subscription", "sub-1", "--dry-run")
    assert result.returncode == 0, result.stderr
    (show,) = [args for args in az.calls() if args[:3] == ["deployment", "group", "show"]]
    assert show[show.index("--name") + 1] == "psc-sans-couture-recette"
    assert show[show.index("--subscription") + 1] == "sub-1"
    assert not any(args[:2] == ["account", "set"] for args in az.calls())


@pytest.mark.parametrize("hanging", ["account show", "graph"])
def test_a_hanging_az_call_is_stopped_by_the_time_out(az: AzStandin, hanging: str) -> None:
    """Every az call is bounded by AZ_TIMEOUT, as in deploy.sh (which runs --check)."""
    if hanging == "graph":
        az.graph("GET", POLICIES_PATH, graph_fixture("conditionalAccessPolicies"), hang=True)
    else:
        az.arm(hang=[hanging])
    started = time.monotonic()
    result = run("bash", CONDITIONAL_ACCESS, "--check", env={**az.env, "AZ_TIMEOUT": "2"})
    assert time.monotonic() - started < 60
    assert result.returncode == 1
    assert "Délai dépassé" in result.stderr and "2 s" in result.stderr and "AZ_TIMEOUT" in result.stderr
    assert result.stdout == ""  # no verdict: the script stops
