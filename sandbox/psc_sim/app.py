"""Pro Santé Connect simulator: the Keycloak realm ``esante-wallet`` and the wallet login page.

Paths as PSC: issuer ``{base}/auth/realms/esante-wallet``, discovery at
``{issuer}/.well-known/wallet-openid-configuration`` (ANS's name) and ``.../openid-configuration``,
authorization at the wallet host's ``/auth`` (here ``{base}/wallet/auth``), Keycloak's
``protocol/openid-connect/{token,userinfo,certs,logout}``. The discovery document advertises only
what the simulator implements. There is no PSC SSO session: every authorization authenticates
afresh, so ``prompt=none`` always answers ``login_required``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import unquote_plus
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
from flask import Flask
from flask import Response
from flask import jsonify
from flask import render_template
from flask import request

from sandbox.oidc_keys import KeySet
from sandbox.oidc_keys import b64url
from sandbox.oidc_keys import pkce_matches
from sandbox.psc_sim.personas import CARD
from sandbox.psc_sim.personas import PERSONAS
from sandbox.psc_sim.personas import PscPersona
from sandbox.psc_sim.personas import find_persona

REALM_PATH = "/auth/realms/esante-wallet"
WALLET_AUTH_PATH = "/wallet/auth"
CODE_LIFETIME = 60  # Keycloak's default access code lifespan
ACCESS_TOKEN_LIFETIME = 120  # PSC access tokens last 2 minutes (reference 1.9)
SCOPES = ("openid", "scope_all")
ACR = "eidas1"  # the level every PSC means gives, and the only one the ANS connector accepts


@dataclass(frozen=True)
class PscClient:
    """A service registered with PSC (through the ANS portal in real life)."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    # Keycloak's userinfo_signed_response_alg=RS256: userinfo as an application/jwt (reference §1.7).
    userinfo_signed: bool = False


@dataclass(frozen=True)
class PscSimConfig:
    """The registered clients and the identities the wallet offers."""

    clients: tuple[PscClient, ...]
    personas: tuple[PscPersona, ...] = PERSONAS


@dataclass(frozen=True)
class _AuthRequest:
    client_id: str
    redirect_uri: str
    response_mode: str
    state: str
    nonce: str
    scope: str
    code_challenge: str
    code_challenge_method: str


@dataclass(frozen=True)
class _Grant:
    request: _AuthRequest
    persona_id: str
    auth_time: int
    session_state: str
    expires_at: float


class _Error(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status


def sandbox_config(
    client_id: str,
    client_secret: str,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...] = (),
) -> PscSimConfig:
    """One registered client (the broker) and the default personas."""
    return PscSimConfig(clients=(PscClient(client_id, client_secret, redirect_uris, post_logout_redirect_uris),))


def create_app(base_url: str, config: PscSimConfig) -> Flask:
    """The simulator as a Flask app; ``base_url`` is where it is served (``https://127.0.0.1:7073``)."""
    sim = _PscSimulator(base_url.rstrip("/"), config)
    app = Flask(__name__)
    rule = app.add_url_rule
    oidc = f"{REALM_PATH}/protocol/openid-connect"
    rule(f"{REALM_PATH}/.well-known/wallet-openid-configuration", view_func=sim.discovery)
    rule(f"{REALM_PATH}/.well-known/openid-configuration", "discovery_keycloak", view_func=sim.discovery)
    rule(WALLET_AUTH_PATH, view_func=sim.authorize, methods=["GET", "POST"])
    rule(f"{oidc}/auth", "authorize_keycloak", view_func=sim.authorize, methods=["GET", "POST"])
    rule("/wallet/login", view_func=sim.login, methods=["POST"])
    rule(f"{oidc}/token", view_func=sim.token, methods=["POST"])
    rule(f"{oidc}/userinfo", view_func=sim.userinfo, methods=["GET", "POST"])
    rule(f"{oidc}/certs", view_func=sim.certs)
    rule(f"{oidc}/logout", view_func=sim.logout, methods=["GET", "POST"])
    rule("/personas", view_func=sim.list_personas)
    rule("/_sim/last-authorize", view_func=sim.last_authorize)
    rule("/_sim/rotate-keys", view_func=sim.rotate_keys, methods=["POST"])
    return app


def _redirect_to(uri: str, params: dict[str, str]) -> Response:
    """A bodiless 302 to ``uri`` with ``params`` added to its query."""
    separator = "&" if urlsplit(uri).query else "?"
    response = Response(status=302, headers={"Location": f"{uri}{separator}{urlencode(params)}" if params else uri})
    del response.headers["Content-Type"]
    return response


