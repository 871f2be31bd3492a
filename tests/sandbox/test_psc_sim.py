"""The Pro Santé Connect simulator as the broker uses it: code flow, PKCE, userinfo layouts, SSO session, switches."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from sandbox.psc_sim import state as psc_state
from sandbox.switches import set_switch
from sandbox.switches import switched
from tests.sandbox.conftest import PSC_CLIENT_ID
from tests.sandbox.conftest import PSC_POST_LOGOUT_URI
from tests.sandbox.conftest import PSC_REDIRECT_URI
from tests.sandbox.conftest import PSC_SECRET

REALM = "/auth/realms/esante-wallet"
ACTIVITY_KEYS = {
    "codeModeExercice", "codeSecteurDactivite", "codeSectionPharmacien", "codeRole", "codeGenreActivite",
    "numeroSiretSite", "numeroSirenSite", "numeroFinessSite", "numeroFinessetablissementJuridique",
    "identifiantTechniqueDeLaStructure", "raisonSocialeSite", "enseigneCommercialeSite", "complementDestinataire",
    "complementPointGeographique", "numeroVoie", "indiceRepetitionVoie", "codeTypeDeVoie", "libelleVoie",
    "mentionDistribution", "bureauCedex", "codePostal", "codeCommune", "codePays", "telephone", "telephone2",
    "telecopie", "adresseEMail", "codeDepartement", "ancienIdentifiantDeLaStructure", "autoriteDenregistrement",
}
EXERCICE_KEYS = {
    "codeProfession", "codeCategorieProfessionnelle", "codeCiviliteDexercice", "nomDexercice", "prenomDexercice",
    "codeTypeSavoirFaire", "codeSavoirFaire", "activities",
}
USERINFO_KEYS = {
    "sub", "preferred_username", "given_name", "family_name", "SubjectNameID",
    "SubjectOrganization", "SubjectOrganizationID", "SubjectRole", "SubjectRefPro", "Secteur_Activite",
    "PSI_Locale", "Palier_Authentification", "Mode_Acces_Raison", "Acces_Regulation_Medicale", "UITVersion",
    "otherIds",
}
"""Claims every observed layout has; each layout adds its own (test_each_userinfo_layout_...)."""


def authorize_url(psc_url: str, challenge: str = "", method: str = "S256", **extra: str) -> str:
    params = {
        "response_type": "code", "client_id": PSC_CLIENT_ID, "redirect_uri": PSC_REDIRECT_URI,
        "scope": "openid scope_all", "acr_values": "eidas1", "state": "st4te", "nonce": "n0nce",
        **({"code_challenge": challenge, "code_challenge_method": method} if challenge else {}), **extra,
    }
    return f"{psc_url}/wallet/auth?{urlencode(params)}"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def redirected(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text[:300]
    assert response.headers["Location"].startswith(PSC_REDIRECT_URI + "?")
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


def code_for(psc_url: str, persona: str, verifier_challenge: tuple[str, str] | None = None) -> dict[str, str]:
    verifier, challenge = verifier_challenge or pkce()
    response = requests.get(authorize_url(psc_url, challenge, login_hint=persona), allow_redirects=False, timeout=10)
    return {**redirected(response), "verifier": verifier}


def redeem(psc_url: str, code: str, verifier: str, secret: str = PSC_SECRET) -> requests.Response:
    return requests.post(
        f"{psc_url}{REALM}/protocol/openid-connect/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": PSC_REDIRECT_URI,
              "code_verifier": verifier},
        auth=(PSC_CLIENT_ID, secret),  # client_secret_basic
        timeout=10,
    )


def tokens_for(psc_url: str, persona: str) -> dict[str, Any]:
    grant = code_for(psc_url, persona)
    response = redeem(psc_url, grant["code"], grant["verifier"])
    assert response.status_code == 200, response.text
    return response.json()


def userinfo(psc_url: str, access_token: str) -> dict[str, Any]:
    response = requests.get(f"{psc_url}{REALM}/protocol/openid-connect/userinfo",
                            headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_discovery_at_the_wallet_path_names_the_realm_issuer(psc_url: str) -> None:
    wallet = requests.get(f"{psc_url}{REALM}/.well-known/wallet-openid-configuration", timeout=10).json()
    assert wallet == requests.get(f"{psc_url}{REALM}/.well-known/openid-configuration", timeout=10).json()
    issuer = psc_url + REALM
    assert wallet["issuer"] == issuer
    assert wallet["authorization_endpoint"] == f"{psc_url}/wallet/auth"
    assert wallet["token_endpoint"] == f"{issuer}/protocol/openid-connect/token"
    assert wallet["userinfo_endpoint"] == f"{issuer}/protocol/openid-connect/userinfo"
    assert wallet["jwks_uri"] == f"{issuer}/protocol/openid-connect/certs"
    assert wallet["end_session_endpoint"] == f"{issuer}/protocol/openid-connect/logout"
    assert "client_secret_basic" in wallet["token_endpoint_auth_methods_supported"]
    assert "S256" in wallet["code_challenge_methods_supported"]
    assert {"openid", "scope_all"} <= set(wallet["scopes_supported"])


def test_code_flow_with_basic_auth_pkce_and_nonce_gives_an_eidas1_id_token(psc_url: str) -> None:
    grant = code_for(psc_url, "medecin-cps")
    assert grant["state"] == "st4te" and grant["iss"] == psc_url + REALM
    body = redeem(psc_url, grant["code"], grant["verifier"]).json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 120
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    keys = jwt.PyJWKClient(f"{psc_url}{REALM}/protocol/openid-connect/certs", ssl_context=context)
    claims = jwt.decode(
        body["id_token"], keys.get_signing_key_from_jwt(body["id_token"]), algorithms=["RS256"],
        audience=PSC_CLIENT_ID, issuer=psc_url + REALM,
    )
    assert claims["acr"] == "eidas1" and claims["nonce"] == "n0nce"
    assert claims["sub"] == "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:810100000001"
    assert claims["preferred_username"] == "810100000001" and claims["idp"]
    assert claims["iat"] <= claims["exp"] and claims["auth_time"] <= claims["iat"]


def test_userinfo_of_the_doctor_has_psc_claim_names_and_shapes(psc_url: str) -> None:
    info = userinfo(psc_url, tokens_for(psc_url, "medecin-cps")["access_token"])
    assert set(info) == USERINFO_KEYS | {"authMode"}  # the BAS sample's layout
    assert info["SubjectNameID"] == info["preferred_username"] == "810100000001"
    assert len(info["SubjectNameID"]) == 12 and info["SubjectNameID"].startswith("8")
    assert info["authMode"] == "CARD"
    assert info["SubjectRole"] == ["10^1.2.250.1.213.1.1.5.5"]
    assert info["Secteur_Activite"].endswith("^1.2.250.1.71.4.2.4")
    assert info["otherIds"] == [{"identifiant": "810100000001", "origine": "RPPS", "qualite": 1}]
    refpro = info["SubjectRefPro"]
    assert set(refpro) == {"codeCivilite", "exercices"} and isinstance(refpro["exercices"], list)
    exercice = refpro["exercices"][0]
    assert set(exercice) == EXERCICE_KEYS and exercice["codeProfession"] == "10"
    activity = exercice["activities"][0]
    assert set(activity) == ACTIVITY_KEYS
    assert all(isinstance(value, str) for value in activity.values())
    assert info["SubjectOrganizationID"] == activity["identifiantTechniqueDeLaStructure"]


def test_other_personas_nurse_with_e_cps_and_pharmacist(psc_url: str) -> None:
    nurse = userinfo(psc_url, tokens_for(psc_url, "infirmier-ecps")["access_token"])
    assert nurse["authMode"] == "MOBILE" and nurse["SubjectRole"] == ["60^1.2.250.1.213.1.1.5.5"]
    pharmacist = userinfo(psc_url, tokens_for(psc_url, "pharmacien-cps")["access_token"])
    assert pharmacist["SubjectRefPro"]["exercices"][0]["activities"][0]["codeSectionPharmacien"] == "H"
    second = userinfo(psc_url, tokens_for(psc_url, "medecin2-cps")["access_token"])
    assert second["SubjectNameID"] != "810100000001" and len(second["SubjectRefPro"]["exercices"][0]["activities"]) == 2


def test_wrong_secret_is_401_invalid_client(psc_url: str) -> None:
    grant = code_for(psc_url, "medecin-cps")
    response = redeem(psc_url, grant["code"], grant["verifier"], secret="wrong")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_codes_are_single_use_and_bound_to_the_pkce_verifier(psc_url: str) -> None:
    grant = code_for(psc_url, "medecin-cps")
    assert redeem(psc_url, grant["code"], grant["verifier"]).status_code == 200
    replay = redeem(psc_url, grant["code"], grant["verifier"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    grant = code_for(psc_url, "medecin-cps")
    mismatch = redeem(psc_url, grant["code"], "another-verifier-" + "x" * 40)
    assert mismatch.json() == {"error": "invalid_grant", "error_description": "PKCE verification failed: Code mismatch"}
    grant = code_for(psc_url, "medecin-cps")
    post = requests.post(
        f"{psc_url}{REALM}/protocol/openid-connect/token",
        data={"grant_type": "authorization_code", "code": grant["code"], "redirect_uri": PSC_REDIRECT_URI,
              "code_verifier": grant["verifier"], "client_id": PSC_CLIENT_ID, "client_secret": PSC_SECRET},
        timeout=10,
    )
    assert post.status_code == 200  # client_secret_post is accepted too


def test_wallet_page_in_french_then_choosing_an_identity(psc_url: str) -> None:
    browser = requests.Session()
    verifier, challenge = pkce()
    page = browser.get(authorize_url(psc_url, challenge), allow_redirects=False)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<html lang="fr">' in page.text and "Pro Santé Connect" in page.text
    assert "Carte CPS" in page.text and "e-CPS" in page.text
    assert not re.search(r'(src|href)="https?://', page.text)  # no external assets
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.text)
    assert request_id
    chosen = browser.post(f"{psc_url}/wallet/login", data={"request_id": request_id.group(1),
                                                           "persona": "infirmier-ecps"}, allow_redirects=False)
    body = redeem(psc_url, redirected(chosen)["code"], verifier).json()
    assert jwt.decode(body["id_token"], options={"verify_signature": False})["preferred_username"] == "810100000002"


def test_unknown_redirect_uri_is_an_error_page_and_prompt_none_is_login_required(psc_url: str) -> None:
    evil = authorize_url(psc_url, redirect_uri="https://evil.example/cb")
    bad = requests.get(evil, allow_redirects=False, timeout=10)
    assert bad.status_code == 400 and "Location" not in bad.headers
    silent = redirected(requests.get(authorize_url(psc_url, prompt="none"), allow_redirects=False, timeout=10))
    assert silent["error"] == "login_required" and silent["state"] == "st4te"
    scope = redirected(requests.get(authorize_url(psc_url, scope="openid email"), allow_redirects=False, timeout=10))
    assert scope["error"] == "invalid_scope"


def test_logout_redirects_only_to_a_registered_uri_with_state(psc_url: str) -> None:
    id_token = tokens_for(psc_url, "medecin-cps")["id_token"]
    logout = f"{psc_url}{REALM}/protocol/openid-connect/logout"
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": PSC_POST_LOGOUT_URI, "state": "bye"}
    done = requests.get(logout, params=params, allow_redirects=False, timeout=10)
    assert done.status_code == 302 and done.headers["Location"] == f"{PSC_POST_LOGOUT_URI}?state=bye"
    refused = requests.get(logout, params={**params, "post_logout_redirect_uri": "https://evil.example/"},
                           allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "Location" not in refused.headers


def test_userinfo_by_post_and_refusal_of_a_bad_token(psc_url: str) -> None:
    endpoint = f"{psc_url}{REALM}/protocol/openid-connect/userinfo"
    access_token = tokens_for(psc_url, "pharmacien-cps")["access_token"]
    posted = requests.post(endpoint, data={"access_token": access_token}, timeout=10)
    assert posted.json()["SubjectNameID"] == "810100000003"
    response = requests.get(endpoint, headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_personas_and_last_authorize(psc_url: str) -> None:
    personas = {p["id"]: p for p in requests.get(f"{psc_url}/personas", timeout=10).json()}
    assert {"medecin-cps", "infirmier-ecps", "pharmacien-cps", "medecin2-cps"} <= set(personas)
    for persona in personas.values():
        assert set(persona) == {"id", "label", "SubjectNameID", "authMode", "sub", "given_name", "family_name",
                                "layout"}
        assert persona["sub"].endswith(":" + persona["SubjectNameID"])
    requests.get(authorize_url(psc_url, pkce()[1], login_hint="medecin-cps"), allow_redirects=False, timeout=10)
    seen = requests.get(f"{psc_url}/_sim/last-authorize", timeout=10).json()
    assert seen["acr_values"] == "eidas1" and seen["scope"] == "openid scope_all"
    assert seen["login_hint"] == "medecin-cps" and seen["code_challenge_method"] == "S256"


# -- the wallet's SSO session (issue 7, point 6) -------------------------------------------------


def sign_in(browser: requests.Session, psc_url: str, **extra: str) -> dict[str, Any]:
    """One authorization in ``browser`` (with its cookies), redeemed: the ID token's claims."""
    verifier, challenge = pkce()
    back = redirected(browser.get(authorize_url(psc_url, challenge, **extra), allow_redirects=False, timeout=10))
    response = redeem(psc_url, back["code"], verifier)
    assert response.status_code == 200, response.text
    return jwt.decode(response.json()["id_token"], options={"verify_signature": False})


