"""A relying party's back-channel logout endpoint for the tests (OpenID Connect Back-Channel Logout 1.0).

Served over HTTPS with the sandbox's certificate, it validates each logout token as a relying party
must (§2.6), with PyJWT against the broker's ``/jwks``: RS256 signature, header ``typ`` ``logout+jwt``,
``iss``, ``aud`` (its client id), ``iat`` and ``exp``, the logout event, ``sid`` or ``sub``, no ``nonce``.
A valid token is recorded; an invalid one is answered 400 and recorded as refused. Per session (the
token's ``sid``) a test may choose the answer: another status, or hanging until it releases it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import jwt
import requests
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass(frozen=True)
class Received:
    """One POST: the validated claims (None when refused) and why it was refused."""

    claims: dict[str, Any] | None
    refused: str | None
    content_type: str


@dataclass
class BackchannelReceiver:
    """The WSGI app of the endpoint; ``issuer`` is set once the broker's URL is known."""

    client_id: str
    issuer: str = ""
    received: list[Received] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)  # the sids answered, in order
    statuses: dict[str, int] = field(default_factory=dict)  # sid -> status to answer (default 200)
    holds: dict[str, threading.Event] = field(default_factory=dict)  # sid -> answer only once set
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if request.method != "POST" or request.path != "/backchannel-logout":
            return Response(status=404)(environ, start_response)
        try:
            claims = self.validate(request.form.get("logout_token", ""))
        except (jwt.InvalidTokenError, ValueError, KeyError) as error:
            self._record(Received(None, f"{type(error).__name__}: {error}", request.content_type or ""))
            body = json.dumps({"error": "invalid_request"})
            return Response(body, status=400, content_type="application/json")(environ, start_response)
        self._record(Received(claims, None, request.content_type or ""))
        sid = str(claims.get("sid"))
        hold = self.holds.get(sid)
        if hold is not None:
            hold.wait(timeout=60)
        status = self.statuses.get(sid, 200)
        with self._changed:
            self.answered.append(sid)
            self._changed.notify_all()
        return Response(status=status, headers={"Cache-Control": "no-store"})(environ, start_response)

    def validate(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("typ") != "logout+jwt":
            raise ValueError(f"typ {header.get('typ')!r}")
        keys = jwt.PyJWKSet.from_dict(requests.get(f"{self.issuer}/jwks", timeout=10).json())
        key = next(k for k in keys.keys if k.key_id == header["kid"])
        claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], issuer=self.issuer,
                                            audience=self.client_id, options={"require": ["iat", "exp", "jti"]})
        if not isinstance(claims.get("events"), dict) or claims["events"].get(LOGOUT_EVENT) != {}:
            raise ValueError("no back-channel logout event")
        if "nonce" in claims:
            raise ValueError("a nonce in a logout token")
        if not claims.get("sid") and not claims.get("sub"):
            raise ValueError("neither sid nor sub")
        return claims

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def tokens_for(self, sid: str) -> list[dict[str, Any]]:
        with self._changed:
            return [r.claims for r in self.received if r.claims is not None and r.claims.get("sid") == sid]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> bool:
        """Wait (bounded) until ``condition`` holds, re-checked at each POST received or answered."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))
        return True
