"""The Entra ID simulator driven by MSAL (unchanged) over HTTPS, as the broker will drive it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sandbox.entra_sim import AZURE_AD_TOKEN_EXCHANGE
from sandbox.entra_sim import AZURE_AD_TOKEN_EXCHANGE_APP_ID
from sandbox.entra_sim import DEFAULT_IDENTITY_HEADER
from sandbox.entra_sim import HOSPITAL_TENANT_ID
from sandbox.entra_sim import OTHER_TENANT_ID
from sandbox.entra_sim import switches as entra_switches
from sandbox.switches import switched
from sanscouture.adapters.entra import claims_request
from tests.sandbox.conftest import ENTRA_CLIENT_ID
from tests.sandbox.conftest import ENTRA_SECRET
from tests.sandbox.conftest import FIC_CLIENT_ID
from tests.sandbox.conftest import MANAGED_IDENTITY
from tests.sandbox.conftest import REDIRECT_URI
from tests.sandbox.conftest import STRANGER_CLIENT_ID

# MSAL nudges towards form_post; these tests read the code from the 302 on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")

ACRS_C1 = json.dumps({"id_token": {"acrs": {"essential": True, "value": "c1"}}})


def confidential_app(entra_url: str, client_id: str = ENTRA_CLIENT_ID, credential: Any = ENTRA_SECRET,
                     ) -> msal.ConfidentialClientApplication:
    """The authority form the broker uses: ``authority`` + ``instance_discovery=False``."""
    return msal.ConfidentialClientApplication(
        client_id, client_credential=credential, authority=f"{entra_url}/organizations", instance_discovery=False
    )


def auth_response(response: requests.Response) -> dict[str, str]:
    """The parameters of the authorize redirect back to the client."""
    assert response.status_code == 302, response.text[:500]
    assert "text/html" not in response.headers.get("Content-Type", "")
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(location).query))


def sign_in(app: msal.ConfidentialClientApplication, browser: requests.Session, **flow: Any) -> dict[str, Any]:
    """One auth code flow with no page (``login_hint`` or SSO), redeemed by MSAL."""
    started = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, **flow)
    response = browser.get(started["auth_uri"], allow_redirects=False)
    return app.acquire_token_by_auth_code_flow(started, auth_response(response))


def verify(entra_url: str, token: str, audience: str = ENTRA_CLIENT_ID) -> dict[str, Any]:
    """What the broker must do: signature against the JWKS, tenant-specific issuer, audience."""
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    keys = jwt.PyJWKClient(f"{entra_url}/organizations/discovery/v2.0/keys", cache_jwk_set=False, ssl_context=context)
    tid = jwt.decode(token, options={"verify_signature": False})["tid"]
    return jwt.decode(
        token, keys.get_signing_key_from_jwt(token), algorithms=["RS256"], audience=audience,
        issuer=f"{entra_url}/{tid}/v2.0",
    )


def test_discovery_for_organizations_has_the_templated_issuer(entra_url: str) -> None:
    config = requests.get(f"{entra_url}/organizations/v2.0/.well-known/openid-configuration", timeout=10).json()
    assert config["issuer"] == f"{entra_url}/{{tenantid}}/v2.0"
    assert config["authorization_endpoint"] == f"{entra_url}/organizations/oauth2/v2.0/authorize"
    assert config["token_endpoint"] == f"{entra_url}/organizations/oauth2/v2.0/token"
    assert config["jwks_uri"] == f"{entra_url}/organizations/discovery/v2.0/keys"
    assert config["end_session_endpoint"] == f"{entra_url}/organizations/oauth2/v2.0/logout"
    assert config["token_endpoint_auth_methods_supported"] == [
        "client_secret_post", "private_key_jwt", "client_secret_basic"
    ]
    assert config["subject_types_supported"] == ["pairwise"]
    assert config["claims_parameter_supported"] is True
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]


def test_discovery_for_a_tenant_guid_or_domain_is_tenant_specific(entra_url: str) -> None:
    for tenant in (HOSPITAL_TENANT_ID, "chu-exemple.fr"):
        config = requests.get(f"{entra_url}/{tenant}/v2.0/.well-known/openid-configuration", timeout=10).json()
        assert config["issuer"] == f"{entra_url}/{HOSPITAL_TENANT_ID}/v2.0"
        assert config["token_endpoint"] == f"{entra_url}/{HOSPITAL_TENANT_ID}/oauth2/v2.0/token"
    unknown = requests.get(f"{entra_url}/nowhere.example/v2.0/.well-known/openid-configuration", timeout=10)
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_tenant"
    for path in ("/discovery/v2.0/keys", "/common/discovery/v2.0/keys", f"/{OTHER_TENANT_ID}/discovery/v2.0/keys"):
        assert requests.get(entra_url + path, timeout=10).json()["keys"]


def test_msal_code_flow_with_a_secret_gives_a_verifiable_v2_id_token(entra_url: str) -> None:
    result = sign_in(confidential_app(entra_url), requests.Session(), login_hint="cpx")
    assert "id_token" in result, result
    claims = verify(entra_url, result["id_token"])
    assert claims["tid"] == HOSPITAL_TENANT_ID
    assert claims["oid"] == "5b2f8c1e-3a47-4d90-8e6b-1c2d3e4f5a61"
    assert claims["sub"] != claims["oid"]  # pairwise
    assert claims["preferred_username"] == "claire.martin@chu-exemple.fr"
    assert claims["name"] == "Dr Claire Martin"
    assert claims["ver"] == "2.0"
    assert claims["nonce"] == result["id_token_claims"]["nonce"]
    assert abs(claims["auth_time"] - time.time()) < 60
    assert claims["sid"] and claims["uti"] and claims["nbf"] <= claims["iat"] < claims["exp"]
    assert "amr" not in claims  # v2.0 tokens never carry amr
    assert result["access_token"] and result["token_type"] == "Bearer" and result["refresh_token"]


def test_msal_oidc_authority_form_also_passes_the_issuer_check(entra_url: str) -> None:
    app = msal.ConfidentialClientApplication(
        ENTRA_CLIENT_ID, client_credential=ENTRA_SECRET, oidc_authority=f"{entra_url}/organizations/v2.0"
    )
    result = sign_in(app, requests.Session(), login_hint="fido2")
    assert verify(entra_url, result["id_token"])["preferred_username"] == "sophie.lefevre@chu-exemple.fr"


def test_tenant_authority_refuses_a_user_of_another_tenant(entra_url: str) -> None:
    app = msal.ConfidentialClientApplication(
        ENTRA_CLIENT_ID, client_credential=ENTRA_SECRET, authority=f"{entra_url}/{HOSPITAL_TENANT_ID}",
        instance_discovery=False,
    )
    signed_in = sign_in(app, requests.Session(), login_hint="cpx")
    assert verify(entra_url, signed_in["id_token"])["tid"] == HOSPITAL_TENANT_ID
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, login_hint="other-tenant")
    refused = requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "AADSTS50020" in refused.text
    other = sign_in(confidential_app(entra_url), requests.Session(), login_hint="amelie.durand@clinique-voisine.fr")
    assert verify(entra_url, other["id_token"])["tid"] == OTHER_TENANT_ID  # organizations lets it through


def test_login_page_then_windows_sso_without_any_page(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI)
    page = browser.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<html lang="fr">' in page.text and "Windows Hello Entreprise" in page.text
    assert not re.search(r'(src|href)="https?://', page.text)  # no external assets
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert action and request_id
    chosen = browser.post(
        entra_url + action.group(1), data={"request_id": request_id.group(1), "persona": "whfb-sso"},
        allow_redirects=False,
    )
    first = app.acquire_token_by_auth_code_flow(flow, auth_response(chosen))
    assert first["id_token_claims"]["preferred_username"] == "thomas.bernard@chu-exemple.fr"

    again = sign_in(app, browser)  # no login_hint, no prompt: the PRT answers
    assert again["id_token_claims"]["oid"] == first["id_token_claims"]["oid"]
    assert again["id_token_claims"]["auth_time"] == first["id_token_claims"]["auth_time"]
    silent = sign_in(app, browser, prompt="none")
    assert silent["id_token_claims"]["auth_time"] == first["id_token_claims"]["auth_time"]


def test_a_non_sso_persona_leaves_no_session(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    sign_in(app, browser, login_hint="cpx")
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI)
    assert browser.get(flow["auth_uri"], allow_redirects=False).status_code == 200  # the page again


def test_prompt_none_without_a_session_is_login_required(entra_url: str) -> None:
    app = confidential_app(entra_url)
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, prompt="none", state="xyz")
    params = auth_response(requests.get(flow["auth_uri"], allow_redirects=False, timeout=10))
    assert params["error"] == "login_required" and params["state"] == "xyz"
    assert params["error_description"].startswith("AADSTS50058")
    assert app.acquire_token_by_auth_code_flow(flow, params)["error"] == "login_required"


def reauth_prompt(browser: requests.Session, entra_url: str, page: requests.Response) -> requests.Response:
    """Answer Entra's re-authentication prompt (Windows Hello, card PIN...) for the account it names."""
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html"), page.text[:300]
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    persona = re.search(r'name="persona" value="([^"]+)"', page.text)
    assert action and request_id and persona
    return browser.post(entra_url + action.group(1), allow_redirects=False,
                        data={"request_id": request_id.group(1), "persona": persona.group(1)})


