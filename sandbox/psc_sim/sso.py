"""The PSC wallet's SSO session: a browser cookie and, server side, who authenticated and when.

Keycloak keeps a user session behind its ``KEYCLOAK_IDENTITY`` cookie; a later authorization from any
client of the realm within it is answered without a login page, for the session's user and with the
session's *original* ``auth_time``: keycloak/keycloak
``services/src/main/java/org/keycloak/authentication/authenticators/browser/CookieAuthenticator.java``
authenticates on the cookie alone and never reads ``login_hint``. ``prompt=login``, or a ``max_age``
the session is older than (``auth_time + max_age < now``, whole seconds), make Keycloak ask again
(``services/src/main/java/org/keycloak/protocol/oidc/OIDCLoginProtocol.java``,
``requireReauthentication``), and the new authentication replaces the session. Lifetimes are PSC's
realm settings (ANS IG, https://interop.esante.gouv.fr/ig/securisation-transport/
api_prosanteconnectee_web_erreurs.html): SSO Session Max 4 hours, SSO Session Idle 30 minutes.

The cookie keeps Keycloak's name, which cannot clash on 127.0.0.1 (cookies ignore the port) with the
Entra simulator's ``x-ms-RefreshTokenCredential`` or the broker's ``__Host-sc-*``. It is sent for
every path here because the simulator serves the wallet page and the realm from one host.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace

SSO_COOKIE = "KEYCLOAK_IDENTITY"
SSO_SESSION_MAX = 4 * 3600
SSO_SESSION_IDLE = 30 * 60


@dataclass(frozen=True)
class SsoSession:
    """One wallet session: ``sid`` is Keycloak's user session id (``sid`` and ``session_state``)."""

    sid: str
    persona_id: str
    auth_time: int
    created_at: float
    last_seen: float

    def alive(self, now: float) -> bool:
        return now - self.created_at <= SSO_SESSION_MAX and now - self.last_seen <= SSO_SESSION_IDLE


class SsoSessions:
    """The realm's live sessions by cookie value (thread-safe); expired ones are forgotten when met."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_cookie: dict[str, SsoSession] = {}

    def open(self, persona_id: str) -> tuple[str, SsoSession]:
        """A fresh authentication: a new session (new cookie value) with ``auth_time`` now."""
        now = self._clock()
        cookie = secrets.token_urlsafe(32)
        session = SsoSession(str(uuid.uuid4()), persona_id, int(now), now, now)
        with self._lock:
            self._by_cookie[cookie] = session
        return cookie, session

    def find(self, cookie: str | None) -> SsoSession | None:
        """The live session behind ``cookie``, or None (absent, ended, 4 h old or 30 min idle)."""
        if not cookie:
            return None
        with self._lock:
            session = self._by_cookie.get(cookie)
            if session is not None and not session.alive(self._clock()):
                del self._by_cookie[cookie]
                return None
            return session

    def touch(self, cookie: str) -> SsoSession | None:
        """Record activity (the idle timeout restarts; the 4-hour maximum does not)."""
        with self._lock:
            session = self._by_cookie.get(cookie)
            if session is None:
                return None
            session = self._by_cookie[cookie] = replace(session, last_seen=self._clock())
            return session

    def end(self, cookie: str | None = None, sid: str | None = None) -> bool:
        """End the session of ``cookie`` or with Keycloak id ``sid`` (from an ``id_token_hint``)."""
        with self._lock:
            doomed = [key for key, s in self._by_cookie.items() if key == cookie or (sid and s.sid == sid)]
            for key in doomed:
                del self._by_cookie[key]
            return bool(doomed)

    def age(self, seconds: float) -> None:
        """Tests' clock: every session becomes ``seconds`` older (authentication, creation, activity)."""
        with self._lock:
            for key, s in self._by_cookie.items():
                self._by_cookie[key] = replace(
                    s, auth_time=int(s.auth_time - seconds), created_at=s.created_at - seconds,
                    last_seen=s.last_seen - seconds,
                )
