"""``/authorize`` (GET and POST, OIDC Core 3.1.2.1) and ``/choose`` (the mire's choice)."""

from __future__ import annotations

import azure.functions as func

from functions._http import browser_endpoint
from functions._wiring import services
from sanscouture import journey
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def authorize(request: Request) -> Response:
    return journey.authorize(services().broker, request)


def choose(request: Request) -> Response:
    return journey.choose(services().broker, request)


bp.route(route="authorize", methods=["GET", "POST"])(browser_endpoint(authorize))
bp.route(route="choose", methods=["POST"])(browser_endpoint(choose))
