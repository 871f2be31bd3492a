"""Pro Santé Connect as an upstream OpenID provider (pairing and one-off sign-ins).

The request is the one ANS's own clients send (ansforge/keycloak-prosanteconnect, the Apache config of
prosanteconnect/proof-of-concept): ``scope=openid scope_all``,
``acr_values=eidas1``, a nonce, PKCE S256 and a state tied to the journey. The code is redeemed with
the method ANS registered the broker for (``BROKER_PSC_TOKEN_AUTH_METHOD``): ``client_secret_basic``
(§1.4), or ``private_key_jwt`` with an RFC 7523 assertion signed by the broker's own signing key
(ANS fetches the public key from the broker's ``/jwks``, Keycloak's "Use JWKS URL"). The ID token is
verified (signature against PSC's JWKS, issuer, audience, nonce) and its ``acr`` must be ``eidas1``,
as the ANS Keycloak connector requires; the identity is then read from userinfo (JSON, or a signed
JWT when the registration asks for one, §1.7), whose ``sub`` must be the ID token's (OIDC Core
5.3.2). A signed userinfo's JWT envelope (``iss``, ``aud``, ``exp``...) is not identity: it is
dropped, so that relying parties receive PSC's identity claims and nothing of PSC's envelope.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import urlencode

import jwt
import requests

from sanscouture.adapters.upstream_oidc import ALGORITHMS
from sanscouture.adapters.upstream_oidc import JWKS_TTL
from sanscouture.adapters.upstream_oidc import LEEWAY
from sanscouture.adapters.upstream_oidc import METADATA_TTL
from sanscouture.adapters.upstream_oidc import CachedDocument
from sanscouture.adapters.upstream_oidc import JwksCache
from sanscouture.adapters.upstream_oidc import verify_id_token
from sanscouture.errors import SignInRefused
from sanscouture.errors import UpstreamUnavailableError
from sanscouture.keys import KeyRing
from sanscouture.models import PscAuthentication
from sanscouture.models import PscIdentity
from sanscouture.models import UpstreamStart
from sanscouture.ports import Clock
from sanscouture.settings import PSC_PRIVATE_KEY_JWT
from sanscouture.settings import Settings

SCOPE = "openid scope_all"
REQUIRED_ACR = "eidas1"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # Keycloak refuses an assertion used more than 60 s after its iat (max exp default)
# RFC 7519 4.1 registered claims a signed userinfo carries as its JWT envelope (OIDC Core 5.3.2): PSC's,
# not the person's. "sub" is the identity's and stays.
JWT_ENVELOPE_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti"})


class PscAdapter:
    """Implements :class:`sanscouture.ports.PscSignIn`; ``keys`` signs ``private_key_jwt`` assertions."""

    def __init__(
        self, settings: Settings, session: requests.Session, keys: KeyRing | None = None, clock: Clock = time.time
    ) -> None:
        if settings.psc_token_auth_method == PSC_PRIVATE_KEY_JWT and keys is None:
            raise ValueError("private_key_jwt towards PSC needs the broker's signing key ring")
        self._settings = settings
        self._clock = clock  # the broker's: tokens are checked against the time its rules use
        self._session = session
        self._signing_keys = keys
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
            now=self._clock(),
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

    def end_session_url(self) -> str | None:
        """PSC's ``end_session_endpoint`` (from discovery), where a person closes their PSC session."""
        try:
            url = self._metadata.get().get("end_session_endpoint")
        except UpstreamUnavailableError:
            return None
        return url if isinstance(url, str) and url.startswith("https://") else None

    def probe(self) -> None:
        """For /health: PSC's discovery document answers."""
        self._metadata.get()

    # -- internals ---------------------------------------------------------------------------

    def _redeem(self, code: str, flow: Mapping[str, Any]) -> dict[str, Any]:
        """RFC 6749 4.1.3, the client authenticated with its registered method."""
        metadata = self._metadata.get()
        token_endpoint = str(metadata["token_endpoint"])
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow["redirect_uri"],
            "code_verifier": flow["code_verifier"],
        }
        auth: tuple[str, str] | None = None
        if self._settings.psc_token_auth_method == PSC_PRIVATE_KEY_JWT:
            form.update(client_assertion_type=ASSERTION_TYPE, client_assertion=self._client_assertion(metadata))
        else:  # RFC 6749 2.3.1: id and secret form-urlencoded, then HTTP Basic
            auth = (_form_encode(self._settings.psc_client_id), _form_encode(self._settings.psc_client_secret or ""))
        try:
            response = self._session.post(token_endpoint, data=form, auth=auth, headers={"Accept": "application/json"})
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

    def _client_assertion(self, metadata: Mapping[str, Any]) -> str:
        """RFC 7523 2.2 / OIDC Core 9 ``private_key_jwt``: iss = sub = our client id, a single audience,
        PSC's issuer (accepted by every Keycloak version, and the only value OIDC Core 1.0 errata set 2
        section 9 allows: "the OP's Issuer Identifier passed as a string"), a fresh jti, one minute of
        validity; signed with the broker's current key, its kid in the header."""
        assert self._signing_keys is not None  # checked in __init__
        now = int(self._clock())
        client_id = self._settings.psc_client_id
        claims = {"iss": client_id, "sub": client_id, "aud": str(metadata["issuer"]), "jti": str(uuid.uuid4()),
                  "iat": now, "exp": now + ASSERTION_LIFETIME}
        return self._signing_keys.sign(claims, typ="JWT")

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
        """OIDC Core 5.3.2: a signed userinfo response carries iss and aud (checked when present); the
        identity is what is left once the JWT envelope (:data:`JWT_ENVELOPE_CLAIMS`) is removed."""
        try:
            header = jwt.get_unverified_header(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=self._keys().key(header.get("kid")),
                algorithms=list(ALGORITHMS),
                options={"require": ["sub"], "verify_aud": False},
                leeway=LEEWAY,  # its exp / nbf, if any, against PSC's clock
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
        return {name: value for name, value in claims.items() if name not in JWT_ENVELOPE_CLAIMS}

    def _keys(self) -> JwksCache:
        if self._jwks is None:
            jwks_uri = str(self._metadata.get()["jwks_uri"])
            self._jwks = JwksCache(CachedDocument(self._session, jwks_uri, "psc jwks", JWKS_TTL))
        return self._jwks


def _form_encode(value: str) -> str:
    # RFC 6749 2.3.1: client_id and client_secret are application/x-www-form-urlencoded before Basic.
    return quote_plus(value)
