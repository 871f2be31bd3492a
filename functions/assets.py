"""``GET /assets/{name}``: the pages' static files (the stylesheet), from a fixed allow-list.

The CSP of every page allows styles from the broker's own origin only, so the stylesheet is served
here. Only names listed in :data:`sanscouture.pages.render.ASSETS` are looked up; anything else,
``../`` included, is a 404 without touching the file system.
"""

from __future__ import annotations

import functools

import azure.functions as func

from functions._http import endpoint
from sanscouture.pages.render import ASSETS
from sanscouture.pages.render import asset_path
from sanscouture.web import Request
from sanscouture.web import Response

bp = func.Blueprint()

# Pages link the stylesheet with a ?v=<content hash>, so a long-lived immutable cache is safe.
_CACHED: tuple[tuple[str, str], ...] = (
    ("Cache-Control", "public, max-age=86400, immutable"),
    ("X-Content-Type-Options", "nosniff"),
)
_NOT_FOUND = Response(
    404,
    b"Not found\n",
    (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ),
)


@functools.cache
def _read(name: str) -> bytes:
    """The file's bytes, read once per worker (the allow-list bounds the cache)."""
    return asset_path(name).read_bytes()


def assets(request: Request) -> Response:
    """Serve an allow-listed static file with its Content-Type, or 404."""
    name = request.route_params.get("name", "")
    content_type = ASSETS.get(name)
    if content_type is None:
        return _NOT_FOUND
    return Response(200, _read(name), (("Content-Type", content_type), *_CACHED))


bp.route(route="assets/{name}", methods=["GET"])(endpoint(assets))