def test_prompt_login_and_max_age_ask_the_same_person_to_prove_it_again(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    first = sign_in(app, browser, login_hint="whfb-sso")["id_token_claims"]["auth_time"]
    extras = ({"prompt": "login"}, {"max_age": 0}, {"prompt": "login", "login_hint": "whfb-sso"})
    for minutes, extra in enumerate(extras, start=1):
        with switched(entra_url, clock_offset=60 * minutes):  # each one a minute after the previous
            flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, **extra)
            prompt = browser.get(flow["auth_uri"], allow_redirects=False)
            assert "Utiliser Windows Hello" in prompt.text and "thomas.bernard@chu-exemple.fr" in prompt.text
            response = auth_response(reauth_prompt(browser, entra_url, prompt))
            fresh = app.acquire_token_by_auth_code_flow(flow, response)
        assert fresh["id_token_claims"]["auth_time"] > first
        first = fresh["id_token_claims"]["auth_time"]
    assert sign_in(app, browser)["id_token_claims"]["auth_time"] == first  # SSO reuses the fresh one


def test_prompt_none_answers_login_required_or_interaction_required_as_entra(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    sign_in(app, browser, login_hint="whfb-sso")
    cases = [
        ({"login_hint": "cpx"}, "login_required", 50058),  # the hinted user is not the one signed in
        ({"max_age": 0}, "interaction_required", 50078),  # signed in, but must authenticate again
    ]
    for extra, error, code in cases:
        flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, prompt="none", state="st", **extra)
        params = auth_response(browser.get(flow["auth_uri"], allow_redirects=False))
        assert (params["error"], params["state"]) == (error, "st")
        assert params["error_description"].startswith(f"AADSTS{code}: ")
        assert re.search(r"Trace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}", params["error_description"])
        assert params["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"


@pytest.mark.parametrize(
    ("persona", "claims", "expected"),
    [
        ("cpx", ACRS_C1, ["c1"]),
        ("fido2", json.dumps({"id_token": {"acrs": {"essential": True, "values": ["c1", "c2"]}}}), ["c1", "c2"]),
        # Not requested: added anyway, because the app opts in to acrs and the sign-in satisfies c1's policy
        # ("Implicit auth context satisfaction by opportunistic evaluation").
        ("cpx", None, ["c1"]),
    ],
)
def test_acrs_for_compliant_sign_ins(entra_url: str, persona: str, claims: str | None, expected: list[str]) -> None:
    result = sign_in(confidential_app(entra_url), requests.Session(), login_hint=persona, claims_challenge=claims)
    assert verify(entra_url, result["id_token"]).get("acrs") == expected


def test_enforced_context_steps_a_password_sign_in_up_and_never_issues_acrs(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, login_hint="password", claims_challenge=ACRS_C1)
    page = browser.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200 and "Location" not in page.headers  # no code: the sign-in stops at Entra
    assert "Méthode d'authentification plus forte requise" in page.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert request_id and action
    cancelled = auth_response(browser.post(entra_url + action.group(1), data={"request_id": request_id.group(1)},
                                           allow_redirects=False))
    assert (cancelled["error"], cancelled["error_subcode"]) == ("access_denied", "cancel")
    assert cancelled["error_description"].startswith("AADSTS53003")


def test_enforced_context_answers_interaction_required_to_a_silent_request(entra_url: str) -> None:
    with switched(entra_url, windows_session="password-sso"):
        app = confidential_app(entra_url)
        flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, prompt="none", claims_challenge=ACRS_C1)
        params = auth_response(requests.get(flow["auth_uri"], allow_redirects=False, timeout=10))
        assert params["error"] == "interaction_required"
        assert params["error_description"].startswith("AADSTS50076")


