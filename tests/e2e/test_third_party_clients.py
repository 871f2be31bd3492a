"""Relying parties built with a third-party OIDC library (Authlib) complete the flow from discovery alone."""

from __future__ import annotations

import secrets
import warnings
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from authlib.oidc.core import CodeIDToken

from sandbox.run import Sandbox
from sandbox.scripted import Browser
from sandbox.scripted import Landing
from sandbox.scripted import Page


def test_the_demo_service_built_on_authlib_signs_in_with_client_secret_basic(sandbox: Sandbox) -> None:
    browser = Browser(sandbox, entra_persona="cpx", psc_persona="medecin-cps")
    home = browser.go(f"{sandbox.demo_url}/")
    assert isinstance(home, Page)
    page = browser.submit(home, "standard")
    assert isinstance(page, Page)
    if page.h1 == "Appairage du compte":
        page = browser.submit(page, "pair")
        assert isinstance(page, Page)
    assert page.h1 == "Connexion"
    done = browser.submit(page, "confirm")
    assert isinstance(done, Page) and done.url.startswith(sandbox.demo_url)
    assert "Vous êtes connecté(e)" in done.html
    assert "810100000001" in done.html  # SubjectNameID from /userinfo
    assert "&#34;acr&#34;: &#34;eidas1&#34;" in done.html or '"acr": "eidas1"' in done.html


class FiveMinutePrivateKeyJWT(PrivateKeyJWT):
    """Authlib's private_key_jwt with the lifetime docs/rp-integration.md asks for (its default is 1 h)."""

    def sign(self, auth: Any, token_endpoint: str) -> bytes:
        return private_key_jwt_sign(auth.client_secret, auth.client_id, token_endpoint, alg=self.alg, expires_in=300)


def test_authlibs_default_one_hour_assertion_is_refused_with_a_clear_error(sandbox: Sandbox) -> None:
    client = next(c for c in sandbox.clients if c.client_id == "rp-jwt")
    token_endpoint = f"{sandbox.broker_url}/token"
    session = OAuth2Session(client_id=client.client_id, client_secret=dict(client.private_jwk or {}),
                            token_endpoint_auth_method=PrivateKeyJWT(token_endpoint))
    with pytest.raises(OAuthError) as refused:
        session.fetch_token(token_endpoint, grant_type="authorization_code", code="any-code")
    assert refused.value.error == "invalid_client"
    assert refused.value.description == "client_assertion exp must be at most 300 seconds ahead"


def test_an_authlib_client_with_private_key_jwt_completes_the_flow_from_discovery(sandbox: Sandbox) -> None:
    client = next(c for c in sandbox.clients if c.client_id == "rp-jwt")
    metadata = requests.get(f"{sandbox.broker_url}/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(
        client_id=client.client_id,
        client_secret=dict(client.private_jwk or {}),
        token_endpoint_auth_method=FiveMinutePrivateKeyJWT(metadata["token_endpoint"]),
        scope="openid scope_all",
        redirect_uri=client.redirect_uris[0],
        code_challenge_method="S256",
    )
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, login_hint="cpx"
    )

    browser = Browser(sandbox, psc_persona="medecin-cps")
    page = browser.go(url, stop_at=client.redirect_uris[0])
    if isinstance(page, Page) and page.h1 == "Appairage du compte":
        page = browser.submit(page, "pair", stop_at=client.redirect_uris[0])
    assert isinstance(page, Page) and page.h1 == "Connexion"
    landing = browser.submit(page, "confirm", stop_at=client.redirect_uris[0])
    assert isinstance(landing, Landing) and landing.params["state"] == state

    token = session.fetch_token(
        metadata["token_endpoint"], authorization_response=landing.url, code_verifier=verifier
    )
    jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib.jose is deprecated in favour of joserfc; still the 1.x API
        from authlib.jose import JsonWebKey
        from authlib.jose import jwt

        claims = jwt.decode(
            token["id_token"],
            JsonWebKey.import_key_set(jwks),
            claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": metadata["issuer"]}},
            claims_params={"nonce": nonce, "client_id": client.client_id, "access_token": token["access_token"]},
        )
        claims.validate()
    assert claims["acr"] == "eidas1"
    userinfo = session.get(metadata["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["SubjectNameID"] == "810100000001"
