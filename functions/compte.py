"""``/compte`` and ``/compte/supprimer``: « Mes appairages », the professional's own pairing."""

from __future__ import annotations

import azure.functions as func

from functions._http import browser_endpoint
from functions._wiring import services
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()


def compte(request: Request) -> Response:
    from sanscouture import account  # on first use: not on the cold start of the other functions

    return account.account_page(services().broker, request)


def supprimer(request: Request) -> Response:
    from sanscouture import account

    broker = services().broker
    return account.remove(broker, request) if request.method == "POST" else account.removal_page(broker, request)


bp.route(route="compte", methods=["GET"])(browser_endpoint(compte))
bp.route(route="compte/supprimer", methods=["GET", "POST"])(browser_endpoint(supprimer))
