"""Pro Santé Connect simulator: the Keycloak realm ``esante-wallet`` and the wallet login page.

Paths as PSC: issuer ``{base}/auth/realms/esante-wallet``, discovery at
``{issuer}/.well-known/wallet-openid-configuration`` (ANS's name) and ``.../openid-configuration``,
authorization at the wallet host's ``/auth`` (here ``{base}/wallet/auth``), Keycloak's
``protocol/openid-connect/{token,userinfo,certs,logout}``. The discovery document advertises only
what the simulator implements.

The wallet keeps an SSO session (:mod:`sandbox.psc_sim.sso`: 4 hours, 30 minutes idle): within it an
authorization is answered at once, with the session's original ``auth_time``, unless ``prompt=login``
or ``max_age`` ask for a fresh card / e-CPS authentication. The token endpoint authenticates each
client with its registered method (:mod:`sandbox.psc_sim.client_auth`). Documented behaviours a test
selects are switches (:mod:`sandbox.psc_sim.state`, served at ``/_sim/switches``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
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
from sandbox.psc_sim.client_auth import CLIENT_SECRET_BASIC
from sandbox.psc_sim.client_auth import METHODS
from sandbox.psc_sim.client_auth import PRIVATE_KEY_JWT
from sandbox.psc_sim.client_auth import ClientAuthenticator
from sandbox.psc_sim.client_auth import TokenRequest
from sandbox.psc_sim.errors import ProtocolError
from sandbox.psc_sim.personas import CARD
from sandbox.psc_sim.personas import PERSONAS
from sandbox.psc_sim.personas import PscPersona
from sandbox.psc_sim.personas import find_persona
from sandbox.psc_sim.sso import SSO_COOKIE
from sandbox.psc_sim.sso import SSO_SESSION_MAX
from sandbox.psc_sim.sso import SsoSession
from sandbox.psc_sim.sso import SsoSessions
from sandbox.psc_sim.state import SWITCHES
from sandbox.psc_sim.state import PscState

REALM_PATH = "/auth/realms/esante-wallet"
WALLET_AUTH_PATH = "/wallet/auth"
CODE_LIFETIME = 60  # Keycloak's default access code lifespan
ACCESS_TOKEN_LIFETIME = 120  # PSC access tokens last 2 minutes (ANS IG https://interop.esante.gouv.fr/ig/securisation-transport/api_prosanteconnectee_web_erreurs.html)
SCOPES = ("openid", "scope_all")
ACR = "eidas1"  # the level every PSC means gives, and the only one the ANS connector accepts
LOGOUT_CONFIRMATION_LIFETIME = 300


@dataclass(frozen=True)
class PscClient:
    """A service registered with PSC (through the ANS portal in real life)."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    # Keycloak's userinfo_signed_response_alg=RS256: userinfo as an application/jwt (which
    # ansforge/keycloak-prosanteconnect's ProSanteConnectIdentityProvider reads).
    userinfo_signed: bool = False
    # client_secret_basic (Keycloak "client-secret") or private_key_jwt ("client-jwt" with "Use JWKS URL").
    token_endpoint_auth_method: str = CLIENT_SECRET_BASIC
    jwks_uri: str | None = None

    def __post_init__(self) -> None:
        if self.token_endpoint_auth_method not in METHODS:
            raise ValueError(f"{self.client_id}: token_endpoint_auth_method must be one of {', '.join(METHODS)}")
        if self.token_endpoint_auth_method == PRIVATE_KEY_JWT and not self.jwks_uri:
            raise ValueError(f"{self.client_id}: private_key_jwt needs the client's jwks_uri")
        if self.token_endpoint_auth_method == CLIENT_SECRET_BASIC and not self.client_secret:
            raise ValueError(f"{self.client_id}: client_secret_basic needs a client_secret")


@dataclass(frozen=True)
class PscSimConfig:
    """The registered clients, the identities the wallet offers, the CA bundle that verifies the
    clients' JWKS URLs and the clock (tests move it)."""

    clients: tuple[PscClient, ...]
    personas: tuple[PscPersona, ...] = PERSONAS
    ca_bundle: str | None = None
    clock: Callable[[], float] = time.time


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