class _PscSimulator:
    def __init__(self, base: str, config: PscSimConfig) -> None:
        self.base = base
        self.issuer = base + REALM_PATH
        self.config = config
        self.clients = {c.client_id: c for c in config.clients}
        self.personas = {p.id: p for p in config.personas}
        self.keys = KeySet()
        self._lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._pending: dict[str, _AuthRequest] = {}
        self._last_authorize: dict[str, str] | None = None

    def discovery(self) -> Response:
        oidc = f"{self.issuer}/protocol/openid-connect"
        return jsonify(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.base + WALLET_AUTH_PATH,
                "token_endpoint": f"{oidc}/token",
                "userinfo_endpoint": f"{oidc}/userinfo",
                "end_session_endpoint": f"{oidc}/logout",
                "jwks_uri": f"{oidc}/certs",
                "grant_types_supported": ["authorization_code"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "form_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "scopes_supported": list(SCOPES),
                "acr_values_supported": [ACR],
                "claims_supported": [
                    "aud", "sub", "iss", "auth_time", "given_name", "family_name", "preferred_username", "acr",
                ],
                "claims_parameter_supported": False,
                "request_parameter_supported": False,
                "request_uri_parameter_supported": False,
                "authorization_response_iss_parameter_supported": True,
            }
        )

    def certs(self) -> Response:
        return jsonify(self.keys.jwks())

    # -- authorization (the wallet) ------------------------------------------------------------

    def authorize(self) -> Response:
        params = {key: request.values.get(key, "") for key in request.values}
        self._last_authorize = params
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return self._page("Client inconnu", "Ce service n'est pas enregistré auprès de Pro Santé Connect.", 400)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return self._page("Adresse de retour invalide", "Paramètre invalide : redirect_uri non enregistré.", 400)
        mode = "form_post" if params.get("response_mode") == "form_post" else "query"
        try:
            req = self._parse(params, mode)
            if params.get("prompt") == "none":  # no PSC session is ever kept here
                raise _Error("login_required", "No session and prompt=none")
            persona = find_persona(params.get("login_hint"), self.config.personas)
            if persona is not None:
                return self._issue_code(req, persona)
            request_id = secrets.token_urlsafe(24)
            with self._lock:
                self._pending[request_id] = req
            cards = [p for p in self.config.personas if p.auth_mode == CARD]
            mobiles = [p for p in self.config.personas if p.auth_mode != CARD]
            html = render_template("wallet.html", request_id=request_id, cards=cards, mobiles=mobiles)
            return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
        except _Error as exc:
            error = {"error": exc.error, "error_description": exc.description, "iss": self.issuer}
            return self._respond(redirect_uri, mode, {**error, "state": params.get("state", "")})

    def _parse(self, params: dict[str, str], mode: str) -> _AuthRequest:
        if params.get("response_type") != "code":
            raise _Error("unsupported_response_type", "Client is not allowed to use this response_type.")
        if params.get("response_mode", "query") not in ("query", "form_post"):
            raise _Error("invalid_request", "Invalid parameter: response_mode")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes or any(s not in SCOPES for s in scopes):
            raise _Error("invalid_scope", "Invalid scopes: " + params.get("scope", ""))
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "") or ("plain" if challenge else "")
        if method not in ("", "plain", "S256"):
            raise _Error("invalid_request", "Invalid parameter: code challenge method is not supported.")
        return _AuthRequest(
            client_id=params["client_id"], redirect_uri=params["redirect_uri"], response_mode=mode,
            state=params.get("state", ""), nonce=params.get("nonce", ""), scope=" ".join(scopes),
            code_challenge=challenge, code_challenge_method=method,
        )

    def login(self) -> Response:
        """The wallet form: the card or e-CPS identity the user chose."""
        with self._lock:
            req = self._pending.pop(request.form.get("request_id", ""), None)
        persona = self.personas.get(request.form.get("persona", ""))
        if req is None or persona is None:
            return self._page("Session expirée", "La demande d'authentification a expiré, recommencez.", 400)
        return self._issue_code(req, persona)

    def _issue_code(self, req: _AuthRequest, persona: PscPersona) -> Response:
        code = secrets.token_urlsafe(48)
        session_state = str(uuid.uuid4())
        grant = _Grant(req, persona.id, int(time.time()), session_state, time.time() + CODE_LIFETIME)
        with self._lock:
            self._codes[code] = grant
        params = {"state": req.state, "session_state": session_state, "iss": self.issuer, "code": code}
        return self._respond(req.redirect_uri, req.response_mode, params)

    def _respond(self, redirect_uri: str, mode: str, params: dict[str, str]) -> Response:
        params = {k: v for k, v in params.items() if v}
        if mode == "form_post":
            html = render_template("form_post.html", action=redirect_uri, fields=params)
            return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
        return _redirect_to(redirect_uri, params)

    def _page(self, title: str, message: str, status: int = 200) -> Response:
        html = render_template("message.html", title=title, message=message, status_is_error=status >= 400)
        return Response(html, status=status, content_type="text/html; charset=utf-8")

    # -- token and userinfo --------------------------------------------------------------------

    def token(self) -> Response:
        try:
            client = self._client()
            if request.form.get("grant_type") != "authorization_code":
                raise _Error("unsupported_grant_type", "Unsupported grant_type")
            return self._tokens(client, self._redeem(client))
        except _Error as exc:
            headers = {"Cache-Control": "no-store"}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="esante-wallet"'
            body = {"error": exc.error, "error_description": exc.description}
            return Response(json.dumps(body), exc.status, headers=headers, content_type="application/json")

    def _client(self) -> PscClient:
        """client_secret_basic (PSC's usual method) or client_secret_post."""
        client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        basic = request.authorization
        if basic is not None and basic.type == "basic":
            client_id, secret = unquote_plus(basic.username or ""), unquote_plus(basic.password or "")
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(secret.encode(), client.client_secret.encode()):
            raise _Error("invalid_client", "Invalid client or Invalid client credentials", 401)
        return client

    def _redeem(self, client: PscClient) -> _Grant:
        with self._lock:
            grant = self._codes.pop(request.form.get("code", ""), None)  # single use
        if grant is None or grant.request.client_id != client.client_id:
            raise _Error("invalid_grant", "Code not valid")
        if grant.expires_at < time.time():
            raise _Error("invalid_grant", "Code is expired")
        if request.form.get("redirect_uri", "") != grant.request.redirect_uri:
            raise _Error("invalid_grant", "Incorrect redirect_uri")
        if grant.request.code_challenge:
            verifier = request.form.get("code_verifier", "")
            if not verifier:
                raise _Error("invalid_grant", "PKCE code verifier not specified")
            if not pkce_matches(verifier, grant.request.code_challenge, grant.request.code_challenge_method):
                raise _Error("invalid_grant", "PKCE verification failed: Code mismatch")
        return grant

    def _tokens(self, client: PscClient, grant: _Grant) -> Response:
        persona = self.personas[grant.persona_id]
        now = int(time.time())
        common = {
            "exp": now + ACCESS_TOKEN_LIFETIME, "iat": now, "auth_time": grant.auth_time, "iss": self.issuer,
            "sub": persona.sub, "azp": client.client_id, "session_state": grant.session_state,
            "sid": grant.session_state, "acr": ACR, "preferred_username": persona.id_nat,
        }
        access_token = self.keys.sign(
            {**common, "jti": str(uuid.uuid4()), "typ": "Bearer", "scope": grant.request.scope}
        )
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        id_claims = {**common, "jti": str(uuid.uuid4()), "aud": client.client_id, "typ": "ID",
                     "at_hash": b64url(digest[:16]), "idp": "PSC"}
        if grant.request.nonce:
            id_claims["nonce"] = grant.request.nonce
        body = {
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "token_type": "Bearer",
            "id_token": self.keys.sign(id_claims),
            "not-before-policy": 0,
            "session_state": grant.session_state,
            "scope": grant.request.scope,
        }
        return Response(json.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def userinfo(self) -> Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else request.form.get("access_token", "")
        try:
            claims = self.keys.verify(token, issuer=self.issuer)
            if claims.get("typ") != "Bearer":
                raise jwt.InvalidTokenError("not an access token")
        except jwt.InvalidTokenError:
            challenge = 'Bearer realm="esante-wallet", error="invalid_token"'
            body = {"error": "invalid_token", "error_description": "Token verification failed"}
            headers = {"WWW-Authenticate": challenge}
            return Response(json.dumps(body), 401, headers=headers, content_type="application/json")
        persona = next(p for p in self.config.personas if p.sub == claims["sub"])  # tokens are only minted for them
        # scope_all is the client scope that maps every PSC claim; without it only sub is released.
        info = persona.userinfo() if "scope_all" in claims.get("scope", "").split() else {"sub": persona.sub}
        client = next((c for c in self.config.clients if c.client_id == claims.get("azp")), None)
        if client is not None and client.userinfo_signed:
            signed = self.keys.sign({**info, "iss": self.issuer, "aud": client.client_id})
            return Response(signed, content_type="application/jwt", headers={"Cache-Control": "no-store"})
        return jsonify(info)

    # -- logout and introspection --------------------------------------------------------------

    def logout(self) -> Response:
        target = request.values.get("post_logout_redirect_uri", "")
        if not target:
            return self._page("Déconnexion", "Vous êtes déconnecté de Pro Santé Connect.")
        client_id = request.values.get("client_id", "")
        hint = request.values.get("id_token_hint", "")
        if hint:
            try:  # an expired ID token is a valid hint
                client_id = str(self.keys.verify(hint, issuer=self.issuer, verify_exp=False)["aud"])
            except jwt.InvalidTokenError:
                return self._page("Déconnexion impossible", "Paramètre invalide : id_token_hint.", 400)
        client = self.clients.get(client_id)
        if client is None:
            return self._page("Déconnexion impossible", "Paramètre manquant : id_token_hint ou client_id.", 400)
        if target not in client.post_logout_redirect_uris:
            return self._page("Déconnexion impossible", "Adresse de retour après déconnexion non enregistrée.", 400)
        state = request.values.get("state", "")
        return _redirect_to(target, {"state": state} if state else {})

    def list_personas(self) -> Response:
        return jsonify([p.public() for p in self.config.personas])

    def last_authorize(self) -> Response:
        if self._last_authorize is None:
            return Response(json.dumps({"error": "no authorize request yet"}), 404, content_type="application/json")
        return jsonify(self._last_authorize)

    def rotate_keys(self) -> Response:
        key = self.keys.rotate()
        return jsonify({"kid": key.kid, "kids": self.keys.kids()})
