"""Reading and clearing pairings in the sandbox's storage, for tests that need a known starting point."""

from __future__ import annotations

import requests

from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID
from sandbox.run import Sandbox
from sanscouture.adapters.tables import Tables


def persona_oid(sandbox: Sandbox, persona: str) -> str:
    personas = requests.get(f"{sandbox.entra_url}/personas", timeout=10).json()
    return next(p["oid"] for p in personas if p["id"] == persona)


def binding_row(sandbox: Sandbox, oid: str) -> dict[str, object] | None:
    row = Tables.from_connection_string(sandbox.azurite_connection or "")["bindings"].find(HOSPITAL_TENANT_ID, oid)
    return dict(row.data) if row else None


def unpair(sandbox: Sandbox, persona: str) -> None:
    """Remove the persona's pairing if another test made one (tests share the sandbox's storage)."""
    Tables.from_connection_string(sandbox.azurite_connection or "")["bindings"].delete(
        HOSPITAL_TENANT_ID, persona_oid(sandbox, persona)
    )
