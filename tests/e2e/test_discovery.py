"""Discovery under both names and the JWKS, over real HTTPS through the local Functions host."""

from __future__ import annotations

import pytest
import requests

from sanscouture.oidc.discovery import build_discovery
from tests.e2e.conftest import BrokerUnderTest

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.mark.parametrize("name", ["openid-configuration", "wallet-openid-configuration"])
def test_discovery_is_served_under_both_names(broker: BrokerUnderTest, name: str) -> None:
    response = requests.get(f"{broker.url}/.well-known/{name}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    document = response.json()
    assert document == build_discovery(broker.url, backchannel_logout=True)  # the sandbox has a queue service
    assert document["issuer"] == broker.url  # the URL it was fetched from (Config OP check)
    assert all(value.startswith("https://") for key, value in document.items() if key.endswith(("_endpoint", "_uri")))


def test_jwks_publishes_public_keys_only_with_distinct_kids(broker: BrokerUnderTest) -> None:
    document = requests.get(f"{broker.url}/.well-known/openid-configuration", timeout=10).json()
    response = requests.get(document["jwks_uri"], timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/jwk-set+json")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert keys
    assert len({key["kid"] for key in keys}) == len(keys)
    for key in keys:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert not PRIVATE_MEMBERS & set(key)


def test_health_answers_only_its_status_in_public(broker: BrokerUnderTest) -> None:
    response = requests.get(f"{broker.url}/health", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
