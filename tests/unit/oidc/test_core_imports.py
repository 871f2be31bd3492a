"""The protocol core and the key ring import no Azure SDK, MSAL or requests (docs/design.md "Code layout")."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = (
    "sanscouture.keys",
    "sanscouture.rotation",
    "sanscouture.oidc.discovery",
    "sanscouture.oidc.codes",
    "sanscouture.oidc.client_auth",
    "sanscouture.oidc.pkce",
    "sanscouture.oidc.id_token",
    "sanscouture.oidc.token",
    "sanscouture.oidc.userinfo",
    "sanscouture.pairings",
    "sanscouture.account",
    "sanscouture.oidc.backchannel",
    "sanscouture.backchannel",
)


def test_core_modules_import_no_adapter_library() -> None:
    script = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in CORE_MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'msal', 'requests'))\n"
        + "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""
