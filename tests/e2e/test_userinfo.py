"""/userinfo over real HTTPS: GET, POST header, POST body, RFC 6750 challenges, scope filtering."""

from __future__ import annotations

import requests

from tests.e2e.conftest import PSC_USERINFO
from tests.e2e.conftest import BrokerUnderTest
from tests.e2e.conftest import RelyingParties


def test_get_with_a_bearer_header_returns_the_psc_claims(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    token = rps.tokens("rp-basic")["access_token"]
    response = requests.get(f"{broker.url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json() == PSC_USERINFO


def test_post_with_a_bearer_header_works(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    token = rps.tokens("rp-post")["access_token"]
    response = requests.post(f"{broker.url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["SubjectNameID"] == "899700427885"


def test_post_with_the_token_in_the_body_works(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    token = rps.tokens("rp-jwt")["access_token"]
    response = requests.post(f"{broker.url}/userinfo", data={"access_token": token}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == PSC_USERINFO["sub"]


def test_no_token_gets_a_bare_bearer_challenge(broker: BrokerUnderTest) -> None:
    response = requests.get(f"{broker.url}/userinfo", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "error" not in response.text


def test_garbage_token_is_invalid_token(broker: BrokerUnderTest) -> None:
    response = requests.get(f"{broker.url}/userinfo", headers={"Authorization": "Bearer garbage.token.x"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="the access token is invalid or expired"'
    )


def test_token_in_header_and_body_is_invalid_request(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    token = rps.tokens("rp-basic")["access_token"]
    response = requests.post(
        f"{broker.url}/userinfo", headers={"Authorization": f"Bearer {token}"}, data={"access_token": token}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_id_token_is_not_accepted_as_an_access_token(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    id_token = rps.tokens("rp-basic")["id_token"]
    response = requests.get(f"{broker.url}/userinfo", headers={"Authorization": f"Bearer {id_token}"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_openid_scope_alone_gives_only_sub(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    token = rps.tokens("rp-basic", scope=("openid",))["access_token"]
    response = requests.get(f"{broker.url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.json() == {"sub": PSC_USERINFO["sub"]}


def test_profile_scope_gives_the_names(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    token = rps.tokens("rp-basic", scope=("openid", "profile"))["access_token"]
    response = requests.get(f"{broker.url}/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.json() == {
        "sub": PSC_USERINFO["sub"],
        "given_name": "KIT",
        "family_name": "DOC0042788",
        "preferred_username": "899700427885",
    }
