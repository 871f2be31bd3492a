"""``GET /health``: liveness plus the readiness of each dependency."""

from __future__ import annotations

import os

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.health import health_response
from sanscouture.health import probe_all
from sanscouture.models import DependencyStatus
from sanscouture.settings import Settings
from sanscouture.settings import SettingsError
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def health(request: Request) -> Response:
    """Probe settings, then Table Storage, the signing keys and both upstream providers."""
    try:
        Settings.from_env(os.environ)
    except SettingsError as error:
        return health_response([DependencyStatus("settings", False, str(error))])
    wired = services()
    probes = probe_all(
        {
            "tables": lambda: wired.tables["bindings"].ping(),
            # From the worker's cache when fresh: /health never costs a Key Vault call per probe.
            "signing_keys": lambda: wired.key_ring.probe(),
            # Discovery documents are cached a day: a probe reads them from the cache when fresh.
            "entra": lambda: wired.entra.probe(),
            "psc": lambda: wired.psc.probe(),
        }
    )
    return health_response([DependencyStatus("settings", True, ""), *probes])


bp.route(route="health", methods=["GET"])(endpoint(health))
