"""Pro Santé Connect as an upstream OpenID provider (pairing and one-off sign-ins).

The request is the one ANS documents for relying parties (reference §1.3): ``scope=openid scope_all``,
``acr_values=eidas1``, a nonce, PKCE S256 and a state tied to the journey. The code is redeemed with
``client_secret_basic`` (§1.4); the ID token is verified (signature against PSC's JWKS, issuer,
audience, nonce) and its ``acr`` must be ``eidas1``, as the ANS Keycloak connector requires; the
identity is then read from userinfo (JSON, or a signed JWT when the registration asks for one, §1.7),
whose ``sub`` must be the ID token's (OIDC Core 5.3.2).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import urlencode

import jwt
import requests

from sanscouture.adapters.upstream_oidc import ALGORITHMS
from sanscouture.adapters.upstream_oidc import JWKS_TTL
from sanscouture.adapters.upstream_oidc import METADATA_TTL
from sanscouture.adapters.upstream_oidc import CachedDocument
from sanscouture.adapters.upstream_oidc import JwksCache
from sanscouture.adapters.upstream_oidc import verify_id_token
from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.models import PscAuthentication
from sanscouture.models import PscIdentity
from sanscouture.models import UpstreamStart
from sanscouture.settings import Settings

SCOPE = "openid scope_all"
REQUIRED_ACR = "eidas1"


class PscAdapter:
    """Implements :class:`sanscouture.ports.PscSignIn`."""

    def __init__(self, settings: Settings, session: requests.Session) -> None:
        self._settings = settings
        self._session = session
        self._metadata = CachedDocument(session, settings.psc_discovery_url, "psc discovery", METADATA_TTL)
        self._jwks: JwksCache | None = None

    def begin(
        self, *, redirect_uri: str, state: str, prompt: str | None = None, max_age: int | None = None
    ) -> UpstreamStart:
        metadata = self._metadata.get()
        nonce = secrets.token_hex(32)  # as the ANS connector: 32 random bytes, hex
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": self._settings.psc_client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "acr_values": REQUIRED_ACR,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if prompt:
            params["prompt"] = prompt
        if max_age is not None:
            params["max_age"] = str(max_age)
        url = f"{metadata['authorization_endpoint']}?{urlencode(params)}"
        flow = {"state": state, "nonce": nonce, "code_verifier": verifier, "redirect_uri": redirect_uri}
        return UpstreamStart(url=url, flow=flow)

    def finish(self, flow: Mapping[str, Any], response: Mapping[str, str]) -> PscAuthentication:
        if "error" in response:
            raise SignInRefused("psc_refused", detail=f"psc returned {response.get('error', '')[:64]!r}")
        if response.get("state") != flow.get("state"):
            raise SignInRefused("session_expired", detail="psc: state mismatch")
        code = response.get("code")
        if not code:
            raise SignInRefused("psc_refused", detail="psc: no code")
        tokens = self._redeem(code, flow)
        metadata = self._metadata.get()
        claims = verify_id_token(
            str(tokens.get("id_token", "")),
            self._keys(),
            audience=self._settings.psc_client_id,
            issuer=str(metadata["issuer"]),
            nonce=str(flow["nonce"]),
            provider="psc",
        )
        if claims.get("acr") != REQUIRED_ACR:
            raise SignInRefused("psc_refused", detail=f"psc acr {str(claims.get('acr'))[:16]!r} is not eidas1")
        userinfo = self._userinfo(str(tokens.get("access_token", "")), metadata)
        if userinfo.get("sub") != claims["sub"]:
            raise SignInRefused("psc_refused", detail="psc: userinfo sub differs from the ID token's")
        identity = PscIdentity.from_userinfo(userinfo)
        if not identity.subject_name_id:
            raise SignInRefused("psc_refused", detail="psc: userinfo has no SubjectNameID")
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int):
            # Without it, an old PSC SSO authentication could pass for a fresh CPS proof.
            raise SignInRefused("psc_refused", detail="psc: ID token has no auth_time")
        return PscAuthentication(identity=identity, auth_time=auth_time, acr=REQUIRED_ACR)

    def probe(self) -> None:
        """For /health: PSC's discovery document answers."""
        self._metadata.get()

    # -- internals ---------------------------------------------------------------------------

    def _redeem(self, code: str, flow: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 6749 4.1.3 with client_secret_basic (2.3.1: id and secret form-urlencoded first)."""
        token_endpoint = str(self._metadata.get()["token_endpoint"])
        try:
            response = self._session.post(
                token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": flow["redirect_uri"],
                    "code_verifier": flow["code_verifier"],
                },
                auth=(_form_encode(self._settings.psc_client_id), _form_encode(self._settings.psc_client_secret)),
                headers={"Accept": "application/json"},
            )
        except requests.RequestException as error:
            raise UpstreamUnavailableError(detail=f"psc token: {type(error).__name__}") from error
        if response.status_code >= 500:
            raise UpstreamUnavailableError(detail=f"psc token: HTTP {response.status_code}")
        try:
            tokens = response.json()
        except ValueError:
            tokens = {}
        if response.status_code != 200 or not isinstance(tokens, dict) or "id_token" not in tokens:
            code = str(tokens.get("error", "")) if isinstance(tokens, dict) else ""
            raise SignInRefused("psc_refused", detail=f"psc token: HTTP {response.status_code} {code[:64]!r}")
        return tokens

    def _userinfo(self, access_token: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._session.get(
                str(metadata["userinfo_endpoint"]),
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json, application/jwt"},
            )
        except requests.RequestException as error:
            raise UpstreamUnavailableError(detail=f"psc userinfo: {type(error).__name__}") from error
        if response.status_code != 200:
            if response.status_code >= 500:
                raise UpstreamUnavailableError(detail=f"psc userinfo: HTTP {response.status_code}")
            raise SignInRefused("psc_refused", detail=f"psc userinfo: HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/jwt":
            return self._signed_userinfo(response.text.strip(), metadata)
        try:
            userinfo = response.json()
        except ValueError as error:
            raise SignInRefused("psc_refused", detail="psc userinfo: not JSON") from error
        if not isinstance(userinfo, dict):
            raise SignInRefused("psc_refused", detail="psc userinfo: not a JSON object")
        return userinfo

    def _signed_userinfo(self, token: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """OIDC Core 5.3.2: a signed userinfo response carries iss and aud (checked when present)."""
        try:
            header = jwt.get_unverified_header(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._keys().key(header.get("kid")),
                algorithms=list(ALGORITHMS),
                options={"require": ["sub"], "verify_aud": False},
            )
        except jwt.InvalidTokenError as error:
            raise SignInRefused("psc_refused", detail=f"psc userinfo JWT: {type(error).__name__}") from error
        if "iss" in claims and claims["iss"] != metadata["issuer"]:
            raise SignInRefused("psc_refused", detail="psc userinfo JWT: unexpected issuer")
        audience = claims.get("aud")
        if audience is not None and self._settings.psc_client_id not in (
            audience if isinstance(audience, list) else [audience]
        ):
            raise SignInRefused("psc_refused", detail="psc userinfo JWT: not for this client")
        return claims

    def _keys(self) -> JwksCache:
        if self._jwks is None:
            jwks_uri = str(self._metadata.get()["jwks_uri"])
            self._jwks = JwksCache(CachedDocument(self._session, jwks_uri, "psc jwks", JWKS_TTL))
        return self._jwks


def _form_encode(value: str) -> str:
    # RFC 6749 2.3.1: client_id and client_secret are application/x-www-form-urlencoded before Basic.
    return quote_plus(value)