@pytest.mark.parametrize("state", ["report-only", "none"])
def test_without_an_enforced_policy_every_sign_in_gets_the_requested_context(entra_url: str, state: str) -> None:
    """The guide's table: "ACRS requested | No policies configured with ACRS | Yes | Yes"."""
    with switched(entra_url, conditional_access={"c1": state}):
        result = sign_in(confidential_app(entra_url), requests.Session(), login_hint="password",
                         claims_challenge=ACRS_C1)
        assert verify(entra_url, result["id_token"])["acrs"] == ["c1"]


@pytest.mark.parametrize(
    "claims",
    [
        {"id_token": {"acrs": ["c1"]}},
        {"id_token": {"acrs": {"essential": True, "value": ["c1"]}}},
        {"id_token": {"acrs": {"value": "c1"}}},  # not essential
        {"id_token": {"acr": {"essential": True, "value": "c1"}}},
        {"id_token": {"acrs": {"essential": True, "values": "c1"}}},
    ],
)
def test_only_the_documented_claims_request_forms_ask_for_a_context(entra_url: str, claims: dict[str, Any]) -> None:
    # No policy on c1 here, so nothing is added opportunistically: only a request could bring it.
    with switched(entra_url, conditional_access={"c1": "none"}):
        app = confidential_app(entra_url)
        result = sign_in(app, requests.Session(), login_hint="cpx", claims_challenge=json.dumps(claims))
        assert "acrs" not in verify(entra_url, result["id_token"])
        asked = sign_in(app, requests.Session(), login_hint="cpx", claims_challenge=ACRS_C1)
        assert verify(entra_url, asked["id_token"])["acrs"] == ["c1"]


