"""POST /token over real HTTPS: the three client authentication methods and every refusal, by exact error."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from sanscouture.keys import generate_private_jwk
from tests.e2e.conftest import PSC_USERINFO
from tests.e2e.conftest import BrokerUnderTest
from tests.e2e.conftest import Pkce
from tests.e2e.conftest import RelyingParties


def verify_id_token(broker: BrokerUnderTest, id_token: str, client_id: str) -> dict[str, Any]:
    """Verify as a relying party would: JWKS from the discovery document, over HTTPS, with PyJWT."""
    document = requests.get(f"{broker.url}/.well-known/openid-configuration", timeout=10).json()
    jwks = jwt.PyJWKSet.from_dict(requests.get(document["jwks_uri"], timeout=10).json())
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256" and header["kid"]
    key = next(key for key in jwks.keys if key.key_id == header["kid"])
    return jwt.decode(id_token, key.key, algorithms=["RS256"], audience=client_id, issuer=document["issuer"])


def expected_at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def assert_error(response: requests.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    return body


def happy_path(broker: BrokerUnderTest, rps: RelyingParties, client_id: str) -> None:
    code, pkce = rps.code(client_id, nonce="n-0S6_WzA2Mj")
    response = rps.redeem(client_id, code, pkce)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120
    assert body["scope"] == "openid scope_all"
    assert "refresh_token" not in body
    claims = verify_id_token(broker, body["id_token"], client_id)
    assert claims["sub"] == PSC_USERINFO["sub"]
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["acr"] == "eidas1"
    assert claims["at_hash"] == expected_at_hash(body["access_token"])
    assert claims["iss"] == broker.url and claims["aud"] == client_id
    assert {"exp", "iat", "auth_time", "sid"} <= set(claims)
    assert "SubjectNameID" not in claims and "amr" not in claims


def test_code_is_redeemed_with_client_secret_basic(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    happy_path(broker, rps, "rp-basic")


def test_code_is_redeemed_with_client_secret_post(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    happy_path(broker, rps, "rp-post")


def test_code_is_redeemed_with_private_key_jwt(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    happy_path(broker, rps, "rp-jwt")


def test_wrong_code_verifier_is_invalid_grant(rps: RelyingParties) -> None:
    code, _ = rps.code("rp-basic")
    response = rps.redeem("rp-basic", code, Pkce.new())
    assert assert_error(response, 400, "invalid_grant")["error_description"] == "PKCE verification failed"


def test_missing_code_verifier_is_invalid_grant(rps: RelyingParties) -> None:
    code, _ = rps.code("rp-basic")
    assert_error(rps.redeem("rp-basic", code, None), 400, "invalid_grant")


def test_reused_code_is_invalid_grant_and_revokes_the_first_access_token(
    broker: BrokerUnderTest, rps: RelyingParties
) -> None:
    code, pkce = rps.code("rp-basic")
    first = rps.redeem("rp-basic", code, pkce).json()
    userinfo = f"{broker.url}/userinfo"
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert requests.get(userinfo, headers=bearer, timeout=10).status_code == 200
    assert_error(rps.redeem("rp-basic", code, pkce), 400, "invalid_grant")
    revoked = requests.get(userinfo, headers=bearer, timeout=10)
    assert revoked.status_code == 401
    assert revoked.json()["error"] == "invalid_token"
    assert revoked.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_expired_code_is_invalid_grant(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-basic")
    codes = broker.tables["codes"]
    row = codes.find(code.split(".")[0], "grant")
    assert row is not None
    codes.save(row.partition, row.row, row.data, expires_in=-1)  # as if issued 61 s ago
    assert_error(rps.redeem("rp-basic", code, pkce), 400, "invalid_grant")


def test_code_issued_to_another_client_is_invalid_grant(broker: BrokerUnderTest, rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-post")
    redirect_uri = broker.clients["rp-post"].redirect_uris[0]
    response = rps.redeem("rp-post", code, pkce, as_client="rp-basic", redirect_uri=redirect_uri)
    body = assert_error(response, 400, "invalid_grant")
    assert body["error_description"] == "the authorization code was issued to another client"


def test_redirect_uri_mismatch_is_invalid_grant(rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-basic")
    response = rps.redeem("rp-basic", code, pkce, redirect_uri="https://rp-basic.example.fr/other")
    assert_error(response, 400, "invalid_grant")


def test_bad_client_secret_is_invalid_client_with_a_basic_challenge(
    broker: BrokerUnderTest, rps: RelyingParties
) -> None:
    code, pkce = rps.code("rp-basic")
    wrong = "Basic " + base64.b64encode(b"rp-basic:not-the-secret").decode()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": pkce.verifier,
        "redirect_uri": broker.clients["rp-basic"].redirect_uris[0],
    }
    response = requests.post(f"{broker.url}/token", data=form, headers={"Authorization": wrong}, timeout=10)
    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="sans-couture"'


def test_unknown_client_is_invalid_client(broker: BrokerUnderTest) -> None:
    form = {"grant_type": "authorization_code", "code": "x", "client_id": "nobody", "client_secret": "x"}
    response = requests.post(f"{broker.url}/token", data=form, timeout=10)
    assert_error(response, 401, "invalid_client")


def test_replayed_client_assertion_is_invalid_client(rps: RelyingParties) -> None:
    assertion = rps.assertion("rp-jwt")
    first_code, first_pkce = rps.code("rp-jwt")
    assert rps.redeem("rp-jwt", first_code, first_pkce, client_assertion=assertion).status_code == 200
    code, pkce = rps.code("rp-jwt")
    body = assert_error(rps.redeem("rp-jwt", code, pkce, client_assertion=assertion), 401, "invalid_client")
    assert body["error_description"] == "client_assertion was already used"


def test_client_assertion_signed_by_another_key_is_invalid_client(rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-jwt")
    registered = rps.broker.clients["rp-jwt"].private_jwk
    assert registered is not None
    forged = rps.assertion("rp-jwt", key={**generate_private_jwk(), "kid": registered["kid"]})  # same kid, other key
    assert_error(rps.redeem("rp-jwt", code, pkce, client_assertion=forged), 401, "invalid_client")


def test_client_assertion_audience_is_one_string_naming_the_broker(
    broker: BrokerUnderTest, rps: RelyingParties
) -> None:
    for audience in (broker.url, f"{broker.url}/token"):
        code, pkce = rps.code("rp-jwt")
        assert rps.redeem("rp-jwt", code, pkce, client_assertion=rps.assertion(aud=audience)).status_code == 200
    code, pkce = rps.code("rp-jwt")
    injected = rps.assertion(aud=[broker.url, "https://other-op.example"])  # audience injection
    body = assert_error(rps.redeem("rp-jwt", code, pkce, client_assertion=injected), 401, "invalid_client")
    assert body["error_description"] == (
        "client_assertion aud must be a single string: the issuer or the token endpoint URL"
    )


def test_client_assertion_living_longer_than_five_minutes_is_invalid_client(rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-jwt")
    long_lived = rps.assertion(exp=int(time.time()) + 3600)
    body = assert_error(rps.redeem("rp-jwt", code, pkce, client_assertion=long_lived), 401, "invalid_client")
    assert body["error_description"] == "client_assertion exp must be at most 300 seconds ahead"


def test_unsupported_grant_type(rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-basic")
    response = rps.redeem("rp-basic", code, pkce, grant_type="password")
    assert_error(response, 400, "unsupported_grant_type")


def test_refresh_by_a_client_not_registered_for_it_is_unauthorized_client(rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-basic")
    response = rps.redeem("rp-basic", code, pkce, grant_type="refresh_token", refresh_token="x")
    assert_error(response, 400, "unauthorized_client")


def test_non_ascii_basic_credentials_are_invalid_client_not_a_crash(broker: BrokerUnderTest) -> None:
    # The header's octets reach the worker as latin-1 text, which base64 refuses with a plain ValueError.
    for credentials in (b"\xe9t\xe9", b"\xff\xfe=="):
        connection = http.client.HTTPSConnection(urlsplit(broker.url).netloc, timeout=10,
                                                 context=ssl.create_default_context())
        body = b"grant_type=authorization_code&code=x"
        connection.request("POST", "/token", body=body, headers={
            "Authorization": b"Basic " + credentials, "Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        assert response.status == 401
        assert response.getheader("WWW-Authenticate") == 'Basic realm="sans-couture"'
        assert json.loads(response.read()) == {"error": "invalid_client",
                                               "error_description": "malformed HTTP Basic credentials"}
        connection.close()


def test_a_repeated_unknown_parameter_is_invalid_request_and_its_name_is_not_echoed(
    rps: RelyingParties,
) -> None:
    code, pkce = rps.code("rp-basic")
    headers, _ = rps.credentials("rp-basic")
    form = f"grant_type=authorization_code&code={code}&code_verifier={pkce.verifier}"
    for name, expected in (("%C3%A9", "a parameter is repeated"), ("%FF", "a parameter is repeated"),
                           ("%3Cscript%3E", "a parameter is repeated"), ("code", "repeated parameter: code")):
        response = requests.post(f"{rps.broker.url}/token", data=f"{form}&{name}=1&{name}=2", timeout=10,
                                 headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
        assert assert_error(response, 400, "invalid_request") == {"error": "invalid_request",
                                                                  "error_description": expected}


def test_get_on_the_token_endpoint_is_invalid_request(broker: BrokerUnderTest) -> None:
    response = requests.get(f"{broker.url}/token?grant_type=authorization_code&code=x", timeout=10)
    assert_error(response, 400, "invalid_request")


def test_two_authentication_methods_at_once_is_invalid_request(rps: RelyingParties) -> None:
    code, pkce = rps.code("rp-basic")
    secret = rps.broker.clients["rp-basic"].secret
    response = rps.redeem("rp-basic", code, pkce, client_id="rp-basic", client_secret=secret)
    assert_error(response, 400, "invalid_request")


def test_authlib_oauth2_session_redeems_a_code_with_private_key_jwt(
    broker: BrokerUnderTest, rps: RelyingParties
) -> None:
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    client = broker.clients["rp-jwt"]
    code, pkce = rps.code("rp-jwt", nonce="authlib-nonce")
    token_endpoint = f"{broker.url}/token"
    session = OAuth2Session(
        client_id="rp-jwt",
        client_secret=dict(client.private_jwk or {}),
        token_endpoint_auth_method="private_key_jwt",
        redirect_uri=client.redirect_uris[0],
    )
    # Authlib's assertions live an hour by default; the broker accepts at most five minutes.
    session.register_client_auth_method(PrivateKeyJWT(token_endpoint, claims={"exp": int(time.time()) + 60}))
    token = session.fetch_token(token_endpoint, grant_type="authorization_code", code=code, code_verifier=pkce.verifier)
    assert token["token_type"] == "Bearer"
    assert verify_id_token(broker, token["id_token"], "rp-jwt")["nonce"] == "authlib-nonce"
