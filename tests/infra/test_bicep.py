"""The Bicep templates, checked offline: no Bicep CLI or Azure here, so pycep parses them to JSON.

pycep (pycep-parser 0.7.1) reads `extension` statements, lambdas and loops. Two limits shape
this test and the templates:
- it keeps only the LAST nested child resource of an object, so the templates declare child
  resources at top level with `parent:` (the Graph federated credential, the only child of its
  application, stays nested as the Graph extension's samples do);
- identifiers and string literals both come out as plain strings (`location: location` and
  `location: 'location'` look the same), so references are checked against the names declared in
  the same file, and property chains (`a.b.c`) are rebuilt from nested accessors.
`.bicepparam` files are not Bicep modules (pycep cannot read `using`): main.bicepparam is checked
with regular expressions.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

from sanscouture import settings as broker_settings
from sanscouture.adapters.entra import SCOPES
from sanscouture.adapters.tables import TABLE_NAMES
from sanscouture.backchannel import POISON_QUEUE
from sanscouture.backchannel import QUEUE

ROOT = Path(__file__).resolve().parents[2]
BICEP_DIR = ROOT / "infra" / "bicep"
MAIN = BICEP_DIR / "main.bicep"
MODULES = BICEP_DIR / "modules"
BICEP_FILES = sorted(BICEP_DIR.rglob("*.bicep"))

# App settings that are the platform's, not the broker's (Functions host, telemetry, azure-identity).
PLATFORM_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
        # The host's half of the queue trigger's identity-based connection BROKER_QUEUES (the broker
        # reads BROKER_QUEUES__queueServiceUri, one of SETTING_NAMES).
        "BROKER_QUEUES__credential",
        "BROKER_QUEUES__clientId",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "AZURE_CLIENT_ID",
        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
        "PYTHON_THREADPOOL_THREAD_COUNT",
    }
)

# Settings Flex Consumption rejects or ignores (functions-app-settings.md, "Flex Consumption plan
# deprecations"; flex-consumption-plan.md).
FLEX_FORBIDDEN_SETTINGS = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_WORKER_RUNTIME_VERSION",
        "FUNCTIONS_EXTENSION_VERSION",
        "FUNCTIONS_MAX_HTTP_CONCURRENCY",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTSHARE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "WEBSITE_TIME_ZONE",
        "TZ",
        "WEBSITE_LOAD_CERTIFICATES",
        "AzureWebJobsStorage",  # a connection string: the identity-based __ form is used
    }
)
# Site properties Flex Consumption rejects or ignores ("Flex Consumption plan deprecations",
# https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations):
# under properties or properties.siteConfig, compared case-insensitively (the table writes LinuxFxVersion).
FLEX_FORBIDDEN_SITE_PROPERTIES = frozenset(
    name.lower()
    for name in (
        "ftpsState",  # "FTPS not supported"
        "use32BitWorkerProcess",
        "isReserved",
        "IsXenon",
        "windowsFxVersion",
        "alwaysOn",
        "preWarmedInstanceCount",
        "functionAppScaleLimit",
        "containerSize",
        "javaVersion",
        "powerShellVersion",
        "netFrameworkVersion",
        "linuxFxVersion",
    )
)
OPTIONAL_CLAIMS_FILE = BICEP_DIR / "entra-optional-claims.json"
DEPLOY_SCRIPT = ROOT / "infra" / "deploy.sh"

# Built-in roles the broker may use (least privilege), by role-definition GUID
# (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
KNOWN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

# Resource types with an Azure location (tracked resources) and those without (child/extension
# resources). A new type must be put in one of the two sets, on purpose.
TRACKED_TYPES = frozenset(
    {
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.Storage/storageAccounts",
        "Microsoft.KeyVault/vaults",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.Insights/components",
        "Microsoft.Web/serverfarms",
        "Microsoft.Web/sites",
        "Microsoft.Insights/scheduledQueryRules",
        "Microsoft.Insights/workbooks",
    }
)
# Global resources: their location is the literal 'global'.
GLOBAL_TYPES = frozenset({"Microsoft.Insights/actionGroups"})
LOCATIONLESS_TYPES = frozenset(
    {
        "Microsoft.Storage/storageAccounts/blobServices",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Storage/storageAccounts/tableServices",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
        "Microsoft.Storage/storageAccounts/queueServices",
        "Microsoft.Storage/storageAccounts/queueServices/queues",
        "Microsoft.KeyVault/vaults/secrets",
        "Microsoft.Web/sites/config",
        "Microsoft.Web/sites/basicPublishingCredentialsPolicies",
        "Microsoft.Authorization/roleAssignments",
    }
)
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# What sanscouture/adapters/entra.py asks for (MSAL adds openid and profile), nothing more.
DELEGATED_SCOPES = {"openid", "profile", *SCOPES}
FIC_ISSUER = "${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0"
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_INTERPOLATED = re.compile(r"\$\{\s*([A-Za-z_]\w*)")


# ---------------------------------------------------------------------------------------------
# Reading pycep's JSON
# ---------------------------------------------------------------------------------------------


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return BicepParser().parse(file_path=path)


def module_file(name: str) -> dict[str, Any]:
    return parse(MODULES / name)


def rtype(resource: dict[str, Any]) -> str:
    """Resource type without api version (pycep keeps `@v1.0` on nested Graph children)."""
    return resource["type"].split("@", 1)[0]


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource's own object, through `[for ...]` loops and `if (...)` conditions."""
    config = resource["config"]
    while isinstance(config.get("config"), dict) and ("loop_type" in config or "condition" in config):
        config = config["config"]
    return config


