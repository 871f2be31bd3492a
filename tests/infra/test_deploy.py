"""infra/deploy.sh against the `az` stand-in of conftest.py (no Azure here): the order of the steps, the
deployment records named after the environment, a Key Vault role that lives only while the first
signing key is written, every ARM call in the chosen subscription and bounded in time, the example
parameter file refused, and groups assigned to the enterprise application only once the
authentication context is protected by an enabled Conditional Access policy (fail closed)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import APP_ID
from tests.infra.conftest import DEPLOY
from tests.infra.conftest import EXAMPLE_PARAMETERS
from tests.infra.conftest import POLICIES_PATH
from tests.infra.conftest import POLICY_PREFIX
from tests.infra.conftest import SIGNED_IN_USER
from tests.infra.conftest import SP_ID
from tests.infra.conftest import TEMPLATE_OUTPUTS
from tests.infra.conftest import VAULT_ID
from tests.infra.conftest import AzStandin
from tests.infra.conftest import graph_fixture
from tests.infra.conftest import named
from tests.infra.conftest import parameters_file
from tests.infra.conftest import run

GRAPH = "https://graph.microsoft.com/v1.0"
GROUP = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ASSIGNMENTS_PATH = f"/servicePrincipals/{SP_ID}/appRoleAssignedTo"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
# Commands that go to Azure Resource Manager: each must name the subscription.
ARM_COMMANDS = ("account show", "group", "deployment group", "resource show", "role assignment", "functionapp")
LAST_STEP = "infra/conditional-access.sh --check --auth-context c1"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A minimal Function App source tree for --source."""
    source = tmp_path / "app"
    source.mkdir()
    for name in ("function_app.py", "host.json", "requirements.txt"):
        (source / name).write_text("{}", encoding="utf-8")
    return source


