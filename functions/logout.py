"""``/logout`` (GET and POST): RP-initiated logout."""

from __future__ import annotations

from typing import Any

import azure.functions as func

from functions._http import browser_endpoint
from functions._wiring import services
from sanscouture.oidc import logout as rp_logout
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def logout(request: Request) -> Response:
    wired = services()

    def decode_hint(token: str) -> dict[str, Any]:
        # An ID token the broker issued (typ JWT, not an access token), possibly expired.
        return wired.key_ring.decode(token, issuer=wired.settings.issuer, typ="JWT", verify_exp=False)

    return rp_logout.logout(wired.broker, request, decode_hint)


bp.route(route="logout", methods=["GET", "POST"])(browser_endpoint(logout))