def dotted(expr: Any) -> str | None:
    """`a.b.c` for an identifier or a chain of property accessors, else None."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "property_accessor":
        operands = expr["operator"]["operands"]
        head, tail = dotted(operands["operand_1"]), dotted(operands["operand_2"])
        if head and tail:
            return f"{head}.{tail}"
    return None


def identifiers(expr: Any) -> set[str]:
    """Every name an expression may reference (identifiers and `${name...}` interpolations)."""
    found: set[str] = set()
    if isinstance(expr, str):
        if _IDENTIFIER.match(expr):
            found.add(expr)
        found.update(_INTERPOLATED.findall(expr))
    elif isinstance(expr, dict):
        for value in expr.values():
            found |= identifiers(value)
    elif isinstance(expr, list):
        for value in expr:
            found |= identifiers(value)
    return found


def secure_params(parsed: dict[str, Any]) -> set[str]:
    return {
        name
        for name, param in parsed.get("parameters", {}).items()
        if any(decorator.get("type") == "secure" for decorator in param.get("decorators", []))
    }


def resources_of(parsed: dict[str, Any], type_name: str, *, existing: bool | None = False) -> dict[str, Any]:
    return {
        symbol: resource
        for symbol, resource in parsed.get("resources", {}).items()
        if rtype(resource) == type_name and (existing is None or resource["existing"] == existing)
    }


def only(mapping: dict[str, Any], what: str) -> tuple[str, Any]:
    assert len(mapping) == 1, f"expected exactly one {what}, found {sorted(mapping)}"
    return next(iter(mapping.items()))


def module_call(file_name: str) -> tuple[str, dict[str, Any]]:
    """(symbol, config) of the module of main.bicep that deploys modules/<file_name>."""
    calls = {
        symbol: module["config"]
        for symbol, module in parse(MAIN).get("modules", {}).items()
        if module["detail"]["path"] == f"modules/{file_name}"
    }
    return only(calls, f"module call of {file_name}")


def module_output(expr: Any) -> tuple[str, Any]:
    """Follow `<module>.outputs.<name>` in main.bicep to (module file name, output value)."""
    chain = dotted(expr)
    assert chain and chain.count(".") == 2 and ".outputs." in chain, f"not a module output: {expr!r}"
    symbol, _, output = chain.split(".")
    module = parse(MAIN)["modules"][symbol]
    file_name = module["detail"]["path"].removeprefix("modules/")
    return file_name, module_file(file_name)["outputs"][output]["value"]


def passed_to(file_name: str, param: str) -> Any:
    """The value main.bicep gives to parameter `param` of modules/<file_name>."""
    return module_call(file_name)[1]["params"][param]


def app_settings() -> dict[str, Any]:
    _, resource = only(
        {
            symbol: resource
            for symbol, resource in resources_of(module_file("appsettings.bicep"), "Microsoft.Web/sites/config").items()
            if body(resource)["name"] == "appsettings"
        },
        "appsettings resource",
    )
    return body(resource)["properties"]


def loaded_json_file(file_name: str, expr: Any) -> Path:
    """The file that `loadJsonContent('<path>')` in modules/<file_name> reads (paths are relative to the module)."""
    assert isinstance(expr, dict), f"not a loadJsonContent call: {expr!r}"
    function = expr.get("function", {})
    assert function.get("type") == "load_json_content", f"not a loadJsonContent call: {expr!r}"
    parameters = function["parameters"]
    assert parameters["json_path"] is None, "the whole file, not a part of it"
    return (MODULES / file_name).parent.joinpath(parameters["file_path"]).resolve()


def assert_resource_property(file_name: str, expr: Any, resource_type: str, path: str) -> None:
    """`expr` is `<symbol>.<path>` where <symbol> is a resource of `resource_type` in that file."""
    chain = dotted(expr)
    assert chain, f"{expr!r} is not a property reference"
    symbol, _, rest = chain.partition(".")
    resource = module_file(file_name)["resources"].get(symbol)
    assert resource is not None, f"{symbol} is not a resource of {file_name}"
    assert rtype(resource) == resource_type, f"{symbol} is a {rtype(resource)}, expected {resource_type}"
    assert rest == path, f"{chain}: expected {symbol}.{path}"


# ---------------------------------------------------------------------------------------------
# Parsing, modules, extension
# ---------------------------------------------------------------------------------------------


def test_the_expected_files_exist() -> None:
    names = {path.relative_to(BICEP_DIR).as_posix() for path in BICEP_FILES}
    assert {"main.bicep", "modules/entra-app.bicep", "modules/appsettings.bicep", "modules/rbac.bicep"} <= names
    assert (BICEP_DIR / "main.bicepparam").is_file()
    assert (BICEP_DIR / "bicepconfig.json").is_file()


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.relative_to(BICEP_DIR).as_posix())
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = parse(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_main_uses_every_module_once_and_only_local_modules() -> None:
    modules = parse(MAIN)["modules"]
    used = sorted(module["detail"]["path"] for module in modules.values())
    assert all(module["type"] == "local" for module in modules.values()), "registry modules cannot be checked offline"
    assert used == sorted(f"modules/{path.name}" for path in MODULES.glob("*.bicep"))
    for path in BICEP_FILES:
        assert not re.search(r"['\"]br[:/]", path.read_text(encoding="utf-8")), f"{path.name} pulls a registry module"


def test_graph_extension_is_configured_where_graph_resources_are_declared() -> None:
    config = json.loads((BICEP_DIR / "bicepconfig.json").read_text(encoding="utf-8"))
    reference = config["extensions"]["microsoftGraphV1"]
    assert reference.startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")
    version = tuple(int(part) for part in reference.rsplit(":", 1)[1].split("."))
    assert version >= (1, 0, 0)
    for path in BICEP_FILES:
        parsed = parse(path)
        if any(rtype(resource).startswith("Microsoft.Graph/") for resource in parsed.get("resources", {}).values()):
            assert "microsoftGraphV1" in parsed.get("extensions", {}), f"{path.name}: extension microsoftGraphV1"


# ---------------------------------------------------------------------------------------------
# Location and tags
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.relative_to(BICEP_DIR).as_posix())
def test_tracked_resources_have_tags_and_a_location_parameter(path: Path) -> None:
    parsed = parse(path)
    params = set(parsed.get("parameters", {}))
    for symbol, resource in parsed.get("resources", {}).items():
        kind = rtype(resource)
        if resource["existing"] or kind.startswith("Microsoft.Graph/"):
            continue  # not deployed here / Graph objects have no Azure location nor tags
        assert kind in TRACKED_TYPES | LOCATIONLESS_TYPES | GLOBAL_TYPES, f"{path.name}: classify {kind} in this test"
        config = body(resource)
        if kind in GLOBAL_TYPES:
            assert config.get("location") == "global" and config.get("tags") in params, f"{path.name}:{symbol}"
        elif kind in TRACKED_TYPES:
            assert config.get("location") in params, f"{path.name}:{symbol} location must be a parameter"
            assert config.get("tags") in params, f"{path.name}:{symbol} tags must be a parameter"
        else:
            assert "location" not in config, f"{path.name}:{symbol} ({kind}) has no location"


def test_main_passes_its_location_and_tags_to_every_module() -> None:
    main_params = parse(MAIN)["parameters"]
    assert "location" in main_params and "tags" in main_params
    for module in parse(MAIN)["modules"].values():
        declared = module_file(module["detail"]["path"].removeprefix("modules/")).get("parameters", {})
        for name in ("location", "tags"):
            if name in declared:
                assert module["config"]["params"].get(name) == name, f"{module['detail']['path']}: {name}: {name}"


# ---------------------------------------------------------------------------------------------
# App settings: the contract with sanscouture/settings.py
# ---------------------------------------------------------------------------------------------


def test_app_settings_are_exactly_the_settings_the_code_reads_plus_the_platform_names() -> None:
    expected = (set(broker_settings.SETTING_NAMES) - broker_settings.SANDBOX_ONLY_SETTINGS) | PLATFORM_SETTINGS
    actual = set(app_settings())
    assert not expected - actual, f"missing in Bicep: {sorted(expected - actual)}"
    assert not actual - expected, f"unknown to the code: {sorted(actual - expected)}"


def test_no_sandbox_only_or_flex_forbidden_setting_and_no_other_settings_block() -> None:
    actual = set(app_settings())
    assert not actual & broker_settings.SANDBOX_ONLY_SETTINGS
    assert not actual & FLEX_FORBIDDEN_SETTINGS
    for path in BICEP_FILES:
        for symbol, resource in resources_of(parse(path), "Microsoft.Web/sites").items():
            site_config = body(resource).get("properties", {}).get("siteConfig", {})
            assert "appSettings" not in site_config, f"{path.name}:{symbol}: settings live in appsettings.bicep only"


def test_the_site_sets_no_property_flex_consumption_rejects() -> None:
    sites = [
        (path, symbol, body(resource))
        for path in BICEP_FILES
        for symbol, resource in resources_of(parse(path), "Microsoft.Web/sites").items()
    ]
    assert sites, "no Microsoft.Web/sites resource found"
    for path, symbol, site in sites:
        properties = site.get("properties", {})
        site_config = properties.get("siteConfig", {})
        used = {name.lower() for name in properties} | {name.lower() for name in site_config}
        rejected = used & FLEX_FORBIDDEN_SITE_PROPERTIES
        assert not rejected, f"{path.name}:{symbol}: {sorted(rejected)}"
        # Checked one by one against the deprecations table and Microsoft's Flex samples: keep it that way.
        assert set(site_config) == {"minTlsVersion"}, f"{path.name}:{symbol}: new siteConfig property, check it on Flex"


def test_app_settings_come_from_the_right_resources() -> None:
    values = app_settings()
    for name in (
        "AzureWebJobsStorage__clientId",
        "AZURE_CLIENT_ID",
        "BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID",
        "BROKER_QUEUES__clientId",
    ):
        assert_resource_property(
            "appsettings.bicep", values[name], "Microsoft.ManagedIdentity/userAssignedIdentities", "properties.clientId"
        )
    assert_resource_property(
        "appsettings.bicep", values["AzureWebJobsStorage__accountName"], "Microsoft.Storage/storageAccounts", "name"
    )
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert values["BROKER_QUEUES__credential"] == "managedidentity"
    assert_resource_property(
        "appsettings.bicep",
        values["BROKER_QUEUES__queueServiceUri"],
        "Microsoft.Storage/storageAccounts",
        "properties.primaryEndpoints.queue",
    )
    assert_resource_property(
        "appsettings.bicep",
        values["BROKER_TABLES_ENDPOINT"],
        "Microsoft.Storage/storageAccounts",
        "properties.primaryEndpoints.table",
    )
    assert_resource_property(
        "appsettings.bicep", values["BROKER_KEYVAULT_URL"], "Microsoft.KeyVault/vaults", "properties.vaultUri"
    )
    assert_resource_property(
        "appsettings.bicep",
        values["APPLICATIONINSIGHTS_CONNECTION_STRING"],
        "Microsoft.Insights/components",
        "properties.ConnectionString",
    )
    identities = resources_of(
        module_file("appsettings.bicep"), "Microsoft.ManagedIdentity/userAssignedIdentities", existing=True
    )
    uami, _ = only(identities, "managed identity")
    expected_auth = "ClientId=${" + uami + ".properties.clientId};Authorization=AAD"
    assert values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == expected_auth
    assert values["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert values["BROKER_ENTRA_AUTHORITY"] == "${environment().authentication.loginEndpoint}${tenant().tenantId}"
    assert values["BROKER_SIGNING_KEY_NAME"] in module_file("appsettings.bicep")["parameters"]


def test_entra_client_id_setting_is_the_app_registration_app_id() -> None:
    param = app_settings()["BROKER_ENTRA_CLIENT_ID"]
    assert param in module_file("appsettings.bicep")["parameters"]
    file_name, value = module_output(passed_to("appsettings.bicep", param))
    assert file_name == "entra-app.bicep"
    assert_resource_property("entra-app.bicep", value, "Microsoft.Graph/applications", "appId")


def test_issuer_is_https_default_host_name_unless_a_custom_domain_is_given() -> None:
    main = parse(MAIN)
    issuer_param = app_settings()["BROKER_ISSUER"]
    assert passed_to("appsettings.bicep", issuer_param) == "issuer"
    assert main["variables"]["issuer"]["value"] == "https://${publicHost}"
    choice = main["variables"]["publicHost"]["value"]["operator"]
    assert choice["type"] == "conditional"
    assert choice["operands"]["condition"] == {
        "function": {"type": "empty", "parameters": {"item_to_test": "customDomain"}}
    }
    assert choice["operands"]["false_value"] == "customDomain"
    file_name, value = module_output(choice["operands"]["true_value"])
    assert file_name == "functionapp.bicep"
    assert_resource_property("functionapp.bicep", value, "Microsoft.Web/sites", "properties.defaultHostName")
    assert main["parameters"]["customDomain"]["default"] == ""


def test_client_setting_comes_from_a_json_string_parameter() -> None:
    main = parse(MAIN)
    assert main["parameters"]["clients"]["type"] == "string"
    assert passed_to("appsettings.bicep", "clients") == "clients"
    assert "clients" in identifiers(app_settings()["BROKER_CLIENTS"])


def test_allowed_tenants_default_to_the_deployment_tenant() -> None:
    default = parse(MAIN)["parameters"]["entraAllowedTenants"]["default"]
    assert default == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": {"function": {"type": "tenant"}}, "operand_2": "tenantId"},
        }
    }, "default: tenant().tenantId"
    assert passed_to("appsettings.bicep", "entraAllowedTenants") == "entraAllowedTenants"


def test_main_defaults_are_the_defaults_of_settings_py() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(broker_settings.Settings)}
    params = parse(MAIN)["parameters"]
    assert params["entraMaxAuthAge"]["default"] == defaults["entra_max_auth_age"]
    assert params["sessionMaxAge"]["default"] == defaults["session_max_age"]
    assert params["sessionIdleTimeout"]["default"] == defaults["session_idle_timeout"]
    assert params["accessTokenTtl"]["default"] == defaults["access_token_ttl"]
    assert params["pairingReverifyDays"]["default"] == defaults["pairing_reverify_days"] == 365
    assert params["showMire"]["default"] is defaults["show_mire"]
    assert params["keyRotationEnabled"]["default"] is defaults["key_rotation_enabled"] is False
    assert params["signingKeySecretName"]["default"] == "broker-signing-key"
    # entraRequiredAcrs has no Settings default to match: BROKER_ENTRA_REQUIRED_ACRS is required
    # (the next test).


def test_entra_required_acrs_defaults_to_the_authentication_context_c1() -> None:
    """The acrs claim is the broker's only proof of a strong Entra sign-in (a policy on the app alone is
    invisible to it): by default every deployment requires c1, the context conditional-access.sh binds."""
    param = parse(MAIN)["parameters"]["entraRequiredAcrs"]
    assert param["default"] == "c1"
    decorators = {decorator["type"]: decorator["argument"] for decorator in param["decorators"]}
    assert decorators.get("min_length", 0) >= 1, "empty is refused by the broker: refuse it at deployment"
    description = decorators["description"]
    assert "c1" in description and "none" in description and "sandbox only" in description
    assert passed_to("appsettings.bicep", "entraRequiredAcrs") == "entraRequiredAcrs"
    assert app_settings()["BROKER_ENTRA_REQUIRED_ACRS"] == "entraRequiredAcrs"
    assert re.search(r"^param entraRequiredAcrs = 'c1'$", bicepparam(), re.MULTILINE)


def test_entra_required_acrs_default_is_accepted_by_the_broker_and_enables_the_check() -> None:
    env = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    env["BROKER_ENTRA_REQUIRED_ACRS"] = parse(MAIN)["parameters"]["entraRequiredAcrs"]["default"]
    assert broker_settings.Settings.from_env(env).entra_required_acrs == ("c1",)


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------


def test_psc_client_secret_is_only_a_key_vault_reference_and_only_with_client_secret_basic() -> None:
    choice = app_settings()["BROKER_PSC_CLIENT_SECRET"]["operator"]
    assert choice["type"] == "conditional"
    basic = {"operand_1": "pscTokenAuthMethod", "operand_2": "client_secret_basic"}
    assert choice["operands"]["condition"] == {"operator": {"type": "equals", "operands": basic}}
    assert choice["operands"]["false_value"] == ""  # private_key_jwt: the broker refuses a secret beside it
    value = choice["operands"]["true_value"]
    vault = next(iter(resources_of(module_file("appsettings.bicep"), "Microsoft.KeyVault/vaults", existing=True)))
    assert re.fullmatch(
        r"@Microsoft\.KeyVault\(SecretUri=\$\{" + vault + r"\.properties\.vaultUri\}secrets/\$\{\w+\}/\)", value
    ), value


def test_psc_token_auth_method_is_a_parameter_with_the_methods_and_default_of_settings_py() -> None:
    for parsed in (parse(MAIN), module_file("appsettings.bicep")):
        param = parsed["parameters"]["pscTokenAuthMethod"]
        allowed = next(d["argument"] for d in param["decorators"] if d["type"] == "allowed")
        assert tuple(allowed) == broker_settings.PSC_AUTH_METHODS
    defaults = {field.name: field.default for field in dataclasses.fields(broker_settings.Settings)}
    assert parse(MAIN)["parameters"]["pscTokenAuthMethod"]["default"] == defaults["psc_token_auth_method"]
    assert passed_to("appsettings.bicep", "pscTokenAuthMethod") == "pscTokenAuthMethod"
    assert app_settings()["BROKER_PSC_TOKEN_AUTH_METHOD"] == "pscTokenAuthMethod"


def test_no_secret_in_plain_app_settings() -> None:
    appsettings = module_file("appsettings.bicep")
    assert not secure_params(appsettings), "no secret may even reach the app settings module"
    dumped = json.dumps(app_settings())
    for marker in ("AccountKey", "listKeys", "listSecrets", "SharedAccessSignature", "sig="):
        assert marker not in dumped
    _, call = module_call("appsettings.bicep")
    for param, value in call["params"].items():
        assert not identifiers(value) & secure_params(parse(MAIN)), f"appsettings.{param} receives a secret"


def test_secure_parameters_only_reach_key_vault_secrets() -> None:
    main = parse(MAIN)
    secrets = secure_params(main)
    assert secrets == {"pscClientSecret"}
    for symbol, module in main["modules"].items():
        for param, value in module["config"]["params"].items():
            if identifiers(value) & secrets:
                target = module_file(module["detail"]["path"].removeprefix("modules/"))
                assert module["detail"]["path"] == "modules/keyvault.bicep", f"{symbol} receives a secret"
                assert param in secure_params(target), f"{symbol}.{param} must be @secure()"
    keyvault = module_file("keyvault.bicep")
    for symbol, resource in keyvault["resources"].items():
        used = identifiers(resource["config"]) & secure_params(keyvault)
        if used:
            assert rtype(resource) == "Microsoft.KeyVault/vaults/secrets", f"{symbol} uses {used}"
            assert body(resource)["properties"]["value"] in used


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda path: path.relative_to(BICEP_DIR).as_posix())
def test_no_secret_in_outputs(path: Path) -> None:
    parsed = parse(path)
    secrets = secure_params(parsed)
    for name, output in parsed.get("outputs", {}).items():
        dumped = json.dumps(output["value"])
        assert not identifiers(output["value"]) & secrets, f"{path.name}: output {name} exposes a secure parameter"
        assert not re.search(r"secret|password", name, re.IGNORECASE), f"{path.name}: output name {name}"
        for marker in ("listKeys", "listSecrets", "list(", "AccountKey", "ConnectionString", "InstrumentationKey"):
            assert marker not in dumped, f"{path.name}: output {name} contains {marker}"


# ---------------------------------------------------------------------------------------------
# Role assignments
# ---------------------------------------------------------------------------------------------


def role_assignments() -> list[tuple[Path, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in BICEP_FILES:
        parsed = parse(path)
        for symbol, resource in resources_of(parsed, "Microsoft.Authorization/roleAssignments").items():
            found.append((path, symbol, body(resource), parsed))
    return found


def role_guid(expr: Any, parsed: dict[str, Any]) -> str:
    function = expr["function"]
    assert function["type"] == "subscription_resource_id"
    assert function["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    name = function["parameters"]["resource_name_1"]
    chain = dotted(name)
    if chain and "." in chain:  # roles.someRole: a variable object of GUIDs
        variable, key = chain.split(".", 1)
        return parsed["variables"][variable]["value"][key]
    return name


def test_role_assignments_use_known_roles_specific_scopes_and_stable_names() -> None:
    assignments = role_assignments()
    assert assignments, "no role assignment found"
    for path, symbol, config, parsed in assignments:
        guid = role_guid(config["properties"]["roleDefinitionId"], parsed)
        assert guid in KNOWN_ROLES, f"{path.name}:{symbol}: unknown role {guid}"
        scope = config.get("scope")
        assert isinstance(scope, str) and scope in parsed["resources"], f"{path.name}:{symbol}: scope: <resource>"
        assert rtype(parsed["resources"][scope]) in TRACKED_TYPES, f"{path.name}:{symbol}: scope too broad"
        assert config["name"]["function"]["type"] == "guid", f"{path.name}:{symbol}: name = guid(...)"
        seeds = {dotted(seed) for seed in config["name"]["function"]["parameters"].values()}
        assert dotted(config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]) in seeds
        assert f"{scope}.id" in seeds and dotted(config["properties"]["principalId"]) in seeds, (
            f"{path.name}:{symbol}: name = guid(<scope>.id, <principal>, <role>)"
        )
        assert config["properties"]["principalId"], f"{path.name}:{symbol}: principalId"


def test_role_assignments_are_the_least_privilege_set() -> None:
    granted = set()
    for _path, _symbol, config, parsed in role_assignments():
        role = KNOWN_ROLES[role_guid(config["properties"]["roleDefinitionId"], parsed)]
        scope_type = rtype(parsed["resources"][config["scope"]])
        granted.add((role, scope_type, config["properties"]["principalId"]))
    assert granted == {
        ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts", "appPrincipalId"),
        ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", "appPrincipalId"),
        ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", "appPrincipalId"),
        ("Key Vault Secrets User", "Microsoft.KeyVault/vaults", "appPrincipalId"),
        ("Monitoring Metrics Publisher", "Microsoft.Insights/components", "appPrincipalId"),
    }, "no standing role for the deploying administrator: deploy.sh gives itself one, temporarily"
    file_name, value = module_output(passed_to("rbac.bicep", "appPrincipalId"))
    assert file_name == "identity.bicep"
    assert_resource_property(
        "identity.bicep", value, "Microsoft.ManagedIdentity/userAssignedIdentities", "properties.principalId"
    )
    assert not {"deployerPrincipalId", "deployerPrincipalType"} & set(parse(MAIN)["parameters"])


# ---------------------------------------------------------------------------------------------
# Entra app registration (Graph extension)
# ---------------------------------------------------------------------------------------------


def test_graph_resources_are_present_and_linked() -> None:
    entra = module_file("entra-app.bicep")
    variables = {name: variable["value"] for name, variable in entra["variables"].items()}

    app_symbol, app = only(resources_of(entra, "Microsoft.Graph/applications"), "application")
    sp_symbol, sp = only(resources_of(entra, "Microsoft.Graph/servicePrincipals"), "service principal")
    graph_symbol, graph = only(resources_of(entra, "Microsoft.Graph/servicePrincipals", existing=True), "Graph SP")
    _, grant = only(resources_of(entra, "Microsoft.Graph/oauth2PermissionGrants"), "permission grant")
    _, fic = only(resources_of(entra, "Microsoft.Graph/applications/federatedIdentityCredentials"), "FIC")
    app, sp, graph, grant, fic = body(app), body(sp), body(graph), body(grant), body(fic)

    assert variables.get(graph["appId"], graph["appId"]) == GRAPH_APP_ID
    assert dotted(sp["appId"]) == f"{app_symbol}.appId"
    assert dotted(grant["clientId"]) == f"{sp_symbol}.id"
    assert dotted(grant["resourceId"]) == f"{graph_symbol}.id"
    assert grant["consentType"] == "AllPrincipals"
    scope = grant["scope"]
    scopes = variables[scope["function"]["parameters"]["input_array"]] if isinstance(scope, dict) else scope.split()
    assert set(scopes) == DELEGATED_SCOPES

    # Web redirect URI, requested permissions, optional claims.
    assert app["web"]["redirectUris"] == ["https://${publicHost}/callback"]
    assert passed_to("entra-app.bicep", "publicHost") == "publicHost"
    (access,) = app["requiredResourceAccess"]
    assert variables.get(access["resourceAppId"], access["resourceAppId"]) == GRAPH_APP_ID
    filtered = json.dumps(variables[access["resourceAccess"]])
    assert f'"{graph_symbol}"' in filtered and "oauth2PermissionScopes" in filtered and '"Scope"' in filtered
    assert loaded_json_file("entra-app.bicep", app["optionalClaims"]) == OPTIONAL_CLAIMS_FILE
    assert "passwordCredentials" not in app, "no client secret: the managed identity is the credential"

    # The federated identity credential makes the user-assigned managed identity the app's credential.
    assert fic["name"].startswith("${" + app["uniqueName"] + "}/")
    assert fic["issuer"] == FIC_ISSUER
    assert fic["audiences"] == ["api://AzureADTokenExchange"]
    file_name, value = module_output(passed_to("entra-app.bicep", fic["subject"]))
    assert file_name == "identity.bicep"
    assert_resource_property(
        "identity.bicep", value, "Microsoft.ManagedIdentity/userAssignedIdentities", "properties.principalId"
    )


def test_optional_claims_come_from_the_file_the_sandbox_reads_too() -> None:
    """auth_time and acrs exist only when the app registration declares them: one file declares them,
    for the Bicep app registration and for the sandbox's Entra simulator alike."""
    _, app = only(resources_of(module_file("entra-app.bicep"), "Microsoft.Graph/applications"), "application")
    assert loaded_json_file("entra-app.bicep", body(app)["optionalClaims"]) == OPTIONAL_CLAIMS_FILE
    claims = json.loads(OPTIONAL_CLAIMS_FILE.read_text(encoding="utf-8"))
    assert set(claims) == {"idToken"}, "the optionalClaims object of a Graph application, ID token only"
    assert claims["idToken"] == [
        {"name": "auth_time", "essential": False},
        {"name": "acrs", "essential": False},
    ]


