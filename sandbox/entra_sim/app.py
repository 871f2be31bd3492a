"""Microsoft Entra ID simulator: the v2.0 endpoints the broker uses, with personas instead of a directory.

Paths follow ``login.microsoftonline.com``: ``/{tenant}/v2.0/.well-known/openid-configuration``,
``/{tenant}/oauth2/v2.0/authorize|token|logout`` and ``/{tenant}/discovery/v2.0/keys``, where
``{tenant}`` is ``organizations``, ``common``, a tenant GUID or a verified domain. The App Service
managed-identity endpoint (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``) lives at ``/msi/token``.

MSAL against this host (msal 1.39): ``ConfidentialClientApplication(client_id, client_credential=...,
authority=f"{base}/organizations", instance_discovery=False)``. ``instance_discovery=False`` is
required: for a host MSAL does not know it would otherwise ask
``login.microsoftonline.com/common/discovery/instance`` (and it is a no-op for Microsoft hosts, so
the broker can always pass it). With ``authority=`` MSAL reads ``{authority}/v2.0/.well-known/...``
and does no issuer check. ``oidc_authority=f"{base}/organizations/v2.0"`` works too: the PR #840
check accepts the templated issuer ``{base}/{tenantid}/v2.0`` only because it has the authority's
scheme and host. Either way MSAL does not verify the ID token (1.38+): the caller must check its
signature against the JWKS, its tenant-specific ``iss`` (from ``tid``) and its ``aud``.
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import unquote_plus

import jwt
from flask import Flask
from flask import Response
from flask import jsonify
from flask import render_template
from flask import request

from sandbox.entra_sim.model import AZURE_AD_TOKEN_EXCHANGE
from sandbox.entra_sim.model import AZURE_AD_TOKEN_EXCHANGE_APP_ID
from sandbox.entra_sim.model import AppRegistration
from sandbox.entra_sim.model import Authentication
from sandbox.entra_sim.model import AuthRequest
from sandbox.entra_sim.model import EntraSimConfig
from sandbox.entra_sim.model import SimError
from sandbox.entra_sim.model import Store
from sandbox.entra_sim.model import TenantState
from sandbox.entra_sim.model import WindowsSession
from sandbox.entra_sim.model import discovery_document
from sandbox.entra_sim.model import parse_authorize
from sandbox.entra_sim.model import redirect_to
from sandbox.entra_sim.model import resolve_tenant
from sandbox.entra_sim.model import token_error
from sandbox.entra_sim.personas import EntraPersona
from sandbox.entra_sim.personas import find_persona
from sandbox.entra_sim.switches import SWITCHES
from sandbox.oidc_keys import KeySet
from sandbox.oidc_keys import b64url
from sandbox.oidc_keys import pkce_matches

__all__ = ["create_app"]

PRT_COOKIE = "x-ms-RefreshTokenCredential"
"""The cookie Windows injects for PRT SSO; here it names the sim's server-side Windows session."""

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
CODE_LIFETIME = 600  # Entra codes live about 10 minutes
TOKEN_LIFETIME = 3600
MI_TOKEN_LIFETIME = 24 * 3600  # managed-identity tokens are long-lived

_REASONS = {
    "login": "Une nouvelle authentification est demandée.",
    "select_account": "Choisissez le compte à utiliser.",
    "max_age": "Votre dernière authentification est trop ancienne : authentifiez-vous à nouveau.",
}

_STRONG_METHODS = "Windows Hello Entreprise, une clé de sécurité FIDO2 ou une carte CPx (certificat)"