def deploy(
    az: AzStandin, app: Path, *extra: str, parameters: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    parameters = parameters or parameters_file(app.parent)
    arguments = ["--resource-group", "rg-test", "--parameters", str(parameters)]
    arguments += ["--source", str(app), "--python", sys.executable, *extra]
    return run("bash", DEPLOY, *arguments, env={**az.env, **env})


def command(args: list[str]) -> str:
    words = []
    for word in args:
        if word.startswith("-"):
            break
        words.append(word)
    return " ".join(words)


def index_of(az: AzStandin, name: str) -> int:
    commands = [command(args) for args in az.calls()]
    assert name in commands, f"az {name} was not called: {commands}"
    return commands.index(name)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def calls_of(az: AzStandin, name: str) -> list[list[str]]:
    return [args for args in az.calls() if command(args) == name]


def unprotect(az: AzStandin) -> None:
    document = graph_fixture("conditionalAccessPolicies")
    named(document, f"{POLICY_PREFIX}-Contexte")["state"] = "enabledForReportingButNotEnforced"
    az.graph("GET", POLICIES_PATH, document)


def assignments(*principals: str) -> dict[str, Any]:
    """A recorded GET /servicePrincipals/{id}/appRoleAssignedTo response."""
    return {
        "@odata.context": f"{GRAPH}/$metadata#servicePrincipals('{SP_ID}')/appRoleAssignedTo",
        "value": [
            {
                "id": f"assignment-{index}",
                "deletedDateTime": None,
                "appRoleId": "00000000-0000-0000-0000-000000000000",
                "createdDateTime": "2025-03-20T10:02:11.4312553Z",
                "principalDisplayName": "Professionnels de santé",
                "principalId": principal,
                "principalType": "Group",
                "resourceDisplayName": "PSC sans couture (prod)",
                "resourceId": SP_ID,
            }
            for index, principal in enumerate(principals)
        ],
    }


def with_group(az: AzStandin, assigned: tuple[str, ...] = ()) -> None:
    az.graph("GET", f"/groups/{GROUP}", {"id": GROUP, "displayName": "Professionnels de santé"})
    az.graph("GET", ASSIGNMENTS_PATH, assignments(*assigned))


# ---------------------------------------------------------------------------------------------
# A first deployment
# ---------------------------------------------------------------------------------------------


def test_a_first_deployment_runs_the_steps_in_order(az: AzStandin, app: Path) -> None:
    az.graph("GET", ASSIGNMENTS_PATH, assignments())
    result = deploy(az, app, PSC_CLIENT_SECRET="secret-from-the-ans")

    assert result.returncode == 0, result.stderr
    order = [
        index_of(az, "bicep version"),
        index_of(az, "group create"),
        index_of(az, "deployment group create"),
        index_of(az, "role assignment create"),
        index_of(az, "keyvault secret set"),
        index_of(az, "role assignment delete"),
        index_of(az, "functionapp deployment source config-zip"),
    ]
    assert order == sorted(order)
    (create,) = calls_of(az, "deployment group create")
    assert option(create, "--name") == "psc-sans-couture-prod"
    assert option(create, "--parameters").endswith("prod.bicepparam")
    (logged,) = [call for call in az.logged() if command(call["args"]) == "deployment group create"]
    assert logged["env"]["PSC_CLIENT_SECRET"] == "secret-from-the-ans"
    assert all("secret-from-the-ans" not in " ".join(args) for args in az.calls()), "secret on a command line"
    (publish,) = calls_of(az, "functionapp deployment source config-zip")
    assert option(publish, "--build-remote") == "true"
    (secret_set,) = calls_of(az, "keyvault secret set")
    assert option(secret_set, "--name") == "broker-signing-key"
    assert az.world()["arm"]["written_key"] == {"kty": "RSA", "private": True}
    assert "https://func-x.francecentral-01.azurewebsites.net/pair/callback" in result.stdout


def test_the_deployer_holds_key_vault_secrets_officer_only_while_the_first_key_is_written(
    az: AzStandin, app: Path
) -> None:
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    (create,) = calls_of(az, "role assignment create")
    assert option(create, "--scope") == VAULT_ID
    assert option(create, "--role") == SECRETS_OFFICER
    assert option(create, "--assignee-object-id") == SIGNED_IN_USER
    assert option(create, "--assignee-principal-type") == "User"
    (delete,) = calls_of(az, "role assignment delete")
    assert option(delete, "--ids").startswith(VAULT_ID + "/providers/Microsoft.Authorization/roleAssignments/")
    assert az.world()["arm"]["role_assignments"] == [], "no standing role left behind"
    assert "Rôle temporaire Key Vault Secrets Officer retiré." in result.stderr


def test_the_temporary_role_is_removed_even_when_the_key_cannot_be_written(az: AzStandin, app: Path) -> None:
    az.arm(fail={"keyvault secret set": "ERROR: (BadParameter) The request is invalid."})
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode == 1
    assert "impossible d'écrire la clé de signature" in result.stderr
    assert az.world()["arm"]["role_assignments"] == []


def test_a_rerun_with_the_key_in_place_grants_no_role(az: AzStandin, app: Path) -> None:
    az.arm(secrets=["kvx/broker-signing-key", "kvx/psc-client-secret"], group_exists=True)
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    assert calls_of(az, "role assignment create") == [] and calls_of(az, "keyvault secret set") == []


def test_a_standing_secrets_officer_assignment_is_reused_and_flagged_not_deleted(az: AzStandin, app: Path) -> None:
    standing = {
        "id": f"{VAULT_ID}/providers/Microsoft.Authorization/roleAssignments/legacy",
        "principalId": SIGNED_IN_USER,
        "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_OFFICER}",
        "scope": VAULT_ID,
    }
    az.arm(role_assignments=[standing])
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    assert calls_of(az, "role assignment create") == [] and calls_of(az, "role assignment delete") == []
    assert f"az role assignment delete --ids {standing['id']}" in result.stderr


def test_every_arm_call_names_the_subscription_and_none_changes_the_default(az: AzStandin, app: Path) -> None:
    result = deploy(az, app, "--subscription", "sub-hopital", PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    calls = az.calls()
    assert not any(command(args) == "account set" for args in calls)
    arm_calls = [args for args in calls if command(args).startswith(ARM_COMMANDS)]
    assert {command(args) for args in arm_calls} >= {
        "account show",
        "group exists",
        "group create",
        "deployment group create",
        "resource show",
        "role assignment create",
        "role assignment delete",
        "functionapp deployment source config-zip",
    }
    for args in arm_calls:
        assert option(args, "--subscription") == "sub-hopital", args
    assert "--subscription sub-hopital" in result.stdout, "the commands printed at the end name it too"


# ---------------------------------------------------------------------------------------------
# The parameter file and the environment
# ---------------------------------------------------------------------------------------------


def test_the_example_parameter_file_is_refused_before_any_azure_call(az: AzStandin, app: Path) -> None:
    result = deploy(az, app, parameters=EXAMPLE_PARAMETERS, PSC_CLIENT_SECRET="x")
    assert result.returncode == 1
    assert "service numérique d'exemple" in result.stderr and "clients" in result.stderr
    assert az.calls() == []


def test_two_environments_of_one_resource_group_keep_their_own_records_and_vault(az: AzStandin, app: Path) -> None:
    prod = {"outputs": {**TEMPLATE_OUTPUTS, "keyVaultName": "kvprod"}, "parameters": {"environmentName": "prod"}}
    az.arm(group_exists=True, deployments={"psc-sans-couture-prod": prod}, secrets=["kvprod/psc-client-secret"])

    # First deployment of "recette": prod's vault holds a PSC secret, but it is not recette's.
    recette = parameters_file(app.parent, "recette")
    first = deploy(az, app, parameters=recette)
    assert first.returncode == 1
    assert "premier déploiement de l'environnement « recette »" in first.stderr
    assert "PSC_CLIENT_SECRET" in first.stderr
    names = {option(args, "--name") for args in az.calls() if command(args) == "deployment group show"}
    assert names == {"psc-sans-couture-recette"}, "prod's deployment record is never read"

    result = deploy(az, app, parameters=recette, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    assert set(az.world()["arm"]["deployments"]) == {"psc-sans-couture-prod", "psc-sans-couture-recette"}
    assert az.world()["arm"]["deployments"]["psc-sans-couture-prod"] == prod, "prod's record is untouched"


def test_a_deployment_name_of_another_environment_is_refused(az: AzStandin, app: Path) -> None:
    prod = {"outputs": TEMPLATE_OUTPUTS, "parameters": {"environmentName": "prod"}}
    az.arm(group_exists=True, deployments={"psc-sans-couture-prod": prod})
    recette = parameters_file(app.parent, "recette")
    result = deploy(az, app, "--name", "psc-sans-couture-prod", parameters=recette, PSC_CLIENT_SECRET="x")
    assert result.returncode == 1
    assert "a été fait pour l'environnement « prod »" in result.stderr
    assert calls_of(az, "deployment group create") == []


def test_what_if_changes_nothing_and_says_what_it_does_not_preview(az: AzStandin, app: Path) -> None:
    az.arm(group_exists=True)
    result = deploy(az, app, "--what-if", "--group", GROUP)
    assert result.returncode == 0, result.stderr
    (what_if,) = calls_of(az, "deployment group what-if")
    assert option(what_if, "--name") == "psc-sans-couture-prod"
    for forbidden in ("group create", "deployment group create", "keyvault secret set", "role assignment create"):
        assert calls_of(az, forbidden) == [], forbidden
    assert calls_of(az, "functionapp deployment source config-zip") == [] and az.writes() == []
    assert "ne montre pas l'application Entra" in result.stderr


def test_what_if_needs_the_resource_group(az: AzStandin, app: Path) -> None:
    result = deploy(az, app, "--what-if")
    assert result.returncode != 0 and "az group create" in result.stderr
    assert calls_of(az, "group create") == []


# ---------------------------------------------------------------------------------------------
# Groups: assigned only once the authentication context is protected
# ---------------------------------------------------------------------------------------------


def test_groups_are_assigned_once_an_enabled_policy_protects_the_context(az: AzStandin, app: Path) -> None:
    with_group(az)
    result = deploy(az, app, "--group", GROUP, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    (post,) = az.writes()
    assert post == (
        "POST",
        f"{GRAPH}{ASSIGNMENTS_PATH}",
        {"principalId": GROUP, "resourceId": SP_ID, "appRoleId": "00000000-0000-0000-0000-000000000000"},
    )
    assert "PROTÉGÉ : le contexte c1" in result.stderr
    assert "Groupe « Professionnels de santé »" in result.stderr and ": affecté." in result.stderr
    assert "Groupes affectés :" in result.stdout
    commands = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("infra/")]
    assert commands == [LAST_STEP], "the policies are enabled and the groups assigned: only the check is left"


def test_groups_are_not_assigned_while_the_context_is_unprotected(az: AzStandin, app: Path) -> None:
    with_group(az)
    unprotect(az)
    result = deploy(az, app, "--group", GROUP, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    assert az.writes() == [], "no assignment: nobody can sign in yet"
    assert "NON PROTÉGÉ" in result.stderr
    assert "Groupes demandés (--group) NON affectés" in result.stdout
    assert f"--assign-only --group {GROUP}" in result.stdout


def test_an_assigned_group_is_not_assigned_twice(az: AzStandin, app: Path) -> None:
    with_group(az, assigned=(GROUP,))
    result = deploy(az, app, "--group", GROUP, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    assert az.writes() == []
    assert "déjà affecté" in result.stderr


def test_assign_only_assigns_without_redeploying(az: AzStandin, app: Path) -> None:
    az.arm(deployments={"psc-sans-couture-prod": {"outputs": TEMPLATE_OUTPUTS, "parameters": {}}})
    with_group(az)
    result = deploy(az, app, "--assign-only", "--group", GROUP)
    assert result.returncode == 0, result.stderr
    assert [method for method, _, _ in az.writes()] == ["POST"]
    for forbidden in ("bicep version", "group create", "deployment group create", "keyvault secret set"):
        assert calls_of(az, forbidden) == [], forbidden
    assert LAST_STEP in result.stderr


def test_assign_only_fails_while_the_context_is_unprotected(az: AzStandin, app: Path) -> None:
    az.arm(deployments={"psc-sans-couture-prod": {"outputs": TEMPLATE_OUTPUTS, "parameters": {}}})
    with_group(az)
    unprotect(az)
    result = deploy(az, app, "--assign-only", "--group", GROUP)
    assert result.returncode == 1
    assert "aucun groupe affecté" in result.stderr and "--enable" in result.stderr
    assert az.writes() == []


def test_groups_must_be_object_ids(az: AzStandin, app: Path) -> None:
    result = deploy(az, app, "--group", "Professionnels")
    assert result.returncode == 1 and "--group attend l'object id" in result.stderr
    assert az.calls() == []


def test_the_final_message_says_nobody_signs_in_before_the_policies_are_enabled(az: AzStandin, app: Path) -> None:
    az.graph("GET", ASSIGNMENTS_PATH, assignments())
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode == 0, result.stderr
    message = re.sub(r"\s+", " ", result.stdout)
    assert "Personne ne peut se connecter avant que les stratégies d'accès conditionnel soient ACTIVES" in message
    enable = f"infra/conditional-access.sh --app-id {APP_ID} --auth-context c1 --exclude-group"
    assert enable in message and "--enable" in message
    commands = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("infra/")]
    assert commands[0].startswith(enable) and not commands[0].endswith("--enable")
    assert commands[1].startswith(enable) and commands[1].endswith("--enable")
    assert "--assign-only --group" in commands[2]
    assert commands[-1] == LAST_STEP, "the check is the last step"
    assert "Affectations de l'application d'entreprise : 0." in result.stderr


# ---------------------------------------------------------------------------------------------
# Failures: explained, bounded in time
# ---------------------------------------------------------------------------------------------


def test_a_hanging_deployment_is_stopped_by_the_time_out(az: AzStandin, app: Path) -> None:
    az.arm(hang=["deployment group create"])
    started = time.monotonic()
    result = deploy(az, app, PSC_CLIENT_SECRET="x", DEPLOY_TIMEOUT="2")
    assert time.monotonic() - started < 60
    assert result.returncode == 1
    assert "Délai dépassé" in result.stderr and "2 s" in result.stderr and "DEPLOY_TIMEOUT" in result.stderr


def test_the_first_run_needs_the_psc_secret(az: AzStandin, app: Path) -> None:
    result = deploy(az, app)
    assert result.returncode != 0 and "PSC_CLIENT_SECRET" in result.stderr
    assert calls_of(az, "deployment group create") == []


@pytest.mark.parametrize(
    ("error", "explanation"),
    [
        (
            "ERROR: (AuthorizationFailed) The client 'admin@chu-exemple.fr' does not have authorization to "
            "perform action 'Microsoft.Authorization/roleAssignments/write'",
            "User Access",
        ),
        (
            "ERROR: Authorization_RequestDenied: Insufficient privileges to complete the operation.",
            "Cloud Application Administrator",
        ),
    ],
)
def test_missing_roles_are_explained(az: AzStandin, app: Path, error: str, explanation: str) -> None:
    az.arm(fail={"deployment group create": error})
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode != 0
    assert explanation in result.stderr


def test_an_old_bicep_is_refused(az: AzStandin, app: Path) -> None:
    az.arm(bicep="0.30.3")
    result = deploy(az, app, PSC_CLIENT_SECRET="x")
    assert result.returncode != 0 and "az bicep upgrade" in result.stderr and "0.30.3" in result.stderr


def test_with_private_key_jwt_towards_psc_no_secret_is_asked_and_ans_gets_the_jwks_url(
    az: AzStandin, app: Path
) -> None:
    az.graph("GET", ASSIGNMENTS_PATH, assignments())
    parameters = parameters_file(app.parent, pscTokenAuthMethod="'private_key_jwt'")
    result = deploy(az, app, parameters=parameters)  # first deployment, no PSC_CLIENT_SECRET
    assert result.returncode == 0, result.stderr
    assert "aucun secret client" in result.stderr
    assert f"{TEMPLATE_OUTPUTS['issuer']}/jwks" in result.stdout

    refused = deploy(az, app, parameters=parameters, PSC_CLIENT_SECRET="x")
    assert refused.returncode == 1 and "PSC_CLIENT_SECRET doit rester vide" in refused.stderr
