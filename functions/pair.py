"""``/pair`` (the pairing page's form) and ``/pair/callback`` (the return from Pro Santé Connect)."""

from __future__ import annotations

import azure.functions as func

from functions._http import browser_endpoint
from functions._wiring import services
from sanscouture import journey
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def pair(request: Request) -> Response:
    return journey.pair(services().broker, request)


def pair_callback(request: Request) -> Response:
    return journey.psc_callback(services().broker, request)


bp.route(route="pair", methods=["POST"])(browser_endpoint(pair))
bp.route(route="pair/callback", methods=["GET"])(browser_endpoint(pair_callback))
