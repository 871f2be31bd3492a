"""The ID token's claims: the authentication event, no identity claims (OIDC Core 2, 3.1.3.6)."""

from __future__ import annotations

import base64
import hashlib

from sanscouture.oidc.id_token import at_hash
from sanscouture.oidc.id_token import build_id_token_claims
from tests.unit.oidc.fakes import ISSUER
from tests.unit.oidc.fakes import NOW
from tests.unit.oidc.fakes import make_grant


def test_at_hash_is_the_left_half_of_sha256_base64url() -> None:
    token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
    digest = hashlib.sha256(token.encode()).digest()[:16]
    assert at_hash(token) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert len(at_hash(token)) == 22


def test_claims_carry_the_authentication_event() -> None:
    grant = make_grant()
    claims = build_id_token_claims(grant, issuer=ISSUER, access_token="at", now=int(NOW))
    assert claims == {
        "iss": ISSUER,
        "sub": "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:899700427885",
        "aud": "rp-basic",
        "exp": int(NOW) + 300,
        "iat": int(NOW),
        "auth_time": grant.auth_time,
        "acr": "eidas1",
        "at_hash": at_hash("at"),
        "sid": "sid-1",
        "nonce": "n-0S6_WzA2Mj",
    }


def test_nonce_and_amr_only_when_known() -> None:
    claims = build_id_token_claims(make_grant(nonce=None), issuer=ISSUER, access_token="at", now=int(NOW))
    assert "nonce" not in claims and "amr" not in claims
    with_amr = build_id_token_claims(make_grant(amr=("sc", "mfa")), issuer=ISSUER, access_token="at", now=int(NOW))
    assert with_amr["amr"] == ["sc", "mfa"]


def test_no_psc_identity_claims_in_the_id_token() -> None:
    claims = build_id_token_claims(make_grant(), issuer=ISSUER, access_token="at", now=int(NOW))
    allowed = {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "sid"}
    assert set(claims) <= allowed


def test_acr_only_when_the_authentication_met_a_known_level() -> None:
    import dataclasses

    unknown = dataclasses.replace(make_grant(), acr=None)
    assert "acr" not in build_id_token_claims(unknown, issuer=ISSUER, access_token="at", now=NOW)
    assert build_id_token_claims(make_grant(), issuer=ISSUER, access_token="at", now=NOW)["acr"] == "eidas1"
