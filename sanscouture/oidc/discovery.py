"""OpenID Provider metadata (OIDC Discovery 3, RFC 8414 2): exactly what the broker implements.

Served at ``/.well-known/openid-configuration`` and at PSC's ``/.well-known/wallet-openid-configuration``
so that a service already configured for PSC only changes the base URL. Nothing is advertised that
the broker does not do: no ``offline_access``, no request objects, no signed userinfo, no ``plain`` PKCE;
``request_uri`` only as the reference of a pushed authorization request (RFC 9126).
"""

from __future__ import annotations

from typing import Any

DISCOVERY_CACHE_CONTROL = "public, max-age=3600"

# OIDC Core 5.1 standard claims the broker serves, then PSC's own userinfo claims (as in the userinfo
# samples of prosanteconnect/proof-of-concept HelperTest.java).
CLAIMS_SUPPORTED: tuple[str, ...] = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "at_hash",
    "sid",
    "given_name",
    "family_name",
    "preferred_username",
    "email",
    "email_verified",
    "SubjectNameID",
    "SubjectRefPro",
    "SubjectOrganization",
    "SubjectOrganizationID",
    "SubjectRole",
    "Secteur_Activite",
    "PSI_Locale",
    "Palier_Authentification",
    "Mode_Acces_Raison",
    "Acces_Regulation_Medicale",
    "UITVersion",
    "otherIds",
    "codeCivilite",
    "codeGenreActivite",  # top level in some PSC userinfo layouts (EDIT samples), relayed as received
    "authMode",
)


def build_discovery(
    issuer: str, *, require_pushed_authorization_requests: bool = False, backchannel_logout: bool = False
) -> dict[str, Any]:
    """The metadata document for ``issuer`` (no trailing slash), OIDC Discovery 3.

    ``require_pushed_authorization_requests`` (RFC 9126 5): true only when every registered client
    must use PAR; a client's own obligation is its registration (RFC 9126 6).
    ``backchannel_logout`` (Back-Channel Logout 1.0 §2.1): when the queue that delivers logout tokens
    is configured; the tokens then carry ``sid`` (``backchannel_logout_session_supported``).
    """
    backchannel = (
        {"backchannel_logout_supported": True, "backchannel_logout_session_supported": True}
        if backchannel_logout else {}
    )
    return {
        **backchannel,
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/logout",
        # RFC 9126 5; a request_uri from /par is usable whatever request_uri_parameter_supported says.
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests": require_pushed_authorization_requests,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "scope_all"],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "acr_values_supported": ["eidas1"],
        "prompt_values_supported": ["none", "login", "select_account"],
        # Discovery 3 defaults request_uri_parameter_supported to true: say false explicitly.
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "ui_locales_supported": ["fr-FR"],
    }