def test_optional_claims_come_only_from_the_app_registration(entra_url: str) -> None:
    app = confidential_app(entra_url)
    assert "auth_time" in sign_in(app, requests.Session(), login_hint="cpx")["id_token_claims"]
    with switched(entra_url, optional_claims=["acrs"]):
        claims = sign_in(app, requests.Session(), login_hint="cpx", claims_challenge=ACRS_C1)["id_token_claims"]
        assert "auth_time" not in claims and claims["acrs"] == ["c1"]
    with switched(entra_url, optional_claims=[], conditional_access={"c1": "enforced"}):
        # Without the opt-in, an explicit request is "the only way to get an ACRS in the token".
        claims = sign_in(app, requests.Session(), login_hint="cpx")["id_token_claims"]
        assert "auth_time" not in claims and "acrs" not in claims


def test_without_the_acrs_opt_in_the_brokers_explicit_request_still_gets_its_context(entra_url: str) -> None:
    """The developer guide: without the optional claim acrs, "the only way to get an ACRS in the token
    will be to explicitly ask for it", which the broker always does: only auth_time must be declared."""
    with switched(entra_url, optional_claims=["auth_time"]):
        result = sign_in(confidential_app(entra_url), requests.Session(), login_hint="cpx",
                         claims_challenge=claims_request(("c1",)))
        claims = verify(entra_url, result["id_token"])
        assert claims["acrs"] == ["c1"] and "auth_time" in claims


