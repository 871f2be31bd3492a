"""``GET /jwks``: the public signing keys (current, previous and next)."""

from __future__ import annotations

import azure.functions as func

from functions._http import endpoint
from functions._wiring import services
from sanscouture.keys import JWKS_MAX_AGE
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()

# Short: after a rotation, relying parties and proxies must see the new key soon (the rotation's lead
# time counts it: sanscouture/rotation.py).
JWKS_CACHE_CONTROL = f"public, max-age={JWKS_MAX_AGE}"


def jwks(request: Request) -> Response:
    """RFC 7517 5: the JWK Set of the broker's enabled keys, public members only."""
    return Response.json(
        services().key_ring.public_jwks(),
        headers={"Content-Type": "application/jwk-set+json", "Cache-Control": JWKS_CACHE_CONTROL},
    )


bp.route(route="jwks", methods=["GET"])(endpoint(jwks))
