"""Discovery advertises exactly what the broker implements (OIDC Discovery 3, conformance Config OP)."""

from __future__ import annotations

from sanscouture.oidc.discovery import build_discovery

ISSUER = "https://broker.example.fr"


def test_document_lists_the_endpoints_under_the_issuer() -> None:
    document = build_discovery(ISSUER)
    assert document["issuer"] == ISSUER
    assert {name: document[name] for name in document if name.endswith(("_endpoint", "_uri"))} == {
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "userinfo_endpoint": f"{ISSUER}/userinfo",
        "jwks_uri": f"{ISSUER}/jwks",
        "end_session_endpoint": f"{ISSUER}/logout",
        "pushed_authorization_request_endpoint": f"{ISSUER}/par",
    }


def test_document_advertises_only_what_is_implemented() -> None:
    document = build_discovery(ISSUER)
    assert document["response_types_supported"] == ["code"]
    assert document["response_modes_supported"] == ["query"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert document["subject_types_supported"] == ["public"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "PS256", "ES256"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["scopes_supported"] == ["openid", "profile", "email", "scope_all"]
    assert document["acr_values_supported"] == ["eidas1"]
    assert document["prompt_values_supported"] == ["none", "login", "select_account"]
    assert document["request_parameter_supported"] is False
    assert document["request_uri_parameter_supported"] is False
    assert document["claims_parameter_supported"] is False
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["ui_locales_supported"] == ["fr-FR"]
    assert document["require_pushed_authorization_requests"] is False
    for absent in (
        "userinfo_signing_alg_values_supported",
        "frontchannel_logout_supported",
        "backchannel_logout_supported",
        "registration_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ):
        assert absent not in document


def test_back_channel_logout_is_advertised_with_sessions_when_its_queue_is_configured() -> None:
    """Back-Channel Logout 1.0 §2.1: both flags true, only when logout tokens can be delivered."""
    document = build_discovery(ISSUER, backchannel_logout=True)
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert "frontchannel_logout_supported" not in document


def test_claims_include_the_psc_claims() -> None:
    claims = build_discovery(ISSUER)["claims_supported"]
    for name in ("sub", "acr", "at_hash", "sid", "SubjectNameID", "SubjectRefPro", "otherIds", "authMode",
                 "codeCivilite", "codeGenreActivite"):
        assert name in claims
    assert len(claims) == len(set(claims))


def test_pushed_authorization_requests_are_required_server_wide_only_when_asked() -> None:
    """RFC 9126 5: the server-wide flag; the caller sets it when every registered client must use PAR."""
    assert build_discovery(ISSUER, require_pushed_authorization_requests=True)["require_pushed_authorization_requests"]
