"""A stand-in for Azure CLI, for the tests of infra/deploy.sh and infra/conditional-access.sh.

It answers `az rest` from recorded Microsoft Graph v1.0 responses (tests/infra/fixtures/graph) and the
Azure Resource Manager commands the scripts use from a small JSON "world" (FAKE_AZ_WORLD), which it
updates as the real services would (a deployment record after `deployment group create`, a role
assignment after `role assignment create`...). `--query` is evaluated with jmespath and `-o tsv` is
formatted as knack does (microsoft/knack, knack/output.py, _TsvOutput): the scripts' JMESPath runs as
written, against Graph's real response shapes. Every call is logged to FAKE_AZ_LOG (one JSON line).

Run with an interpreter that has jmespath (Azure CLI's own query engine): see tests/infra/test_scripts.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from collections import OrderedDict
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jmespath

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
LOGGED_ENVIRONMENT = ("PSC_CLIENT_SECRET",)


class AzError(Exception):
    """An az failure: message on stderr, exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------------------------------
# Output: --query and -o, as Azure CLI renders them
# ---------------------------------------------------------------------------------------------


def _tsv_obj(value: Any, out: StringIO) -> None:
    if isinstance(value, list):
        out.write(str(len(value)))
    elif isinstance(value, dict):
        out.write("")
    else:
        out.write(value if isinstance(value, str) else str(value))


def _tsv_row(value: Any, out: StringIO) -> None:
    if isinstance(value, dict | list):
        if isinstance(value, OrderedDict):
            values = list(value.values())
        elif isinstance(value, dict):
            values = [item for _, item in sorted(value.items())]
        else:
            values = value
        for index, item in enumerate(values):
            if index:
                out.write("\t")
            _tsv_obj(item, out)
    elif isinstance(value, bool):
        _tsv_obj(str(value).lower(), out)
    else:
        _tsv_obj(value, out)
    out.write("\n")


def to_tsv(result: Any) -> str:
    out = StringIO()
    for item in result if isinstance(result, list) else [result]:
        _tsv_row(item, out)
    return out.getvalue()


def render(result: Any, options: dict[str, str]) -> str:
    if "--query" in options:
        result = jmespath.search(options["--query"], result, jmespath.Options(dict_cls=OrderedDict))
    if options.get("--output", options.get("-o", "json")) == "tsv":
        return to_tsv(result)
    return json.dumps(result, ensure_ascii=False, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------
# Arguments and world
# ---------------------------------------------------------------------------------------------


def split_command(args: list[str]) -> tuple[str, dict[str, str]]:
    """('deployment group create', {'--name': 'x', ...}); flags without value map to ''."""
    words = []
    index = 0
    while index < len(args) and not args[index].startswith("-"):
        words.append(args[index])
        index += 1
    options: dict[str, str] = {}
    rest = args[index:]
    position = 0
    while position < len(rest):
        option = rest[position]
        if position + 1 < len(rest) and not rest[position + 1].startswith("--"):
            options[option] = rest[position + 1]
            position += 2
        else:
            options[option] = ""
            position += 1
    return " ".join(words), options


class World:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, ensure_ascii=False, indent=2), encoding="utf-8")

    @property
    def arm(self) -> dict[str, Any]:
        return self.data.setdefault("arm", {})

    @property
    def graph(self) -> dict[str, Any]:
        return self.data.setdefault("graph", {})


# ---------------------------------------------------------------------------------------------
# Microsoft Graph (az rest)
# ---------------------------------------------------------------------------------------------


def graph_error(reason: str, code: str, message: str) -> AzError:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}}
    return AzError(f"ERROR: {reason}({json.dumps(body)})")


def apply_filter(response: Any, query: dict[str, list[str]]) -> Any:
    if "$filter" not in query:
        return response
    match = re.fullmatch(r"policyType eq '(\w+)'", query["$filter"][0])
    if not match:
        raise AzError(f"fake az: unsupported $filter {query['$filter'][0]!r}", 5)
    return {**response, "value": [item for item in response["value"] if item["policyType"] == match.group(1)]}


def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"created-{uuid.uuid5(uuid.NAMESPACE_URL, path + json.dumps(body, sort_keys=True))}", **body}


def rest(world: World, options: dict[str, str]) -> str:
    method = options["--method"].upper()
    url = urlsplit(options.get("--url") or options["--uri"])
    if not f"{url.scheme}://{url.netloc}{url.path}".startswith(GRAPH_ROOT):
        raise AzError(f"fake az: not a Graph v1.0 URL: {options.get('--url')}", 5)
    path = url.path.removeprefix("/v1.0")
    route = world.graph.get(f"{method} {path}")
    if route is not None and route.get("hang"):
        time.sleep(600)
    if route is not None and route.get("error"):
        raise graph_error(*route["error"])
    body = json.loads(options["--body"]) if options.get("--body") else None
    if method == "GET":
        if route is None:
            raise graph_error("Not Found", "Request_ResourceNotFound", f"Resource '{path}' does not exist.")
        response = apply_filter(route["json"], parse_qs(url.query))
    elif method == "POST":
        response = route["json"] if route else created(path, body or {})
    elif method in ("PATCH", "DELETE"):
        return ""  # 204 No Content: az rest prints nothing
    else:
        raise AzError(f"fake az: unsupported method {method}", 5)
    return render(response, options)


