"""The Entra simulator's switches: tenant configuration and workstation state a test selects.

Each is one function of :data:`SWITCHES` (see :mod:`sandbox.switches`), applied to the simulator's
:class:`~sandbox.entra_sim.model.TenantState`; ``GET /_sim/switches`` lists them with these docstrings.
"""

from __future__ import annotations

import time
from typing import Any

from sandbox.entra_sim.model import CA_STATES
from sandbox.entra_sim.model import TenantState
from sandbox.entra_sim.model import WindowsSession
from sandbox.switches import Switchboard

SWITCHES: Switchboard[TenantState] = Switchboard()

SANDBOX_CONDITIONAL_ACCESS = {"c1": "enforced"}
"""The state docs/deploy.md asks for: the broker's authentication context bound to an enabled policy."""


@SWITCHES.switch("conditional-access", default=SANDBOX_CONDITIONAL_ACCESS)
def conditional_access(tenant: TenantState, value: Any) -> None:
    """Conditional Access per authentication context, e.g. {"c1": "enforced"}. "enforced": a policy
    requiring the phishing-resistant strength is enabled (a password-only sign-in is stepped up, never
    given the context); "report-only": the policy only reports; "none": no policy is bound. In the
    last two, Entra issues the requested context to every sign-in. A context not listed has no policy."""
    if not isinstance(value, dict):
        raise ValueError("a JSON object {context: state}")
    for context, state in value.items():
        if state not in CA_STATES:
            raise ValueError(f"{context}: {state!r} is not one of {', '.join(CA_STATES)}")
    tenant.conditional_access = dict(value)


@SWITCHES.switch("optional-claims", default=None)
def optional_claims(tenant: TenantState, value: Any) -> None:
    """The ID-token optional claims every app registration declares, e.g. ["auth_time", "acrs"];
    null: what each registration declares (in the sandbox: infra/bicep/entra-optional-claims.json,
    the file the Bicep app registration loads). Entra emits auth_time only when it is declared."""
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise ValueError("a JSON list of claim names, or null")
    tenant.optional_claims_override = None if value is None else frozenset(value)


@SWITCHES.switch("windows-session", default=None)
def windows_session(tenant: TenantState, value: Any) -> None:
    """The Windows session of this machine: a persona id whose Windows logon (Windows Hello,
    smart card) gives the browser a Primary Refresh Token, so Entra signs it in without a page;
    {"persona": id, "logon_age": seconds} sets how long ago the logon was (default: the persona's
    windows_logon_age, 6 hours for whfb-sso). null: no Windows session."""
    if value is None:
        tenant.windows_session = None
        return
    persona_id, age = (value, None) if isinstance(value, str) else _session_fields(value)
    persona = next((p for p in tenant.personas if p.id == persona_id), None)
    if persona is None or not persona.sso:
        raise ValueError(f"{persona_id!r} is not a persona with Windows SSO")
    logon_age = persona.windows_logon_age if age is None else age
    tenant.windows_session = WindowsSession(persona.id, int(time.time()) - logon_age)


def _session_fields(value: Any) -> tuple[str, int | None]:
    if not isinstance(value, dict) or not isinstance(value.get("persona"), str):
        raise ValueError('a persona id, or {"persona": id, "logon_age": seconds}')
    age = value.get("logon_age")
    if age is not None and (not isinstance(age, int) or age < 0):
        raise ValueError("logon_age must be a non-negative number of seconds")
    return value["persona"], age