def test_the_enterprise_application_requires_assignment_by_default() -> None:
    """Fails closed: nobody signs in before deploy.sh assigns the professionals' groups."""
    param = parse(MAIN)["parameters"]["entraAssignmentRequired"]
    assert param["default"] is True
    assert passed_to("entra-app.bicep", "assignmentRequired") == "entraAssignmentRequired"
    entra = module_file("entra-app.bicep")
    _, sp = only(resources_of(entra, "Microsoft.Graph/servicePrincipals"), "service principal")
    assert body(sp)["appRoleAssignmentRequired"] == "assignmentRequired"
    assert "assignmentRequired" in entra["parameters"]
    assert re.search(r"^param entraAssignmentRequired = true$", bicepparam(), re.MULTILINE)


def test_module_deployments_are_named_after_the_environment() -> None:
    """Module deployments are deployment records of the resource group too: two environments deployed
    into one resource group must not overwrite each other's."""
    names = [module["config"]["name"] for module in parse(MAIN)["modules"].values()]
    assert len(set(names)) == len(names)
    for name in names:
        assert isinstance(name, str) and name.endswith("-${environmentName}"), name


def test_outputs_of_main() -> None:
    outputs = parse(MAIN)["outputs"]
    assert outputs["issuer"]["value"] == "issuer"
    assert outputs["pscRedirectUri"]["value"] == "${issuer}/pair/callback"
    file_name, value = module_output(outputs["entraClientId"]["value"])
    assert file_name == "entra-app.bicep"
    assert_resource_property("entra-app.bicep", value, "Microsoft.Graph/applications", "appId")
    # deploy.sh assigns the groups to the enterprise application and scopes its temporary role to the vault.
    file_name, value = module_output(outputs["entraServicePrincipalId"]["value"])
    assert file_name == "entra-app.bicep"
    assert_resource_property("entra-app.bicep", value, "Microsoft.Graph/servicePrincipals", "id")
    file_name, value = module_output(outputs["keyVaultId"]["value"])
    assert file_name == "keyvault.bicep"
    assert_resource_property("keyvault.bicep", value, "Microsoft.KeyVault/vaults", "id")