# ---------------------------------------------------------------------------------------------
# Azure Resource Manager commands
# ---------------------------------------------------------------------------------------------


def literal_parameters(path: str) -> dict[str, str]:
    text = Path(path).read_text(encoding="utf-8")
    return dict(re.findall(r"^param (\w+) = '([^']*)'\s*$", text, re.MULTILINE))


def deployment_record(world: World, name: str) -> dict[str, Any]:
    record = world.arm.get("deployments", {}).get(name)
    if record is None:
        raise AzError(f"ERROR: (DeploymentNotFound) Deployment '{name}' could not be found.", 3)
    return {
        "name": name,
        "properties": {
            "provisioningState": "Succeeded",
            "outputs": {key: {"type": "String", "value": value} for key, value in record["outputs"].items()},
            "parameters": {key: {"value": value} for key, value in record["parameters"].items()},
        },
    }


def role_assignments(world: World) -> list[dict[str, Any]]:
    return world.arm.setdefault("role_assignments", [])


def arm(world: World, command: str, options: dict[str, str]) -> str:
    failure = world.arm.get("fail", {}).get(command)
    if failure:
        raise AzError(failure)
    if command in world.arm.get("hang", []):
        time.sleep(600)
    if command == "account show":
        return render(world.arm["account"], options)
    if command == "bicep version":
        return f"Bicep CLI version {world.arm.get('bicep', '0.37.4')} (abcdef0123)\n"
    if command == "ad signed-in-user show":
        return render({"id": world.arm["signed_in_user"], "userPrincipalName": "admin@chu-exemple.fr"}, options)
    if command == "group exists":
        return json.dumps(bool(world.arm.get("group_exists"))) + "\n"
    if command == "group create":
        world.arm["group_exists"] = True
        return render({"name": options["--name"], "location": options["--location"]}, options)
    if command == "deployment group show":
        return render(deployment_record(world, options["--name"]), options)
    if command == "deployment group what-if":
        return "Resource changes: 12 to create.\n"
    if command == "deployment group create":
        world.arm.setdefault("deployments", {})[options["--name"]] = {
            "outputs": world.arm["template_outputs"],
            "parameters": literal_parameters(options["--parameters"]),
        }
        return render(deployment_record(world, options["--name"]), options)
    if command == "resource show":
        secret = f"{options['--parent'].removeprefix('vaults/')}/{options['--name']}"
        if secret not in world.arm.get("secrets", []):
            raise AzError("ERROR: (ResourceNotFound) The Resource was not found.", 3)
        return render({"id": f"/subscriptions/x/vaults/{secret}"}, options)
    if command == "role assignment list":
        role = options["--role"]
        found = [
            item
            for item in role_assignments(world)
            if item["scope"] == options["--scope"] and item["roleDefinitionId"].endswith(role)
        ]
        return render(found, options)
    if command == "role assignment create":
        assignment = {
            "id": f"{options['--scope']}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            "principalId": options["--assignee-object-id"],
            "principalType": options["--assignee-principal-type"],
            "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{options['--role']}",
            "scope": options["--scope"],
            "description": options.get("--description", ""),
        }
        role_assignments(world).append(assignment)
        return render(assignment, options)
    if command == "role assignment delete":
        world.arm["role_assignments"] = [item for item in role_assignments(world) if item["id"] != options["--ids"]]
        return ""
    if command == "keyvault secret set":
        key = json.loads(Path(options["--file"]).read_text(encoding="utf-8"))
        world.arm["written_key"] = {"kty": key["kty"], "private": "d" in key}
        world.arm.setdefault("secrets", []).append(f"{options['--vault-name']}/{options['--name']}")
        secret_id = f"https://{options['--vault-name']}.vault.azure.net/secrets/{options['--name']}/1"
        return render({"id": secret_id}, options)
    if command == "functionapp deployment source config-zip":
        if not Path(options["--src"]).is_file():
            raise AzError("ERROR: package not found", 2)
        return "{}\n"
    raise AzError(f"fake az: unsupported command: az {command}", 2)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def main(args: list[str]) -> int:
    with open(os.environ["FAKE_AZ_LOG"], "a", encoding="utf-8") as log:
        environment = {name: os.environ.get(name) for name in LOGGED_ENVIRONMENT}
        log.write(json.dumps({"args": args, "env": environment}, ensure_ascii=False) + "\n")
    world = World(Path(os.environ["FAKE_AZ_WORLD"]))
    command, options = split_command(args)
    try:
        output = rest(world, options) if command == "rest" else arm(world, command, options)
    except AzError as error:
        print(str(error), file=sys.stderr)
        return error.status
    finally:
        world.save()
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
