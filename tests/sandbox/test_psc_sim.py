"""The Pro Santé Connect simulator as the broker's pairing step uses it (code flow, PKCE, userinfo)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import ssl
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import requests

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
    "sub", "preferred_username", "given_name", "family_name", "email_verified", "SubjectNameID",
    "SubjectOrganization", "SubjectOrganizationID", "SubjectRole", "SubjectRefPro", "Secteur_Activite",
    "PSI_Locale", "Palier_Authentification", "Mode_Acces_Raison", "Acces_Regulation_Medicale", "UITVersion",
    "otherIds", "authMode",
}


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
    assert set(info) == USERINFO_KEYS
    assert info["SubjectNameID"] == info["preferred_username"] == "810100000001"
    assert len(info["SubjectNameID"]) == 12 and info["SubjectNameID"].startswith("8")
    assert info["authMode"] == "CARD" and info["email_verified"] is False
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
        assert set(persona) == {"id", "label", "SubjectNameID", "authMode", "sub", "given_name", "family_name"}
        assert persona["sub"].endswith(":" + persona["SubjectNameID"])
    requests.get(authorize_url(psc_url, pkce()[1], login_hint="medecin-cps"), allow_redirects=False, timeout=10)
    seen = requests.get(f"{psc_url}/_sim/last-authorize", timeout=10).json()
    assert seen["acr_values"] == "eidas1" and seen["scope"] == "openid scope_all"
    assert seen["login_hint"] == "medecin-cps" and seen["code_challenge_method"] == "S256"
