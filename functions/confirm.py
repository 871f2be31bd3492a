"""``/confirm``: the health professional's choice on the confirmation page."""

from __future__ import annotations

import azure.functions as func

from functions._http import browser_endpoint
from functions._wiring import services
from sanscouture import journey
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def confirm(request: Request) -> Response:
    return journey.confirm(services().broker, request)


bp.route(route="confirm", methods=["POST"])(browser_endpoint(confirm))