def test_a_windows_session_signs_in_silently_with_its_old_logon_unless_max_age_asks_again(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    with switched(entra_url, windows_session={"persona": "whfb-sso", "logon_age": 6 * 3600}):
        silent = sign_in(app, browser)["id_token_claims"]  # no hint, no page: the PRT answers
        assert silent["preferred_username"] == "thomas.bernard@chu-exemple.fr"
        assert abs(silent["auth_time"] - (time.time() - 6 * 3600)) < 60

        flow = app.initiate_auth_code_flow([], redirect_uri=REDIRECT_URI, max_age=4 * 3600)
        prompt = browser.get(flow["auth_uri"], allow_redirects=False)
        assert "Sécurité Windows" in prompt.text  # one Windows Hello prompt, not a silent old token
        fresh = app.acquire_token_by_auth_code_flow(flow, auth_response(reauth_prompt(browser, entra_url, prompt)))
        assert abs(fresh["id_token_claims"]["auth_time"] - time.time()) < 60
        # The PRT now carries the fresh authentication: a new browser on this machine gets it silently.
        again = sign_in(app, requests.Session(), max_age=4 * 3600)["id_token_claims"]
        assert again["auth_time"] == fresh["id_token_claims"]["auth_time"]


def test_switches_refuse_what_the_tenant_cannot_be(entra_url: str) -> None:
    for name, value in [("conditional-access", {"c1": "on"}), ("windows-session", "cpx"),
                        ("optional-claims", "auth_time")]:
        refused = requests.post(f"{entra_url}/_sim/switches/{name}", data=json.dumps(value), timeout=10)
        assert refused.status_code == 400 and refused.json()["error"]
    listed = requests.get(f"{entra_url}/_sim/switches", timeout=10).json()
    assert listed["conditional-access"]["value"] == {"c1": "enforced"}


def test_unknown_client_or_redirect_uri_gets_an_error_page_never_a_redirect(entra_url: str) -> None:
    authorize = f"{entra_url}/organizations/oauth2/v2.0/authorize"
    cases = [
        ({"client_id": ENTRA_CLIENT_ID, "redirect_uri": "https://evil.example/cb"}, "AADSTS50011"),
        ({"client_id": "unknown-app", "redirect_uri": REDIRECT_URI}, "AADSTS700016"),
    ]
    for params, code in cases:
        query = urlencode({**params, "response_type": "code", "scope": "openid", "login_hint": "cpx"})
        response = requests.get(f"{authorize}?{query}", allow_redirects=False, timeout=10)
        assert response.status_code == 400 and "Location" not in response.headers and code in response.text


def raw_code_flow(entra_url: str, browser: requests.Session, client_id: str = ENTRA_CLIENT_ID,
                  method: str = "S256", **extra: str) -> dict[str, str]:
    """An authorize request by hand; returns the code and the PKCE verifier."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode() if method == "S256" else verifier
    query = urlencode({
        "client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
        "scope": "openid profile offline_access", "state": "s", "nonce": "n",
        "code_challenge": challenge, "code_challenge_method": method, **extra,
    })
    response = browser.get(f"{entra_url}/organizations/oauth2/v2.0/authorize?{query}", allow_redirects=False)
    return {"code": auth_response(response)["code"], "verifier": verifier}


def redeem(entra_url: str, code: str, verifier: str, auth: tuple[str, str] | None = None,
           **form: str) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, **form}
    return requests.post(f"{entra_url}/organizations/oauth2/v2.0/token", data=data, auth=auth, timeout=10)


def test_token_endpoint_basic_auth_single_use_codes_and_pkce(entra_url: str) -> None:
    browser = requests.Session()
    grant = raw_code_flow(entra_url, browser, login_hint="cpx")
    ok = redeem(entra_url, grant["code"], grant["verifier"], auth=(ENTRA_CLIENT_ID, ENTRA_SECRET))
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"
    assert verify(entra_url, ok.json()["id_token"])["nonce"] == "n"
    replay = redeem(entra_url, grant["code"], grant["verifier"], auth=(ENTRA_CLIENT_ID, ENTRA_SECRET))
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert replay.json()["error_codes"] == [54005]
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(replay.json())
    assert replay.json()["trace_id"] in replay.json()["error_description"]

    grant = raw_code_flow(entra_url, browser, login_hint="cpx")
    wrong = redeem(entra_url, grant["code"], "not-the-verifier", client_id=ENTRA_CLIENT_ID, client_secret=ENTRA_SECRET)
    assert wrong.json()["error"] == "invalid_grant" and "AADSTS501481" in wrong.json()["error_description"]

    grant = raw_code_flow(entra_url, browser, method="plain", login_hint="cpx")
    bad_secret = redeem(entra_url, grant["code"], grant["verifier"], auth=(ENTRA_CLIENT_ID, "wrong"))
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    grant = raw_code_flow(entra_url, browser, method="plain", login_hint="cpx")
    plain = redeem(entra_url, grant["code"], grant["verifier"], client_id=ENTRA_CLIENT_ID, client_secret=ENTRA_SECRET)
    assert plain.status_code == 200, plain.text

    refreshed = requests.post(
        f"{entra_url}/organizations/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "refresh_token": plain.json()["refresh_token"]},
        auth=(ENTRA_CLIENT_ID, ENTRA_SECRET), timeout=10,
    )
    assert verify(entra_url, refreshed.json()["id_token"])["auth_time"] == verify(
        entra_url, plain.json()["id_token"]
    )["auth_time"]


def test_form_post_response_mode(entra_url: str) -> None:
    query = urlencode({"client_id": ENTRA_CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT_URI,
                       "scope": "openid", "state": "st", "response_mode": "form_post", "login_hint": "cpx"})
    page = requests.get(f"{entra_url}/organizations/oauth2/v2.0/authorize?{query}", timeout=10)
    assert page.status_code == 200 and f'action="{REDIRECT_URI}"' in page.text
    assert re.search(r'name="code" value="[^"]+"', page.text) and 'name="state" value="st"' in page.text


def test_logout_returns_to_a_registered_uri_but_keeps_the_windows_session(entra_url: str) -> None:
    app, browser = confidential_app(entra_url), requests.Session()
    sign_in(app, browser, login_hint="whfb-sso")
    logout = f"{entra_url}/organizations/oauth2/v2.0/logout"
    done = browser.get(logout, params={"post_logout_redirect_uri": REDIRECT_URI, "state": "s"}, allow_redirects=False)
    assert done.status_code == 302 and done.headers["Location"] == f"{REDIRECT_URI}?state=s"
    unknown = browser.get(logout, params={"post_logout_redirect_uri": "https://evil.example/"}, allow_redirects=False)
    assert unknown.status_code == 200 and "Location" not in unknown.headers
    assert sign_in(app, browser)["id_token_claims"]["preferred_username"] == "thomas.bernard@chu-exemple.fr"


def test_key_rotation_keeps_the_old_kid_published(entra_url: str) -> None:
    app = confidential_app(entra_url)
    before = sign_in(app, requests.Session(), login_hint="cpx")["id_token"]
    rotated = requests.post(f"{entra_url}/_sim/rotate-keys", timeout=10).json()
    kids = [key["kid"] for key in requests.get(f"{entra_url}/discovery/v2.0/keys", timeout=10).json()["keys"]]
    assert jwt.get_unverified_header(before)["kid"] in kids and rotated["kid"] in kids
    after = sign_in(app, requests.Session(), login_hint="cpx")["id_token"]
    assert jwt.get_unverified_header(after)["kid"] == rotated["kid"]
    assert verify(entra_url, before)["oid"] == verify(entra_url, after)["oid"]


def test_last_authorize_shows_what_the_client_sent(entra_url: str) -> None:
    app = confidential_app(entra_url)
    flow = app.initiate_auth_code_flow(
        [], redirect_uri=REDIRECT_URI, prompt="login", max_age=600, login_hint="cpx", domain_hint="chu-exemple.fr",
        claims_challenge=ACRS_C1,
    )
    requests.get(flow["auth_uri"], allow_redirects=False, timeout=10)
    seen = requests.get(f"{entra_url}/_sim/last-authorize", timeout=10).json()
    assert seen["prompt"] == "login" and seen["max_age"] == "600" and seen["login_hint"] == "cpx"
    assert seen["domain_hint"] == "chu-exemple.fr" and json.loads(seen["claims"]) == json.loads(ACRS_C1)
    assert seen["code_challenge_method"] == "S256" and seen["client_id"] == ENTRA_CLIENT_ID


def test_personas(entra_url: str) -> None:
    personas = {p["id"]: p for p in requests.get(f"{entra_url}/personas", timeout=10).json()}
    assert {"cpx", "whfb-sso", "fido2", "password", "other-tenant"} <= set(personas)
    for persona in personas.values():
        assert {"id", "label", "tid", "oid", "method", "sso", "compliant", "preferred_username", "name"} <= set(persona)
    assert personas["whfb-sso"]["sso"] is True and personas["whfb-sso"]["method"] == "whfb"
    assert personas["password"]["compliant"] is False
    assert personas["other-tenant"]["tid"] == OTHER_TENANT_ID and personas["other-tenant"]["compliant"] is True


@pytest.fixture
def managed_identity(entra_url: str, monkeypatch: pytest.MonkeyPatch) -> msal.ManagedIdentityClient:
    """MSAL's App Service managed identity, pointed at the simulator through the platform variables."""
    for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{entra_url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", DEFAULT_IDENTITY_HEADER)
    return msal.ManagedIdentityClient(
        msal.UserAssignedManagedIdentity(client_id=MANAGED_IDENTITY.client_id), http_client=requests.Session()
    )


def test_managed_identity_token_for_the_token_exchange_audience(
    entra_url: str, managed_identity: msal.ManagedIdentityClient
) -> None:
    result = managed_identity.acquire_token_for_client(resource=AZURE_AD_TOKEN_EXCHANGE)
    assert "access_token" in result, result
    # Asked for the URI, the token names the AAD Token Exchange app by its id (as Entra issues it).
    claims = verify(entra_url, result["access_token"], audience=AZURE_AD_TOKEN_EXCHANGE_APP_ID)
    assert claims["iss"] == f"{entra_url}/{HOSPITAL_TENANT_ID}/v2.0"
    assert claims["sub"] == MANAGED_IDENTITY.principal_id
    assert result["expires_in"] > 3600


def test_managed_identity_endpoint_checks_header_and_identity(entra_url: str) -> None:
    params = {"resource": AZURE_AD_TOKEN_EXCHANGE, "api-version": "2019-08-01", "client_id": MANAGED_IDENTITY.client_id}
    endpoint = f"{entra_url}/msi/token"
    assert requests.get(endpoint, params=params, timeout=10).status_code == 401
    wrong = requests.get(endpoint, params={**params, "client_id": "someone-else"},
                         headers={"X-IDENTITY-HEADER": DEFAULT_IDENTITY_HEADER}, timeout=10)
    assert wrong.status_code == 400 and "message" in wrong.json()


def test_managed_identity_as_federated_credential_redeems_a_code(
    entra_url: str, managed_identity: msal.ManagedIdentityClient
) -> None:
    def assertion() -> str:
        return managed_identity.acquire_token_for_client(resource=AZURE_AD_TOKEN_EXCHANGE)["access_token"]

    app = confidential_app(entra_url, FIC_CLIENT_ID, {"client_assertion": assertion})
    result = sign_in(app, requests.Session(), login_hint="cpx")
    claims = verify(entra_url, result["id_token"], audience=FIC_CLIENT_ID)
    with_secret = sign_in(confidential_app(entra_url), requests.Session(), login_hint="cpx")["id_token_claims"]
    assert claims["oid"] == with_secret["oid"] and claims["sub"] != with_secret["sub"]  # sub is pairwise

    stranger = confidential_app(entra_url, STRANGER_CLIENT_ID, {"client_assertion": assertion})
    refused = sign_in(stranger, requests.Session(), login_hint="cpx")
    assert refused["error"] == "invalid_client" and "AADSTS70021" in refused["error_description"]


# -- ID-token faults (issue 8, point 11): what a relying party must refuse --------------------------


def minted_id_token(entra_url: str, **switches: Any) -> str:
    """The ID token of a sign-in of ``cpx`` (nonce "n") with ``switches`` on, redeemed by hand: MSAL
    would refuse some of them itself."""
    with switched(entra_url, **switches):
        grant = raw_code_flow(entra_url, requests.Session(), login_hint="cpx")
        response = redeem(entra_url, grant["code"], grant["verifier"], auth=(ENTRA_CLIENT_ID, ENTRA_SECRET))
    assert response.status_code == 200, response.text
    return str(response.json()["id_token"])


def signed_claims(entra_url: str, token: str) -> dict[str, Any]:
    """The claims of a token that the tenant's key really signed (RS256), whatever they say."""
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    keys = jwt.PyJWKClient(f"{entra_url}/organizations/discovery/v2.0/keys", cache_jwk_set=False, ssl_context=context)
    return jwt.decode(token, keys.get_signing_key_from_jwt(token), algorithms=["RS256"],
                      options={"verify_aud": False, "verify_exp": False})


def published_pem(entra_url: str, kid: str) -> bytes:
    """The PEM of a public key of the tenant's JWKS, as anyone can fetch it."""
    jwks = requests.get(f"{entra_url}/organizations/discovery/v2.0/keys", timeout=10).json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_without_a_fault_the_id_token_passes_every_check(entra_url: str) -> None:
    claims = verify(entra_url, minted_id_token(entra_url))
    assert claims["nonce"] == "n" and "auth_time" in claims and claims["exp"] > time.time()


def test_a_wrong_signature_names_a_published_kid_but_no_published_key_verifies_it(entra_url: str) -> None:
    token = minted_id_token(entra_url, id_token_wrong_signature=True)
    assert jwt.get_unverified_header(token)["kid"] in [k["kid"] for k in requests.get(
        f"{entra_url}/organizations/discovery/v2.0/keys", timeout=10).json()["keys"]]
    with pytest.raises(jwt.InvalidSignatureError):
        signed_claims(entra_url, token)
    assert jwt.decode(token, options={"verify_signature": False})["nonce"] == "n"  # the claims look genuine


def test_alg_none_is_an_unsigned_token(entra_url: str) -> None:
    token = minted_id_token(entra_url, id_token_alg_none=True)
    assert jwt.get_unverified_header(token)["alg"] == "none" and token.endswith(".")  # empty signature
    assert jwt.decode(token, options={"verify_signature": False})["tid"] == HOSPITAL_TENANT_ID


def test_hs256_is_an_hmac_keyed_with_the_published_public_key(entra_url: str) -> None:
    token = minted_id_token(entra_url, id_token_hs256_public_key=True)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    signing_input, _, signature = token.rpartition(".")
    mac = hmac.new(published_pem(entra_url, header["kid"]), signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature  # what a confused verifier checks


@pytest.mark.parametrize(
    ("switch", "expected"),
    [
        ("id_token_foreign_issuer", lambda c: c["iss"] == f"https://sts.windows.net/{HOSPITAL_TENANT_ID}/"),
        ("id_token_wrong_audience", lambda c: c["aud"] == entra_switches.OTHER_APP_ID),
        ("id_token_wrong_nonce", lambda c: c["nonce"] not in ("", "n")),
        ("id_token_no_nonce", lambda c: "nonce" not in c),
        ("id_token_expired", lambda c: c["exp"] < time.time() - 500 and c["exp"] - c["iat"] == 3600
         and c["auth_time"] <= c["iat"]),
        ("id_token_no_auth_time", lambda c: "auth_time" not in c),
    ],
)
def test_a_claims_fault_changes_only_its_claim_under_a_genuine_signature(
    entra_url: str, switch: str, expected: Callable[[dict[str, Any]], bool]
) -> None:
    claims = signed_claims(entra_url, minted_id_token(entra_url, **{switch: True}))
    assert expected(claims), claims
    assert claims["tid"] == HOSPITAL_TENANT_ID and claims["oid"] == "5b2f8c1e-3a47-4d90-8e6b-1c2d3e4f5a61"


def test_msal_itself_refuses_only_the_nonce_faults(entra_url: str) -> None:
    """MSAL 1.38+ checks the nonce (and auth_time against max_age): the other faults reach the caller."""
    app = confidential_app(entra_url)
    for switch in ("id_token_wrong_nonce", "id_token_no_nonce"):
        with switched(entra_url, **{switch: True}), pytest.raises(RuntimeError, match="nonce"):
            sign_in(app, requests.Session(), login_hint="cpx")
    with switched(entra_url, id_token_alg_none=True, id_token_wrong_audience=True, id_token_expired=True):
        assert "id_token" in sign_in(app, requests.Session(), login_hint="cpx")


def test_the_clock_offset_moves_entras_time(entra_url: str) -> None:
    claims = jwt.decode(minted_id_token(entra_url, clock_offset=90), options={"verify_signature": False})
    now = time.time()
    assert 80 < claims["auth_time"] - now < 100 and 80 < claims["iat"] - now < 100


def test_fault_switches_take_true_or_false_and_are_off_by_default(entra_url: str) -> None:
    listed = requests.get(f"{entra_url}/_sim/switches", timeout=10).json()
    faults = [name for name in listed if name.startswith("id-token-")]
    assert len(faults) == 9 and all(listed[name]["value"] is False and listed[name]["doc"] for name in faults)
    for name in faults:
        refused = requests.post(f"{entra_url}/_sim/switches/{name}", data=json.dumps("yes"), timeout=10)
        assert refused.status_code == 400 and "true or false" in refused.json()["error"]
    assert requests.post(f"{entra_url}/_sim/switches/clock-offset", data="1.5", timeout=10).status_code == 400
