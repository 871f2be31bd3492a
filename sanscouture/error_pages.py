"""French error pages for the browser endpoints: what happened, what to do, and a way back."""

from __future__ import annotations

from collections.abc import Mapping

from sanscouture.limits import SlowDownError
from sanscouture.pages import render as pages
from sanscouture.web import Response

# Refusal reasons raised by adapters that share a page with another reason.
_PAGE_FOR_REASON: Mapping[str, str] = {
    "upstream_token_invalid": "server_error",
}


def error_page(
    reason: str,
    *,
    status: int,
    return_url: str | None = None,
    reference: str | None = None,
    extra_link: pages.Link | None = None,
    cookies: tuple[str, ...] = (),
) -> Response:
    """A French error page from the pages catalogue (unknown reasons fall back to a generic page)."""
    title, message, advice = pages.ERRORS.get(_PAGE_FOR_REASON.get(reason, reason), pages.ERRORS["server_error"])
    page = pages.render_error(
        title=title, message=message, advice=advice, reference=reference, return_url=return_url, extra_link=extra_link
    )
    return Response.html(page, status=status, cookies=cookies)


def too_many_requests_page(error: SlowDownError) -> Response:
    """429 with ``Retry-After`` (RFC 6585 4): too many sign-ins started from this address."""
    title, message, advice = pages.ERRORS["too_many_requests"]
    page = pages.render_error(title=title, message=message, advice=advice)
    return Response.html(page, status=429, headers={"Retry-After": str(error.retry_after)})
