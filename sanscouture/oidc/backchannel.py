"""OpenID Connect Back-Channel Logout 1.0: the logout token and the queue message that asks for one.

Pure functions: signing is the key ring's job, delivery is :mod:`sanscouture.backchannel`'s.

* §2.4 Logout Token: a JWT with ``iss``, ``aud`` (the client), ``iat``, ``exp``, ``jti``, ``events``
  holding the member ``http://schemas.openid.net/event/backchannel-logout`` (an empty object), ``sub``
  and/or ``sid``, and **never** ``nonce`` (so that it can never pass for an ID token).
* §2.3 / §2.4: ``typ`` ``logout+jwt`` in the header (explicit typing, RFC 8725 3.11).
* §2.2: a client registered with ``backchannel_logout_session_required`` needs ``sid``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sanscouture.models import Client

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"  # noqa: S105 - a media type, not a secret
# §2.4 leaves the lifetime to the OP; 2 minutes covers a POST and a receiver's clock skew, and keeps
# a token captured in a relying party's logs useless soon after.
LOGOUT_TOKEN_TTL = 120


@dataclass(frozen=True)
class LogoutNotice:
    """One queue message: tell ``client_id`` that the session ``sid`` of ``sub`` ended.

    ``attempt`` counts deliveries (1 for the first); a retry is a new message with ``attempt + 1``.
    ``sid`` is None when the session is unknown (the token then names the subject only).
    """

    client_id: str
    sub: str
    sid: str | None
    attempt: int = 1

    def to_message(self) -> str:
        return json.dumps({"client_id": self.client_id, "sub": self.sub, "sid": self.sid, "attempt": self.attempt},
                          separators=(",", ":"))

    @classmethod
    def from_message(cls, body: str) -> LogoutNotice:
        """Parse a queue message; ValueError when it is not one the broker wrote."""
        try:
            data = json.loads(body)
        except json.JSONDecodeError as error:
            raise ValueError("not a back-channel logout message") from error
        if not isinstance(data, dict):
            raise ValueError("not a back-channel logout message")
        client_id, sub, sid, attempt = data.get("client_id"), data.get("sub"), data.get("sid"), data.get("attempt")
        if (not isinstance(client_id, str) or not client_id or not isinstance(sub, str) or not sub
                or not (sid is None or isinstance(sid, str)) or not isinstance(attempt, int) or attempt < 1):
            raise ValueError("not a back-channel logout message")
        return cls(client_id, sub, sid, attempt)

    def retried(self) -> LogoutNotice:
        return LogoutNotice(self.client_id, self.sub, self.sid, self.attempt + 1)


def logout_token_claims(client: Client, notice: LogoutNotice, *, issuer: str, now: int, jti: str) -> dict[str, Any]:
    """The claims of the logout token for ``notice`` (§2.4); ValueError when the client requires a
    ``sid`` (§2.2 ``backchannel_logout_session_required``) and the session is not known."""
    if notice.client_id != client.client_id:
        raise ValueError("the notice is for another client")
    if client.backchannel_logout_session_required and not notice.sid:
        raise ValueError("the client requires sid and the session is not known")
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": jti,
        "sub": notice.sub,
        "events": {LOGOUT_EVENT: {}},
    }
    if notice.sid:
        claims["sid"] = notice.sid
    return claims


def notices_for(clients: tuple[Client, ...], client_ids: list[str] | tuple[str, ...], *, sub: str,
                sid: str | None) -> list[LogoutNotice]:
    """One notice per client of ``client_ids`` that registered a back-channel logout URI (each once)."""
    registered = {client.client_id: client for client in clients if client.backchannel_logout_uri}
    seen: list[str] = []
    for client_id in client_ids:
        if client_id in registered and client_id not in seen:
            seen.append(client_id)
    return [LogoutNotice(client_id, sub, sid) for client_id in seen]
