"""A relying party that signs in through the broker with a third-party OIDC library (Authlib).

It does what a digital service integrated with Pro Santé Connect does, from the broker's discovery
document alone: authorization code flow with PKCE S256 and nonce, ``client_secret_basic`` at the
token endpoint, ID token verified against ``/jwks``, claims from ``/userinfo``, refresh with token
rotation (RFC 6749 6), RP-initiated logout, and back-channel logout (OpenID Connect Back-Channel Logout
1.0 §2.6: the logout token verified with joserfc, Authlib's JOSE library, against ``/jwks``, the session it names ended;
the browser that held it then sees « Vous avez été déconnecté(e) par le fournisseur d'identité »).

What it learns of a user is kept server-side (in this process's memory, as a real service keeps it in
its session store): the browser's cookie holds only a random key, and the tokens never leave the service.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response

SCOPE = "openid profile email scope_all"


def create_app(*, base_url: str, issuer: str, client_id: str, client_secret: str) -> Flask:
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(
        # Cookies are shared by every port of 127.0.0.1: a distinct name keeps the simulators' apart.
        SESSION_COOKIE_NAME="demo_session",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    oauth = OAuth(app)
    broker = oauth.register(
        "broker",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    redirect_uri = f"{base_url}/callback"
    users = UserStore()

    def current_user() -> dict[str, Any] | None:
        return users.get(session.get("key"))

    @app.get("/")
    def home() -> str:
        message = request.args.get("message")
        if users.ended(session.get("key")):
            session.pop("key", None)
            message = BACKCHANNEL_SIGNED_OUT
        return render_template("home.html", user=current_user(), message=message, issuer=issuer)

    @app.post("/backchannel-logout")
    def backchannel_logout() -> tuple[dict[str, str], int, dict[str, str]]:
        """§2.5-2.8: validate the logout token, end the session(s) it names, answer 200 (400 if invalid)."""
        headers = {"Cache-Control": "no-store"}
        try:
            claims = validate_logout_token(request.form.get("logout_token", ""), issuer=issuer, client_id=client_id,
                                           jwks=broker.fetch_jwk_set())
        except (JoseError, ValueError) as error:
            app.logger.warning("back-channel logout refused: %s", error)
            return {"error": "invalid_request"}, 400, headers
        users.end(sid=claims.get("sid"), sub=claims.get("sub"))
        return {}, 200, headers

    @app.post("/login")
    def login() -> Response:
        extra: dict[str, str] = {}
        mode = request.form.get("mode")
        if mode == "silent":
            extra["prompt"] = "none"
        elif mode == "choose":
            extra["prompt"] = "select_account"
        elif mode == "fresh":
            extra["prompt"] = "login"
        if request.form.get("login_hint"):
            extra["login_hint"] = request.form["login_hint"]
        return broker.authorize_redirect(redirect_uri, **extra)

    @app.get("/callback")
    def callback() -> Response:
        try:
            token = broker.authorize_access_token()
        except OAuthError as error:
            return redirect(url_for("home", message=f"Connexion refusée : {error.error}"))
        userinfo = broker.userinfo(token=token)
        session["key"] = users.put({
            "id_token_claims": _jsonable(token.get("userinfo") or {}),
            "userinfo": _jsonable(dict(userinfo)),
            "id_token": token.get("id_token"),
            "token": dict(token),
            "refreshed": 0,
        })
        return redirect(url_for("home"))

    @app.post("/refresh")
    def refresh() -> Response:
        """New tokens from the refresh token (rotated: the new one replaces it), then /userinfo with them."""
        user = current_user()
        if user is None:
            return redirect(url_for("home"))
        try:
            token = broker.fetch_access_token(grant_type="refresh_token", refresh_token=user["token"]["refresh_token"])
            userinfo = broker.userinfo(token=token)
        except (OAuthError, KeyError) as error:
            users.pop(session.pop("key", None))
            return redirect(url_for("home", message=f"Session terminée : {getattr(error, 'error', error)}"))
        user.update(token=dict(token), userinfo=_jsonable(dict(userinfo)), refreshed=user["refreshed"] + 1,
                    id_token=token.get("id_token") or user["id_token"])
        return redirect(url_for("home", message="Jetons renouvelés."))

    @app.post("/logout")
    def logout() -> Response:
        user = users.pop(session.pop("key", None))
        if not user:
            return redirect(url_for("home"))
        return broker.logout_redirect(
            post_logout_redirect_uri=f"{base_url}/", id_token_hint=user["id_token"], state=secrets.token_urlsafe(16)
        )

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                    "form-action 'self' https:; frame-ancestors 'none'")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.template_filter("pretty")
    def pretty(value: Any) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)

    return app


BACKCHANNEL_SIGNED_OUT = "Vous avez été déconnecté(e) par le fournisseur d'identité."
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def validate_logout_token(token: str, *, issuer: str, client_id: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """OpenID Connect Back-Channel Logout 1.0 §2.6, as a relying party checks it: signature against the
    OP's keys, ``typ`` ``logout+jwt``, ``iss``, ``aud``, ``iat`` and ``exp``, the logout event, ``sid``
    or ``sub``, and no ``nonce``. ValueError or Authlib's JoseError when it fails."""
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    if decoded.header.get("typ") != "logout+jwt":
        raise ValueError("not a logout token (typ)")
    claims = decoded.claims
    jose_jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
    ).validate(claims)
    if not isinstance(claims.get("events"), dict) or LOGOUT_EVENT not in claims["events"]:
        raise ValueError("no back-channel logout event")
    if "nonce" in claims:
        raise ValueError("a logout token never carries a nonce")
    if not claims.get("sid") and not claims.get("sub"):
        raise ValueError("neither sid nor sub")
    return dict(claims)


class UserStore:
    """The service's sessions: random key → what it knows of the user (thread-safe), and the keys of
    the sessions the identity provider ended (back-channel logout)."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, Any]] = {}
        self._ended: set[str] = set()
        self._lock = threading.Lock()

    def end(self, *, sid: str | None, sub: str | None) -> int:
        """End the sessions of ``sid`` (of ``sub`` when no sid is given, §2.7); how many."""
        with self._lock:
            keys = [key for key, user in self._users.items()
                    if (sid and user["id_token_claims"].get("sid") == sid)
                    or (not sid and sub and user["id_token_claims"].get("sub") == sub)]
            for key in keys:
                del self._users[key]
                self._ended.add(key)
        return len(keys)

    def ended(self, key: str | None) -> bool:
        """Whether the identity provider ended this session (told once)."""
        with self._lock:
            if key and key in self._ended:
                self._ended.discard(key)
                return True
            return False

    def put(self, user: dict[str, Any]) -> str:
        key = secrets.token_urlsafe(24)
        with self._lock:
            self._users[key] = {**user, "signed_in_at": int(time.time())}
        return key

    def get(self, key: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._users.get(key) if key else None

    def pop(self, key: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._users.pop(key, None) if key else None


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))