def create_app(base_url: str, config: EntraSimConfig) -> Flask:
    """The simulator as a Flask app; ``base_url`` is where it is served (``https://127.0.0.1:7072``)."""
    sim = _EntraSimulator(base_url.rstrip("/"), config)
    app = Flask(__name__)
    rule = app.add_url_rule
    rule("/<tenant>/v2.0/.well-known/openid-configuration", view_func=sim.discovery)
    rule("/<tenant>/discovery/v2.0/keys", view_func=sim.jwks)
    rule("/discovery/v2.0/keys", view_func=sim.jwks, defaults={"tenant": "common"})
    rule("/<tenant>/oauth2/v2.0/authorize", view_func=sim.authorize, methods=["GET", "POST"])
    rule("/<tenant>/login", view_func=sim.login, methods=["POST"])
    rule("/<tenant>/oauth2/v2.0/token", view_func=sim.token, methods=["POST"])
    rule("/<tenant>/oauth2/v2.0/logout", view_func=sim.logout, methods=["GET", "POST"])
    rule("/msi/token", view_func=sim.msi_token)
    rule("/personas", view_func=sim.list_personas)
    rule("/_sim/last-authorize", view_func=sim.last_authorize)
    rule("/_sim/rotate-keys", view_func=sim.rotate_keys, methods=["POST"])
    rule("/<tenant>/cancel", view_func=sim.cancel, methods=["POST"])
    sim.switches.register_routes(app)
    return app


@dataclass(frozen=True)
class _Grant:
    """What a code or refresh token stands for."""

    request: AuthRequest
    auth: Authentication
    expires_at: float
    acrs: tuple[str, ...] = ()  # the requested contexts Conditional Access granted