def sandbox_config(
    client_id: str,
    client_secret: str,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...] = (),
    *,
    token_endpoint_auth_method: str = CLIENT_SECRET_BASIC,
    jwks_uri: str | None = None,
    ca_bundle: str | None = None,
) -> PscSimConfig:
    """One registered client (the broker) and the default personas."""
    client = PscClient(
        client_id, client_secret, redirect_uris, post_logout_redirect_uris,
        token_endpoint_auth_method=token_endpoint_auth_method, jwks_uri=jwks_uri,
    )
    return PscSimConfig(clients=(client,), ca_bundle=ca_bundle)


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
    rule("/_sim/sso-sessions/age", view_func=sim.age_sessions, methods=["POST"])
    sim.switches.register_routes(app)
    return app


def _sso_cookie(response: Response, value: str, *, max_age: int | None = None) -> Response:
    """KEYCLOAK_IDENTITY: Secure, HttpOnly, SameSite=None as Keycloak sets it; a session cookie."""
    response.set_cookie(SSO_COOKIE, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="None")
    return response


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
        self.state = PscState()
        self.switches = SWITCHES.bind(self.state)
        self.sso = SsoSessions(self.clock)
        oidc = f"{self.issuer}/protocol/openid-connect"
        # JWTClientValidator.getExpectedAudiences: the issuer or one of the realm's endpoint URLs.
        self.client_auth = ClientAuthenticator(
            self.clients, audiences=(self.issuer, f"{oidc}/token", f"{oidc}/token/introspect"),
            ca_bundle=config.ca_bundle, clock=self.clock,
        )
        self._lock = threading.Lock()
        self._codes: dict[str, _Grant] = {}
        self._pending: dict[str, _AuthRequest] = {}
        self._logout_confirmations: dict[str, float] = {}
        self._last_authorize: dict[str, str] | None = None

    def clock(self) -> float:
        """PSC's clock: the configured one, moved by the clock-offset switch."""
        return self.config.clock() + self.state.clock_offset

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
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", PRIVATE_KEY_JWT],
                "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
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
            cookie = request.cookies.get(SSO_COOKIE)
            session = self.sso.find(cookie)
            if session is not None and cookie and not self._needs_fresh_login(params, session):
                return self._issue_code(req, self.sso.touch(cookie) or session)
            if "none" in params.get("prompt", "").split():
                raise ProtocolError("login_required", "No session and prompt=none")
            persona = find_persona(params.get("login_hint"), self.config.personas)
            if persona is not None:  # the tests' way of choosing on the wallet page
                return self._authenticate(req, persona)
            request_id = secrets.token_urlsafe(24)
            with self._lock:
                self._pending[request_id] = req
            cards = [p for p in self.config.personas if p.auth_mode == CARD]
            mobiles = [p for p in self.config.personas if p.auth_mode != CARD]
            html = render_template("wallet.html", request_id=request_id, cards=cards, mobiles=mobiles)
            return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
        except ProtocolError as exc:
            error = {"error": exc.error, "error_description": exc.description, "iss": self.issuer}
            return self._respond(redirect_uri, mode, {**error, "state": params.get("state", "")})

    def _needs_fresh_login(self, params: dict[str, str], session: SsoSession) -> bool:
        """Keycloak's OIDCLoginProtocol.requireReauthentication: prompt=login, or a max_age the session's
        authentication is older than (``auth_time + max_age < now``, in whole seconds, as Keycloak)."""
        if self.state.wallet_ignores_prompt_login:
            return False
        if "login" in params.get("prompt", "").split():
            return True
        max_age = params.get("max_age", "")
        return max_age.isdigit() and session.auth_time + int(max_age) < int(self.clock())

    def _parse(self, params: dict[str, str], mode: str) -> _AuthRequest:
        if params.get("response_type") != "code":
            raise ProtocolError("unsupported_response_type", "Client is not allowed to use this response_type.")
        if params.get("response_mode", "query") not in ("query", "form_post"):
            raise ProtocolError("invalid_request", "Invalid parameter: response_mode")
        scopes = params.get("scope", "").split()
        if "openid" not in scopes or any(s not in SCOPES for s in scopes):
            raise ProtocolError("invalid_scope", "Invalid scopes: " + params.get("scope", ""))
        challenge = params.get("code_challenge", "")
        method = params.get("code_challenge_method", "") or ("plain" if challenge else "")
        if method not in ("", "plain", "S256"):
            raise ProtocolError("invalid_request", "Invalid parameter: code challenge method is not supported.")
        if params.get("max_age") and not params["max_age"].isdigit():
            raise ProtocolError("invalid_request", "Invalid parameter: max_age")
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
        return self._authenticate(req, persona)

    def _authenticate(self, req: _AuthRequest, persona: PscPersona) -> Response:
        """A card / e-CPS authentication just made: it opens the SSO session (replacing any other)."""
        self.sso.end(request.cookies.get(SSO_COOKIE))
        cookie, session = self.sso.open(persona.id)
        return _sso_cookie(self._issue_code(req, session), cookie)

    def _issue_code(self, req: _AuthRequest, session: SsoSession) -> Response:
        code = secrets.token_urlsafe(48)
        grant = _Grant(req, session.persona_id, session.auth_time, session.sid, self.clock() + CODE_LIFETIME)
        with self._lock:
            self._codes[code] = grant
        params = {"state": req.state, "session_state": session.sid, "iss": self.issuer, "code": code}
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
            client = self.client_auth.authenticate(
                TokenRequest(form=request.form, authorization=request.headers.get("Authorization"))
            )
            if request.form.get("grant_type") != "authorization_code":
                raise ProtocolError("unsupported_grant_type", "Unsupported grant_type")
            return self._tokens(client.client_id, self._redeem(client.client_id))
        except ProtocolError as exc:
            headers = {"Cache-Control": "no-store"}
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="esante-wallet"'
            body = {"error": exc.error, "error_description": exc.description}
            return Response(json.dumps(body), exc.status, headers=headers, content_type="application/json")

    def _redeem(self, client_id: str) -> _Grant:
        with self._lock:
            grant = self._codes.pop(request.form.get("code", ""), None)  # single use
        if grant is None or grant.request.client_id != client_id:
            raise ProtocolError("invalid_grant", "Code not valid")
        if grant.expires_at < self.clock():
            raise ProtocolError("invalid_grant", "Code is expired")
        if request.form.get("redirect_uri", "") != grant.request.redirect_uri:
            raise ProtocolError("invalid_grant", "Incorrect redirect_uri")
        if grant.request.code_challenge:
            verifier = request.form.get("code_verifier", "")
            if not verifier:
                raise ProtocolError("invalid_grant", "PKCE code verifier not specified")
            if not pkce_matches(verifier, grant.request.code_challenge, grant.request.code_challenge_method):
                raise ProtocolError("invalid_grant", "PKCE verification failed: Code mismatch")
        return grant

    def _tokens(self, client_id: str, grant: _Grant) -> Response:
        persona = self.personas[grant.persona_id]
        now = int(self.clock())
        common = {
            "exp": now + ACCESS_TOKEN_LIFETIME, "iat": now, "auth_time": grant.auth_time, "iss": self.issuer,
            "sub": persona.sub, "azp": client_id, "session_state": grant.session_state,
            "sid": grant.session_state, "acr": ACR, "preferred_username": persona.id_nat,
        }
        access_token = self.keys.sign(
            {**common, "jti": str(uuid.uuid4()), "typ": "Bearer", "scope": grant.request.scope}
        )
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        id_claims = {**common, "jti": str(uuid.uuid4()), "aud": client_id, "typ": "ID",
                     "at_hash": b64url(digest[:16]), "idp": "PSC"}
        if grant.request.nonce:
            id_claims["nonce"] = grant.request.nonce
        body = {
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "token_type": "Bearer",
            "id_token": self.state.id_token_faults.mint(self.keys, id_claims),
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
            claims = self.keys.verify(token, issuer=self.issuer, now=self.clock())
            if claims.get("typ") != "Bearer":
                raise jwt.InvalidTokenError("not an access token")
        except jwt.InvalidTokenError:
            challenge = 'Bearer realm="esante-wallet", error="invalid_token"'
            body = {"error": "invalid_token", "error_description": "Token verification failed"}
            headers = {"WWW-Authenticate": challenge}
            return Response(json.dumps(body), 401, headers=headers, content_type="application/json")
        persona = next(p for p in self.config.personas if p.sub == claims["sub"])  # tokens are only minted for them
        if self.state.userinfo_other_sub:
            persona = next(p for p in self.config.personas if p.sub != claims["sub"])
        # scope_all is the client scope that maps every PSC claim; without it only sub is released.
        info: dict[str, object] = {"sub": persona.sub}
        if "scope_all" in claims.get("scope", "").split():
            info = persona.userinfo()
        client = next((c for c in self.config.clients if c.client_id == claims.get("azp")), None)
        if client is not None and (client.userinfo_signed or self.state.userinfo_signed or self._envelope_switched()):
            return Response(self._signed_userinfo(info, client.client_id), content_type="application/jwt",
                            headers={"Cache-Control": "no-store"})
        return jsonify(info)

    def _envelope_switched(self) -> bool:
        """A switch that changes the signed userinfo's envelope implies a signed userinfo."""
        return self.state.signed_userinfo_iss is not None or self.state.signed_userinfo_aud is not None

    def _signed_userinfo(self, info: dict[str, object], client_id: str) -> str:
        """OIDC Core 5.3.2: the claims in a JWS, with iss and aud (Keycloak's UserInfoEndpoint) and the
        other registered JWT claims a signed response may carry: none of them is an identity claim."""
        now = int(self.clock())
        issuer, audience = self.state.signed_userinfo_iss or self.issuer, self.state.signed_userinfo_aud or client_id
        envelope = {"iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ACCESS_TOKEN_LIFETIME,
                    "jti": str(uuid.uuid4())}
        return self.keys.sign({**info, **envelope})

    # -- logout and introspection --------------------------------------------------------------

    def logout(self) -> Response:
        """RP-Initiated Logout as Keycloak 18+ (``protocol/oidc/endpoints/LogoutEndpoint.java``): ends the
        SSO session, at once with a valid ``id_token_hint`` (its ``sid`` names the session, no cookie
        needed); without one, a live session ends only after the person confirms ("if the user does
        not provide a valid idTokenHint, a logout prompt appears", Keycloak 19.0.2 upgrading notes).
        ``post_logout_redirect_uri`` needs the hint or ``client_id`` (Keycloak 19+)."""
        target = request.values.get("post_logout_redirect_uri", "")
        client_id = request.values.get("client_id", "")
        hint = request.values.get("id_token_hint", "")
        sid: str | None = None
        if hint:
            try:  # an expired ID token is a valid hint
                claims = self.keys.verify(hint, issuer=self.issuer, verify_exp=False)
            except jwt.InvalidTokenError:
                return self._page("Déconnexion impossible", "Paramètre invalide : id_token_hint.", 400)
            client_id, sid = str(claims["aud"]), str(claims.get("sid") or "")
        if target:
            client = self.clients.get(client_id)
            if client is None:
                return self._page("Déconnexion impossible", "Paramètre manquant : id_token_hint ou client_id.", 400)
            if target not in client.post_logout_redirect_uris:
                return self._page("Déconnexion impossible", "Adresse de retour après déconnexion non enregistrée.", 400)
        cookie = request.cookies.get(SSO_COOKIE)
        if not hint and self.sso.find(cookie) is not None and not self._logout_confirmed():
            return self._logout_confirmation()
        self.sso.end(cookie, sid)
        state = request.values.get("state", "")
        if target:
            response = _redirect_to(target, {"state": state} if state else {})
        else:
            response = self._page("Déconnexion", "Vous êtes déconnecté de Pro Santé Connect.")
        return _sso_cookie(response, "", max_age=0)

    def _logout_confirmation(self) -> Response:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._logout_confirmations[code] = self.clock() + LOGOUT_CONFIRMATION_LIFETIME
        fields = {k: request.values.get(k, "") for k in ("client_id", "post_logout_redirect_uri", "state")}
        html = render_template("logout_confirm.html", session_code=code, fields={k: v for k, v in fields.items() if v})
        return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    def _logout_confirmed(self) -> bool:
        if request.method != "POST":
            return False
        with self._lock:
            until = self._logout_confirmations.pop(request.form.get("session_code", ""), None)
        return until is not None and until >= self.clock()

    def list_personas(self) -> Response:
        return jsonify([p.public() for p in self.config.personas])

    def last_authorize(self) -> Response:
        if self._last_authorize is None:
            return Response(json.dumps({"error": "no authorize request yet"}), 404, content_type="application/json")
        return jsonify(self._last_authorize)

    def rotate_keys(self) -> Response:
        key = self.keys.rotate()
        return jsonify({"kid": key.kid, "kids": self.keys.kids()})

    def age_sessions(self) -> Response:
        """Tests' clock: every SSO session becomes N seconds older (body: a JSON number)."""
        try:
            seconds = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            seconds = None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= SSO_SESSION_MAX:
            return Response(json.dumps({"error": "the body must be a number of seconds"}), 400,
                            content_type="application/json")
        self.sso.age(seconds)
        return jsonify({"aged": seconds})
