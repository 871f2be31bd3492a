"""``GET /.well-known/openid-configuration`` and PSC's ``/.well-known/wallet-openid-configuration``."""

from __future__ import annotations

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.oidc.discovery import DISCOVERY_CACHE_CONTROL
from sanscouture.oidc.discovery import build_discovery
from sanscouture.oidc.par import par_required_of_every_client
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def openid_configuration(request: Request) -> Response:
    """OIDC Discovery 4: the provider metadata."""
    settings = services().settings
    document = build_discovery(
        settings.issuer, require_pushed_authorization_requests=par_required_of_every_client(settings.clients),
        backchannel_logout=settings.has_queues,
    )
    return Response.json(document, headers={"Cache-Control": DISCOVERY_CACHE_CONTROL})


def wallet_openid_configuration(request: Request) -> Response:
    """The same document under the name PSC publishes it (ansforge/keycloak-prosanteconnect psc.properties)."""
    return openid_configuration(request)


bp.route(route=".well-known/openid-configuration", methods=["GET"])(endpoint(openid_configuration))
bp.route(route=".well-known/wallet-openid-configuration", methods=["GET"])(endpoint(wallet_openid_configuration))