def age_sessions(psc_url: str, seconds: float) -> None:
    """Time passes for the wallet's SSO sessions."""
    assert requests.post(f"{psc_url}/_sim/sso-sessions/age", json=seconds, timeout=10).status_code == 200


def silent(browser: requests.Session, psc_url: str) -> dict[str, str]:
    return redirected(browser.get(authorize_url(psc_url, pkce()[1], prompt="none"), allow_redirects=False, timeout=10))


def test_the_sso_cookie_is_keycloaks_secure_and_http_only(psc_url: str) -> None:
    browser = requests.Session()
    response = browser.get(authorize_url(psc_url, pkce()[1], login_hint="medecin-cps"), allow_redirects=False)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("KEYCLOAK_IDENTITY=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=None" in cookie and "Path=/" in cookie


def test_within_the_sso_session_an_authorization_is_silent_with_the_original_auth_time(psc_url: str) -> None:
    browser = requests.Session()
    first = sign_in(browser, psc_url, login_hint="medecin-cps")
    age_sessions(psc_url, 60)
    # Keycloak's cookie authenticator answers for the session's person: login_hint is not consulted.
    second = sign_in(browser, psc_url, login_hint="pharmacien-cps")
    assert second["sub"] == first["sub"] and second["sid"] == first["sid"]
    assert second["auth_time"] == first["auth_time"] - 60  # the original authentication, a minute ago
    assert time.time() - second["auth_time"] >= 60


def test_prompt_none_within_the_sso_session_is_silent_and_without_it_login_required(psc_url: str) -> None:
    browser = requests.Session()
    assert silent(browser, psc_url)["error"] == "login_required"
    sign_in(browser, psc_url, login_hint="infirmier-ecps")
    assert "code" in silent(browser, psc_url)


def test_prompt_login_forces_a_fresh_authentication_that_replaces_the_session(psc_url: str) -> None:
    browser = requests.Session()
    first = sign_in(browser, psc_url, login_hint="medecin-cps")
    age_sessions(psc_url, 60)
    wallet = browser.get(authorize_url(psc_url, pkce()[1], prompt="login"), allow_redirects=False, timeout=10)
    assert wallet.status_code == 200 and "Authentifiez-vous" in wallet.text  # the card is asked for again
    fresh = sign_in(browser, psc_url, prompt="login", login_hint="medecin2-cps")
    assert fresh["sub"].endswith(":810100000004") and fresh["sid"] != first["sid"]
    assert time.time() - fresh["auth_time"] < 10
    assert sign_in(browser, psc_url)["sid"] == fresh["sid"]  # the new session is the browser's now


def test_max_age_forces_a_fresh_authentication_once_the_session_is_older(psc_url: str) -> None:
    browser = requests.Session()
    first = sign_in(browser, psc_url, login_hint="medecin-cps")
    age_sessions(psc_url, 60)
    assert sign_in(browser, psc_url, max_age="3600")["auth_time"] == first["auth_time"] - 60
    fresh = sign_in(browser, psc_url, max_age="0", login_hint="medecin-cps")
    assert time.time() - fresh["auth_time"] < 10 and fresh["sid"] != first["sid"]
    bad = redirected(requests.get(authorize_url(psc_url, max_age="soon"), allow_redirects=False, timeout=10))
    assert (bad["error"], bad["error_description"]) == ("invalid_request", "Invalid parameter: max_age")


def test_the_sso_session_ends_after_30_minutes_idle(psc_url: str) -> None:
    browser = requests.Session()
    sign_in(browser, psc_url, login_hint="medecin-cps")
    age_sessions(psc_url, 29 * 60)
    assert "code" in silent(browser, psc_url)  # used: the idle timeout starts again
    age_sessions(psc_url, 31 * 60)
    assert silent(browser, psc_url)["error"] == "login_required"


def test_the_sso_session_ends_after_4_hours_however_often_it_is_used(psc_url: str) -> None:
    browser = requests.Session()
    sign_in(browser, psc_url, login_hint="medecin-cps")
    for _ in range(9):  # 225 minutes, never 30 minutes idle
        age_sessions(psc_url, 25 * 60)
        assert "code" in silent(browser, psc_url)
    age_sessions(psc_url, 25 * 60)
    assert silent(browser, psc_url)["error"] == "login_required"


def test_logout_ends_the_sso_session_after_confirmation_or_at_once_with_an_id_token_hint(psc_url: str) -> None:
    logout = f"{psc_url}{REALM}/protocol/openid-connect/logout"
    browser = requests.Session()
    sign_in(browser, psc_url, login_hint="medecin-cps")
    confirmation = browser.get(logout, timeout=10)
    assert confirmation.status_code == 200 and "Voulez-vous vous déconnecter" in confirmation.text
    assert "code" in silent(browser, psc_url)  # nothing ended before the person confirms
    code = re.search(r'name="session_code" value="([^"]+)"', confirmation.text)
    assert code
    done = browser.post(logout, data={"session_code": code.group(1), "confirm": "yes"}, timeout=10)
    assert "Vous êtes déconnecté" in done.text
    assert silent(browser, psc_url)["error"] == "login_required"

    verifier, challenge = pkce()
    back = redirected(browser.get(authorize_url(psc_url, challenge, login_hint="medecin-cps"), allow_redirects=False))
    hint = redeem(psc_url, back["code"], verifier).json()["id_token"]
    # The hint's sid names the session: no confirmation, and no cookie needed.
    assert "Vous êtes déconnecté" in requests.get(logout, params={"id_token_hint": hint}, timeout=10).text
    assert silent(browser, psc_url)["error"] == "login_required"


# -- switches -------------------------------------------------------------------------------------


def test_switch_wallet_ignores_prompt_login_answers_from_the_session_with_its_auth_time(psc_url: str) -> None:
    browser = requests.Session()
    first = sign_in(browser, psc_url, login_hint="medecin-cps")
    age_sessions(psc_url, 120)
    with switched(psc_url, wallet_ignores_prompt_login=True):
        stale = sign_in(browser, psc_url, prompt="login", max_age="0", login_hint="medecin2-cps")
        fresh = sign_in(requests.Session(), psc_url, prompt="login", login_hint="medecin2-cps")  # no session
    assert stale["sub"] == first["sub"] and stale["auth_time"] == first["auth_time"] - 120
    assert fresh["sub"].endswith(":810100000004") and time.time() - fresh["auth_time"] < 10
    with pytest.raises(ValueError, match="takes true or false"):
        set_switch(psc_url, "wallet-ignores-prompt-login", "yes")


def test_switch_userinfo_signed_answers_a_jws_whose_envelope_is_not_identity(psc_url: str) -> None:
    plain = userinfo(psc_url, tokens_for(psc_url, "medecin-cps")["access_token"])
    with switched(psc_url, userinfo_signed=True):
        access_token = tokens_for(psc_url, "medecin-cps")["access_token"]
        response = requests.get(f"{psc_url}{REALM}/protocol/openid-connect/userinfo",
                                headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert response.headers["Content-Type"] == "application/jwt"
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    keys = jwt.PyJWKClient(f"{psc_url}{REALM}/protocol/openid-connect/certs", ssl_context=context)
    claims = jwt.decode(response.text, keys.get_signing_key_from_jwt(response.text), algorithms=["RS256"],
                        audience=PSC_CLIENT_ID, issuer=psc_url + REALM)
    envelope = {"iss", "aud", "iat", "nbf", "exp", "jti"}
    assert envelope <= set(claims) and {k: v for k, v in claims.items() if k not in envelope} == plain


# -- userinfo layouts (issue 7, point 7) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("persona", "layout", "own_claims"),
    [
        ("medecin-cps", "bas-2022", {"authMode"}),
        ("kine-2021", "edit-2021", {"email_verified"}),
        ("infirmiere-2023", "edit-2023", {"codeCivilite", "codeGenreActivite"}),
    ],
)
def test_each_userinfo_layout_has_the_observed_shape(
    psc_url: str, persona: str, layout: str, own_claims: set[str]
) -> None:
    info = userinfo(psc_url, tokens_for(psc_url, persona)["access_token"])
    assert set(info) == USERINFO_KEYS | own_claims
    described = {p["id"]: p for p in requests.get(f"{psc_url}/personas", timeout=10).json()}[persona]
    assert described["layout"] == layout
    exercice = info["SubjectRefPro"]["exercices"][0]
    assert set(exercice) == EXERCICE_KEYS and set(exercice["activities"][0]) == ACTIVITY_KEYS
    if layout == "edit-2023":
        assert set(info["SubjectRefPro"]) == {"exercices"} and info["codeCivilite"] == "MME"
        assert info["codeGenreActivite"] == exercice["activities"][0]["codeGenreActivite"] == "GENR01"
        assert info["otherIds"][0]["origine"] == "EDIT" and info["SubjectNameID"].startswith("ANS")
    else:
        assert set(info["SubjectRefPro"]) == {"codeCivilite", "exercices"}
    if layout == "edit-2021":
        assert info["email_verified"] is False


# -- ID-token and userinfo faults (issue 8, point 11): what a relying party must refuse -------------


def faulty_tokens(psc_url: str, **switches: Any) -> dict[str, Any]:
    """The token response of a sign-in of ``medecin-cps`` (nonce "n0nce") with ``switches`` on."""
    with switched(psc_url, **switches):
        return tokens_for(psc_url, "medecin-cps")


def realm_keys(psc_url: str) -> jwt.PyJWKClient:
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    return jwt.PyJWKClient(f"{psc_url}{REALM}/protocol/openid-connect/certs", cache_jwk_set=False,
                           ssl_context=context)


def signed_claims(psc_url: str, token: str) -> dict[str, Any]:
    """The claims of a token that the realm's key really signed (RS256), whatever they say."""
    return jwt.decode(token, realm_keys(psc_url).get_signing_key_from_jwt(token), algorithms=["RS256"],
                      options={"verify_aud": False, "verify_exp": False})


def test_a_wrong_signature_names_a_published_kid_but_no_published_key_verifies_it(psc_url: str) -> None:
    token = faulty_tokens(psc_url, id_token_wrong_signature=True)["id_token"]
    with pytest.raises(jwt.InvalidSignatureError):
        signed_claims(psc_url, token)  # the kid is found: only the signature is wrong
    assert jwt.decode(token, options={"verify_signature": False})["acr"] == "eidas1"


def test_alg_none_is_an_unsigned_token(psc_url: str) -> None:
    token = faulty_tokens(psc_url, id_token_alg_none=True)["id_token"]
    assert jwt.get_unverified_header(token)["alg"] == "none" and token.endswith(".")  # empty signature


def test_hs256_is_an_hmac_keyed_with_the_published_public_key(psc_url: str) -> None:
    token = faulty_tokens(psc_url, id_token_hs256_public_key=True)["id_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    jwks = requests.get(f"{psc_url}{REALM}/protocol/openid-connect/certs", timeout=10).json()
    public = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input, _, signature = token.rpartition(".")
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature  # what a confused verifier checks


@pytest.mark.parametrize(
    ("switch", "value", "expected"),
    [
        ("id_token_foreign_issuer", True, lambda c: c["iss"] == psc_state.OTHER_REALM_ISSUER),
        ("id_token_wrong_audience", True,
         lambda c: c["aud"] == c["azp"] == psc_state.OTHER_CLIENT_ID),
        ("id_token_wrong_nonce", True, lambda c: c["nonce"] not in ("", "n0nce")),
        ("id_token_no_nonce", True, lambda c: "nonce" not in c),
        ("id_token_expired", True, lambda c: c["exp"] < time.time() - 500 and c["exp"] - c["iat"] == 120
         and c["auth_time"] <= c["iat"]),
        ("id_token_no_auth_time", True, lambda c: "auth_time" not in c),
        ("id_token_acr", "0", lambda c: c["acr"] == "0"),
    ],
)
def test_a_claims_fault_changes_only_its_claim_under_a_genuine_signature(
    psc_url: str, switch: str, value: object, expected: Callable[[dict[str, Any]], bool]
) -> None:
    tokens = faulty_tokens(psc_url, **{switch: value})
    claims = signed_claims(psc_url, tokens["id_token"])
    assert expected(claims), claims
    assert claims["sub"].endswith(":810100000001")
    assert userinfo(psc_url, tokens["access_token"])["sub"] == claims["sub"]  # userinfo untouched


def test_userinfo_other_sub_answers_for_another_professional(psc_url: str) -> None:
    tokens = tokens_for(psc_url, "medecin-cps")
    with switched(psc_url, userinfo_other_sub=True):
        info = userinfo(psc_url, tokens["access_token"])
    assert info["sub"] != jwt.decode(tokens["id_token"], options={"verify_signature": False})["sub"]
    assert info["SubjectNameID"] != "810100000001"


@pytest.mark.parametrize(
    ("switch", "claim", "value"),
    [("signed_userinfo_wrong_iss", "iss", psc_state.OTHER_REALM_ISSUER),
     ("signed_userinfo_wrong_aud", "aud", psc_state.OTHER_CLIENT_ID)],
)
def test_a_signed_userinfo_fault_answers_a_genuine_jws_with_the_wrong_envelope(
    psc_url: str, switch: str, claim: str, value: str
) -> None:
    access_token = tokens_for(psc_url, "medecin-cps")["access_token"]
    with switched(psc_url, **{switch: True}):
        response = requests.get(f"{psc_url}{REALM}/protocol/openid-connect/userinfo",
                                headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
    assert response.headers["Content-Type"] == "application/jwt"
    claims = signed_claims(psc_url, response.text)
    assert claims[claim] == value and claims["sub"].endswith(":810100000001")


def test_the_clock_offset_moves_psc_time(psc_url: str) -> None:
    claims = jwt.decode(faulty_tokens(psc_url, clock_offset=90)["id_token"], options={"verify_signature": False})
    now = time.time()
    assert 80 < claims["auth_time"] - now < 100 and 80 < claims["iat"] - now < 100


def test_fault_switches_are_off_by_default_and_refuse_what_they_cannot_be(psc_url: str) -> None:
    listed = requests.get(f"{psc_url}/_sim/switches", timeout=10).json()
    faults = [n for n in listed if n.startswith(("id-token-", "userinfo-other", "signed-userinfo-"))]
    assert len(faults) == 13 and all(listed[n]["doc"] and listed[n]["value"] in (False, None) for n in faults)
    for name in faults:
        with pytest.raises(ValueError, match="refused"):
            set_switch(psc_url, name, 1)
    with pytest.raises(ValueError, match="whole number"):
        set_switch(psc_url, "clock-offset", "soon")
