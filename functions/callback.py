"""``/callback``: the return from Entra ID."""

from __future__ import annotations

import azure.functions as func

from functions._http import browser_endpoint
from functions._wiring import services
from sanscouture import journey
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def callback(request: Request) -> Response:
    return journey.entra_callback(services().broker, request)


bp.route(route="callback", methods=["GET", "POST"])(browser_endpoint(callback))
