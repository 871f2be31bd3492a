"""The outbound HTTP session shared by the upstream adapters (MSAL, PSC, client JWKS).

``requests`` lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify``; when the broker must trust an
extra CA (the sandbox's local CA, ``BROKER_CA_BUNDLE``), the bundle is therefore passed on every
request, which wins over the environment. In Azure no bundle is set and the system trust applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

# Upstream calls sit inside a person's sign-in: fail in seconds, not minutes.
DEFAULT_TIMEOUT = (3.05, 10)


class UpstreamSession(requests.Session):
    """A ``requests.Session`` with a default timeout and an explicit CA bundle."""

    def __init__(self, ca_bundle: str | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self._ca_bundle = ca_bundle
        self._timeout = timeout
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=1)
        self.mount("https://", adapter)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        if self._ca_bundle:
            kwargs.setdefault("verify", self._ca_bundle)
        text_method = method.decode() if isinstance(method, bytes) else method
        return super().request(text_method, str(url), *args, **kwargs)


def post_form(session: requests.Session, url: str, form: Mapping[str, str], timeout: float) -> int:
    """POST ``form`` as ``application/x-www-form-urlencoded`` and return the status, following no
    redirect (a back-channel logout URI answers itself, OIDC Back-Channel Logout 1.0 §2.8)."""
    response = session.post(url, data=dict(form), timeout=timeout, allow_redirects=False)
    response.close()
    return response.status_code
