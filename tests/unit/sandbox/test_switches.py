"""The simulators' switchboard: one function per switch, defaults applied, refusals explained."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pytest
from flask import Flask

from sandbox.switches import Switchboard


@dataclass
class Tenant:
    policies: dict[str, str] = field(default_factory=dict)


BOARD: Switchboard[Tenant] = Switchboard()


@BOARD.switch("policy", default="enforced")
def policy(tenant: Tenant, value: Any) -> None:
    """State of the policy: enforced, report-only or none."""
    if value not in ("enforced", "report-only", "none"):
        raise ValueError(f"{value!r} is not a policy state")
    tenant.policies["c1"] = value


@pytest.fixture
def client_and_tenant() -> tuple[Any, Tenant]:
    tenant = Tenant()
    app = Flask(__name__)
    BOARD.bind(tenant).register_routes(app)
    return app.test_client(), tenant


def test_the_default_is_applied_when_bound(client_and_tenant: tuple[Any, Tenant]) -> None:
    _, tenant = client_and_tenant
    assert tenant.policies == {"c1": "enforced"}


def test_a_switch_is_set_listed_and_reset(client_and_tenant: tuple[Any, Tenant]) -> None:
    client, tenant = client_and_tenant
    assert client.post("/_sim/switches/policy", data=json.dumps("report-only")).status_code == 200
    assert tenant.policies == {"c1": "report-only"}
    listed = client.get("/_sim/switches").get_json()
    assert listed["policy"]["value"] == "report-only"
    assert listed["policy"]["doc"].startswith("State of the policy")
    client.delete("/_sim/switches")
    assert tenant.policies == {"c1": "enforced"}


def test_a_value_the_switch_does_not_take_is_refused_with_its_reason(client_and_tenant: tuple[Any, Tenant]) -> None:
    client, tenant = client_and_tenant
    response = client.post("/_sim/switches/policy", data=json.dumps("off"))
    assert response.status_code == 400
    assert "'off' is not a policy state" in response.get_json()["error"]
    assert tenant.policies == {"c1": "enforced"}


def test_an_unknown_switch_is_404(client_and_tenant: tuple[Any, Tenant]) -> None:
    client, _ = client_and_tenant
    assert client.post("/_sim/switches/nope", data="true").status_code == 404


def test_a_switch_name_is_registered_once() -> None:
    board: Switchboard[Tenant] = Switchboard()
    board.switch("x", default=1)(lambda tenant, value: None)
    with pytest.raises(ValueError, match="registered twice"):
        board.switch("x", default=1)(lambda tenant, value: None)