class _EntraSimulator:
    def __init__(self, base: str, config: EntraSimConfig) -> None:
        self.base = base
        self.config = config
        self.apps = {app.client_id: app for app in config.apps}
        self.personas = {p.id: p for p in config.personas}
        self.keys = KeySet()
        self.store: Store[_Grant] = Store()
        self.tenant = TenantState(personas=config.personas)
        self.switches = SWITCHES.bind(self.tenant)

    # -- discovery and keys --------------------------------------------------------------------

    def discovery(self, tenant: str) -> Response:
        tid = resolve_tenant(tenant, self.config)
        if tid is None:
            return token_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        return jsonify(discovery_document(self.base, tenant, tid))

    def jwks(self, tenant: str) -> Response:
        return jsonify(self.keys.jwks())

    # -- authorize -----------------------------------------------------------------------------

    def authorize(self, tenant: str) -> Response:
        params = {key: request.values.get(key, "") for key in request.values}
        self.store.remember_authorize(params)
        tid = resolve_tenant(tenant, self.config)
        if tid is None:
            return self._page_error(90002, f"Tenant '{tenant}' not found.")
        client_id = params.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            return self._page_error(700016, f"Application with identifier '{client_id}' was not found.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return self._page_error(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
                f"URIs configured for the application '{client_id}'.",
            )
        try:
            req, prompt, max_age = parse_authorize(tenant, params)
            return self._sign_in(req, prompt, max_age, params.get("login_hint", ""))
        except SimError as exc:
            mode = "form_post" if params.get("response_mode") == "form_post" else "query"
            return self._respond(redirect_uri, mode, exc.redirect_params(params.get("state", "")))

    def _sign_in(self, req: AuthRequest, prompt: str, max_age: int | None, login_hint: str) -> Response:
        """OIDC Core 3.1.2.1 as Entra applies it: SSO from the browser's or the machine's session,
        unless ``prompt=login`` or ``max_age`` asks for a fresh authentication (Entra honours
        ``max_age`` although its docs do not list it: MicrosoftDocs/azure-docs#51307, and
        msal-python#444/#455 report the re-authentication it triggers)."""
        allowed = self._personas_for(req.tenant)
        session = self._session(allowed)
        hinted = find_persona(login_hint, self.config.personas)
        someone_else = hinted is not None and session is not None and hinted.id != session.persona_id
        stale = session is not None and (prompt == "login" or _older_than(session, max_age, self.tenant.now()))
        if prompt == "none":
            if session is None or someone_else:
                raise SimError("login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
            if stale:
                raise SimError("interaction_required", 50078,
                               "Presented multi-factor authentication has expired due to policies configured by "
                               "your administrator, you must refresh your multi-factor authentication to access "
                               f"'{req.client_id}'.")
            if self.tenant.granted_contexts(req.acrs, self.personas[session.persona_id]) is None:
                raise SimError("interaction_required", 50076,
                               "Due to a configuration change made by your administrator, or because you moved to "
                               "a new location, you must use multi-factor authentication to access "
                               f"'{req.client_id}'.")
            return self._complete(req, session)
        if prompt == "select_account" or (hinted is None and session is None):
            return self._login_page(req, allowed, _REASONS.get(prompt, ""))
        if hinted is not None and (session is None or someone_else):
            if hinted.id not in allowed:
                return self._page_error(
                    50020, f"User account '{hinted.preferred_username}' does not exist in tenant '{req.tenant}'."
                )
            return self._authenticate(req, hinted)  # the login_hint stands for typing that account's credentials
        assert session is not None
        if stale:  # the same person proves it again: for Windows Hello, the Windows Hello prompt
            reason = _REASONS["login" if prompt == "login" else "max_age"]
            return self._reauth_page(req, self.personas[session.persona_id], reason)
        return self._complete(req, session)  # PRT SSO: signed in from the Windows session, no screen

    def _session(self, allowed: dict[str, EntraPersona]) -> Authentication | None:
        """The browser's Entra session (PRT cookie), else the machine's Windows session (switch)."""
        session = self.store.sessions.get(request.cookies.get(PRT_COOKIE, ""))
        if session is None and self.tenant.windows_session is not None:
            windows = self.tenant.windows_session
            session = Authentication(windows.persona_id, windows.auth_time, windows.sid)
        return session if session is not None and session.persona_id in allowed else None

    def login(self, tenant: str) -> Response:
        """The login page's form (the persona button the user pressed) or the re-authentication prompt."""
        req = self.store.pop_pending(request.form.get("request_id", ""))
        persona = self.personas.get(request.form.get("persona", ""))
        if req is None or persona is None or persona.id not in self._personas_for(req.tenant):
            return self._page_error(90014, "The sign-in request expired or the account is unknown.")
        return self._authenticate(req, persona)

    def cancel(self, tenant: str) -> Response:
        """The user backs out of a step-up prompt: Entra returns ``access_denied`` with subcode ``cancel``."""
        req = self.store.pop_pending(request.form.get("request_id", ""))
        if req is None:
            return self._page_error(90014, "The sign-in request expired.")
        error = SimError("access_denied", 53003, "Access has been blocked by Conditional Access policies. "
                         "The access policy does not allow token issuance.", subcode="cancel")
        return self._respond(req.redirect_uri, req.response_mode, error.redirect_params(req.state))

    def _authenticate(self, req: AuthRequest, persona: EntraPersona) -> Response:
        """A fresh sign-in of ``persona`` (new ``auth_time``); SSO personas get a Windows session."""
        auth = Authentication(persona_id=persona.id, auth_time=int(self.tenant.now()), sid=str(uuid.uuid4()))
        response = self._complete(req, auth)
        if persona.sso:
            handle = secrets.token_urlsafe(32)
            self.store.sessions[handle] = auth
            response.set_cookie(PRT_COOKIE, handle, secure=True, httponly=True, samesite="Lax")
            windows = self.tenant.windows_session
            if windows is not None and windows.persona_id == persona.id:  # the PRT now carries this MFA
                self.tenant.windows_session = WindowsSession(persona.id, auth.auth_time, windows.sid)
        return response

    def _complete(self, req: AuthRequest, auth: Authentication) -> Response:
        """Conditional Access after the primary authentication: a code, or the step-up prompt."""
        persona = self.personas[auth.persona_id]
        granted = self.tenant.granted_contexts(req.acrs, persona)
        if granted is None:
            return self._step_up_page(req, persona)
        return self._issue_code(req, auth, granted)

    def _issue_code(self, req: AuthRequest, auth: Authentication, acrs: tuple[str, ...]) -> Response:
        code = secrets.token_urlsafe(48)
        self.store.put_code(code, _Grant(req, auth, self.tenant.now() + CODE_LIFETIME, acrs))
        params = {"code": code, "state": req.state, "session_state": auth.sid}
        return self._respond(req.redirect_uri, req.response_mode, {k: v for k, v in params.items() if v})

    def _respond(self, redirect_uri: str, mode: str, params: dict[str, str]) -> Response:
        if mode == "form_post":
            html = render_template("form_post.html", action=redirect_uri, fields=params)
            return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
        return redirect_to(redirect_uri, params)

    def _login_page(self, req: AuthRequest, allowed: dict[str, EntraPersona], reason: str) -> Response:
        request_id = self.store.add_pending(req)
        html = render_template(
            "login.html",
            personas=list(allowed.values()),
            request_id=request_id,
            action=f"/{req.tenant}/login",
            reason=reason,
        )
        return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    def _reauth_page(self, req: AuthRequest, persona: EntraPersona, reason: str) -> Response:
        """The same account proves itself again: Windows Hello's prompt, the card's PIN..."""
        html = render_template(
            "reauth.html", persona=persona, request_id=self.store.add_pending(req), reason=reason,
            action=f"/{req.tenant}/login",
        )
        return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    def _step_up_page(self, req: AuthRequest, persona: EntraPersona) -> Response:
        """An enforced policy needs a stronger method than the one used, and the account has none: the
        sign-in stops on Entra's page (the only way back is to cancel)."""
        html = render_template(
            "stepup.html", persona=persona, methods=_STRONG_METHODS, request_id=self.store.add_pending(req),
            action=f"/{req.tenant}/cancel",
        )
        return Response(html, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})

    def _page_error(self, code: int, message: str) -> Response:
        html = render_template(
            "message.html", title="Connexion impossible", message="Un problème empêche la connexion à votre compte.",
            detail=f"AADSTS{code}: {message}",  # Entra keeps its technical details in English
        )
        return Response(html, status=400, content_type="text/html; charset=utf-8")

    def _personas_for(self, tenant: str) -> dict[str, EntraPersona]:
        tid = resolve_tenant(tenant, self.config)
        multi = tenant in ("organizations", "common")
        return {p.id: p for p in self.config.personas if multi or p.tid == tid}

    # -- token ---------------------------------------------------------------------------------

    def token(self, tenant: str) -> Response:
        if resolve_tenant(tenant, self.config) is None:
            return token_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        try:
            app = self._client()
            grant_type = request.form.get("grant_type", "")
            if grant_type == "authorization_code":
                return self._tokens(app, self._redeem_code(app), with_nonce=True)
            if grant_type == "refresh_token":
                grant = self.store.refresh_tokens.get(request.form.get("refresh_token", ""))
                if grant is None or grant.request.client_id != app.client_id:
                    raise SimError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
                return self._tokens(app, grant, with_nonce=False)
            raise SimError("unsupported_grant_type", 70003, f"The grant type '{grant_type}' is not supported.")
        except SimError as exc:
            return exc.token_response()

    def _client(self) -> AppRegistration:
        """Client authentication: secret (post or basic) or a federated managed-identity assertion."""
        client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        basic = request.authorization
        if basic is not None and basic.type == "basic":
            client_id, secret = unquote_plus(basic.username or ""), unquote_plus(basic.password or "")
        app = self.apps.get(client_id)
        if app is None:
            raise SimError("unauthorized_client", 700016, f"Application with identifier '{client_id}' was not found.")
        assertion = request.form.get("client_assertion", "")
        if assertion:
            if request.form.get("client_assertion_type") != JWT_BEARER:
                raise SimError("invalid_request", 50027, "client_assertion_type must be jwt-bearer.")
            self._check_assertion(app, assertion)
            return app
        if secret:
            if app.client_secret and hmac.compare_digest(secret.encode(), app.client_secret.encode()):
                return app
            raise SimError("invalid_client", 7000215, "Invalid client secret provided.", status=401)
        raise SimError(
            "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            status=401,
        )

    def _check_assertion(self, app: AppRegistration, assertion: str) -> None:
        """The assertion must be signed here (a managed-identity token) and match a federated credential."""
        try:
            claims = self.keys.verify(assertion)
        except jwt.InvalidTokenError as exc:
            raise SimError(
                "invalid_client", 700027, f"Client assertion failed signature validation: {exc}.", status=401
            ) from exc
        aud = claims.get("aud")
        audiences: list[object] = list(aud) if isinstance(aud, list) else [aud]
        audiences = [AZURE_AD_TOKEN_EXCHANGE if a == AZURE_AD_TOKEN_EXCHANGE_APP_ID else a for a in audiences]
        presented = {(claims.get("iss"), claims.get("sub"), aud) for aud in audiences}
        if not presented & {tuple(fc) for fc in app.federated_credentials}:
            raise SimError(
                "invalid_client", 70021,
                "No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'. "
                f"Assertion Audience: '{claims.get('aud')}'.",
                status=401,
            )

    def _redeem_code(self, app: AppRegistration) -> _Grant:
        code = request.form.get("code", "")
        grant, redeemed = self.store.pop_code(code)
        if grant is None:
            if redeemed:
                raise SimError("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed.")
            raise SimError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        req = grant.request
        if req.client_id != app.client_id:
            raise SimError("invalid_grant", 70000, "Provided grant is invalid or malformed.")
        if grant.expires_at < self.tenant.now():
            raise SimError("invalid_grant", 70008, "The provided authorization code has expired.")
        if request.form.get("redirect_uri", "") != req.redirect_uri:
            raise SimError("invalid_grant", 50011, "The redirect URI does not match the authorization request.")
        if req.code_challenge:
            verifier = request.form.get("code_verifier", "")
            if not verifier:
                raise SimError("invalid_request", 900144, "The request body must contain 'code_verifier'.")
            if not pkce_matches(verifier, req.code_challenge, req.code_challenge_method):
                raise SimError(
                    "invalid_grant", 501481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                )
        return grant

    def _tokens(self, app: AppRegistration, grant: _Grant, *, with_nonce: bool) -> Response:
        req, auth = grant.request, grant.auth
        persona = self.personas[auth.persona_id]
        now = int(self.tenant.now())
        issuer = f"{self.base}/{persona.tid}/v2.0"
        common = {"iss": issuer, "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME, "tid": persona.tid,
                  "oid": persona.oid, "name": persona.name, "preferred_username": persona.preferred_username,
                  "ver": "2.0"}
        id_claims = {**common, "aud": app.client_id, "sub": persona.pairwise_sub(app.client_id),
                     "sid": auth.sid, "uti": b64url(secrets.token_bytes(16))}
        if with_nonce and req.nonce:
            id_claims["nonce"] = req.nonce
        id_claims.update(self._optional_claims(app, grant))
        scopes = req.scope.split()
        access = {**common, "aud": GRAPH_APP_ID, "sub": persona.pairwise_sub(GRAPH_APP_ID), "azp": app.client_id,
                  "scp": " ".join(s for s in scopes if s != "offline_access"), "uti": b64url(secrets.token_bytes(16))}
        body: dict[str, object] = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if s != "offline_access"),
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": self.keys.sign(access),
        }
        if "openid" in scopes:
            body["id_token"] = self.tenant.id_token_faults.mint(self.keys, id_claims)
        if "offline_access" in scopes:
            refresh = secrets.token_urlsafe(64)
            self.store.refresh_tokens[refresh] = grant
            body["refresh_token"] = refresh
        if request.form.get("client_info") == "1":  # MSAL asks it to build the account's home id
            body["client_info"] = b64url(json.dumps({"uid": persona.oid, "utid": persona.tid}).encode())
        return Response(json.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _optional_claims(self, app: AppRegistration, grant: _Grant) -> dict[str, object]:
        """auth_time only when the registration declares it (optional-claims-reference.md). acrs: the
        requested contexts Conditional Access granted, declared or not (an explicit request is "the only
        way to get an ACRS" without the opt-in), plus, with the opt-in, the contexts whose enforced
        policies this sign-in satisfies. v2.0 tokens never carry amr."""
        declared = self.tenant.optional_claims(app)
        claims: dict[str, object] = {}
        if "auth_time" in declared:
            claims["auth_time"] = grant.auth.auth_time
        acrs = list(grant.acrs)
        if "acrs" in declared:
            persona = self.personas[grant.auth.persona_id]
            acrs += [v for v in self.tenant.opportunistic_contexts(persona) if v not in acrs]
        if acrs:
            claims["acrs"] = acrs
        return claims

    # -- logout, managed identity, introspection -----------------------------------------------

    def logout(self, tenant: str) -> Response:
        # Entra's sign-out ends its web session but never the Windows session: the PRT stays, so an
        # SSO persona is signed in again silently afterwards, as on a real workstation.
        target = request.values.get("post_logout_redirect_uri", "")
        if target and any(target in app.redirect_uris for app in self.config.apps):
            state = request.values.get("state", "")
            return redirect_to(target, {"state": state} if state else {})
        html = render_template("message.html", title="Déconnexion", message="Vous êtes déconnecté de ce compte.")
        return Response(html, content_type="text/html; charset=utf-8")

    def msi_token(self) -> Response:
        """App Service / Functions managed-identity endpoint (api-version 2019-08-01), as MSAL calls it."""
        mi = self.config.managed_identity

        def fail(status: int, message: str) -> Response:
            return Response(json.dumps({"statusCode": status, "message": message}), status=status,
                            content_type="application/json")

        if not hmac.compare_digest(request.headers.get("X-IDENTITY-HEADER", ""), self.config.identity_header):
            return fail(401, "The X-IDENTITY-HEADER header is missing or invalid.")
        if request.args.get("api-version") != "2019-08-01":
            return fail(400, "The api-version is missing or not supported (2019-08-01).")
        resource = request.args.get("resource", "")
        if not resource:
            return fail(400, "The resource parameter is required.")
        wanted_client = request.args.get("client_id")
        wanted_object = request.args.get("object_id") or request.args.get("principal_id")
        if (mi is None or not (wanted_client or wanted_object)  # no system-assigned identity here
                or (wanted_client and wanted_client != mi.client_id)
                or (wanted_object and wanted_object != mi.principal_id)):
            return fail(400, "No User Assigned or Delegated Managed Identity found for specified ClientId.")
        now = int(self.tenant.now())
        # v2.0 tokens name the resource by its application id: the token-exchange URI becomes the
        # AAD Token Exchange app id, which Entra matches against a federated credential's URI.
        audience = AZURE_AD_TOKEN_EXCHANGE_APP_ID if resource == AZURE_AD_TOKEN_EXCHANGE else resource
        claims = {
            "aud": audience, "iss": f"{self.base}/{mi.tenant}/v2.0", "iat": now, "nbf": now,
            "exp": now + MI_TOKEN_LIFETIME, "sub": mi.principal_id, "oid": mi.principal_id, "tid": mi.tenant,
            "azp": mi.client_id, "idtyp": "app", "uti": b64url(secrets.token_bytes(16)), "ver": "2.0",
        }
        return jsonify({
            "access_token": self.keys.sign(claims),
            "expires_on": str(now + MI_TOKEN_LIFETIME),  # App Service sends epoch seconds as a string
            "resource": resource,
            "token_type": "Bearer",
            "client_id": mi.client_id,
        })

    def list_personas(self) -> Response:
        return jsonify([p.public() for p in self.config.personas])

    def last_authorize(self) -> Response:
        params = self.store.last_authorize
        if params is None:
            return Response(json.dumps({"error": "no authorize request yet"}), 404, content_type="application/json")
        return jsonify(params)

    def rotate_keys(self) -> Response:
        key = self.keys.rotate()
        return jsonify({"kid": key.kid, "kids": self.keys.kids()})



def _older_than(session: Authentication, max_age: int | None, now: float) -> bool:
    """``max_age=0`` always asks for a fresh authentication, even within the same second."""
    return max_age is not None and (max_age == 0 or int(now) - session.auth_time > max_age)