# ---------------------------------------------------------------------------------------------
# Function App, storage, Key Vault, monitoring
# ---------------------------------------------------------------------------------------------


def test_function_app_is_flex_consumption_python_311_hardened() -> None:
    functionapp = module_file("functionapp.bicep")
    _, plan = only(resources_of(functionapp, "Microsoft.Web/serverfarms"), "plan")
    _, site = only(resources_of(functionapp, "Microsoft.Web/sites"), "site")
    plan, site = body(plan), body(site)
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert properties["siteConfig"] == {"minTlsVersion": "1.2"}
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    scale = config["scaleAndConcurrency"]
    assert scale["alwaysReady"] == [{"name": "http", "instanceCount": "alwaysReadyInstances"}]
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "perInstanceConcurrency"
    policies = {
        body(resource)["name"]: body(resource)["properties"]["allow"]
        for resource in resources_of(functionapp, "Microsoft.Web/sites/basicPublishingCredentialsPolicies").values()
    }
    # Basic credentials off on the deployment (scm) endpoint; a Flex app has no FTP endpoint to disable.
    assert policies == {"scm": False}

    main_params = parse(MAIN)["parameters"]
    assert main_params["alwaysReadyInstances"]["default"] == 1
    assert main_params["perInstanceConcurrency"]["default"] > 1, "Python's Flex default (1) must not be kept"
    file_name, value = module_output(passed_to("functionapp.bicep", "identityId"))
    assert file_name == "identity.bicep"
    assert_resource_property("identity.bicep", value, "Microsoft.ManagedIdentity/userAssignedIdentities", "id")


def test_storage_is_identity_only_with_the_state_tables() -> None:
    storage = module_file("storage.bicep")
    _, account = only(resources_of(storage, "Microsoft.Storage/storageAccounts"), "storage account")
    properties = body(account)["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    _, tables = only(resources_of(storage, "Microsoft.Storage/storageAccounts/tableServices/tables"), "tables")
    loop = tables["config"]["loop_type"]["detail"]
    assert loop["array_name"] == "tableNames" and "tableNames" in storage["parameters"]
    assert body(tables)["name"] == loop["item_name"]
    assert passed_to("storage.bicep", "tableNames") == "tableNames"
    assert parse(MAIN)["variables"]["tableNames"]["value"] == list(TABLE_NAMES)
    assert resources_of(storage, "Microsoft.Storage/storageAccounts/blobServices/containers")


def test_storage_has_the_back_channel_logout_queues_and_host_json_agrees_with_the_settings() -> None:
    """The queue and its poison queue (sanscouture/backchannel.py); host.json's retries of a delivery
    that raised match the broker's own (BROKER_BACKCHANNEL_MAX_ATTEMPTS, _RETRY_SECONDS defaults)."""
    storage = module_file("storage.bicep")
    _, queues = only(resources_of(storage, "Microsoft.Storage/storageAccounts/queueServices/queues"), "queues")
    loop = queues["config"]["loop_type"]["detail"]
    assert loop["array_name"] == "queueNames" and "queueNames" in storage["parameters"]
    assert body(queues)["name"] == loop["item_name"]
    assert passed_to("storage.bicep", "queueNames") == "queueNames"
    assert parse(MAIN)["variables"]["queueNames"]["value"] == [QUEUE, POISON_QUEUE]
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"]
    main_params = parse(MAIN)["parameters"]
    assert host["maxDequeueCount"] == main_params["backchannelMaxAttempts"]["default"] == 5
    assert host["visibilityTimeout"] == "00:00:30" and main_params["backchannelRetrySeconds"]["default"] == 30
    assert host["messageEncoding"] == "base64"


def test_key_vault_uses_rbac_soft_delete_and_purge_protection() -> None:
    _, vault = only(resources_of(module_file("keyvault.bicep"), "Microsoft.KeyVault/vaults"), "vault")
    properties = body(vault)["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True
    assert "accessPolicies" not in properties


def test_application_insights_is_workspace_based_with_local_auth_disabled() -> None:
    monitoring = module_file("monitoring.bicep")
    _, component = only(resources_of(monitoring, "Microsoft.Insights/components"), "component")
    workspace_symbol, _ = only(resources_of(monitoring, "Microsoft.OperationalInsights/workspaces"), "workspace")
    properties = body(component)["properties"]
    assert properties["DisableLocalAuth"] is True
    assert dotted(properties["WorkspaceResourceId"]) == f"{workspace_symbol}.id"


# ---------------------------------------------------------------------------------------------
# main.bicepparam
# ---------------------------------------------------------------------------------------------


def bicepparam() -> str:
    return (BICEP_DIR / "main.bicepparam").read_text(encoding="utf-8")


def test_bicepparam_sets_only_known_parameters_and_every_required_one() -> None:
    text = bicepparam()
    assert re.search(r"^using '\./main\.bicep'\s*$", text, re.MULTILINE)
    assigned = set(re.findall(r"^param\s+(\w+)\s*=", text, re.MULTILINE))
    params = parse(MAIN)["parameters"]
    assert assigned <= set(params), f"unknown parameters: {sorted(assigned - set(params))}"
    required = {name for name, param in params.items() if param.get("default") is None}
    assert required <= assigned, f"required but not set: {sorted(required - assigned)}"


def test_bicepparam_keeps_secrets_out_of_the_file() -> None:
    text = bicepparam()
    assert re.search(
        r"^param pscClientSecret = readEnvironmentVariable\('PSC_CLIENT_SECRET', ''\)$", text, re.MULTILINE
    )
    assert "DEPLOYER_PRINCIPAL" not in text and "deployerPrincipal" not in text


def test_bicepparam_environment_is_a_literal_deploy_sh_can_read() -> None:
    """deploy.sh names the deployment psc-sans-couture-<environmentName> from this line."""
    assert re.search(r"^param environmentName = '[A-Za-z0-9-]{2,10}'$", bicepparam(), re.MULTILINE)
    default = re.search(r'^readonly DEFAULT_ENVIRONMENT="([^"]+)"$', DEPLOY_SCRIPT.read_text(encoding="utf-8"), re.M)
    assert default and default.group(1) == parse(MAIN)["parameters"]["environmentName"]["default"]


def test_bicepparam_example_clients_are_valid_for_the_broker() -> None:
    match = re.search(r"^param clients = '''(.*?)'''", bicepparam(), re.MULTILINE | re.DOTALL)
    assert match, "clients must be a multi-line JSON string"
    clients = broker_settings.parse_clients(match.group(1), "clients")
    assert clients
    for client in clients:
        if client.token_endpoint_auth_method != "private_key_jwt":
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", client.client_secret or ""), "store secrets hashed"


def test_deploy_md_documents_every_parameter_with_its_default() -> None:
    """docs/deploy.md §3: one row per parameter of main.bicep, none other; a required one says so, and a
    plain number, boolean or string default is the one main.bicep gives (``<env>`` for environmentName)."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = text[text.index("## 3. Paramètres"):text.index("### 3 bis.")]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.MULTILINE))
    params = parse(MAIN)["parameters"]
    assert sorted(rows) == sorted(params)
    for name, param in params.items():
        default = param.get("default")
        if default is None:
            assert "obligatoire" in rows[name], name
        elif isinstance(default, bool):
            assert rows[name].strip() == f"`{str(default).lower()}`", name
        elif isinstance(default, int) or (isinstance(default, str) and default and "/" not in default):
            assert rows[name].strip() == f"`{default}`".replace("${environmentName}", "<env>"), name
