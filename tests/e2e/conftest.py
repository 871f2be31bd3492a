"""The ``broker`` fixture: the sandbox's broker with its three test relying parties
(``rp-basic``, ``rp-post``, ``rp-jwt``), and a way to issue an authorization code directly, as the end of
the sign-in journey would (the journey itself is exercised in test_journey.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests

from sandbox.run import RegisteredClient
from sandbox.run import Sandbox
from sanscouture.adapters.tables import Tables
from sanscouture.models import CodeGrant
from sanscouture.models import PscIdentity
from sanscouture.oidc.client_auth import ASSERTION_TYPE
from sanscouture.oidc.codes import issue_code
from sanscouture.oidc.codes import new_grant_id

# PSC userinfo of the BAS test identity (prosanteconnect/proof-of-concept HelperTest.java).
PSC_USERINFO: dict[str, Any] = {
    "Secteur_Activite": "SA07^1.2.250.1.71.4.2.4",
    "sub": "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:899700427885",
    "SubjectOrganization": "CABINET M DOC0042788",
    "Mode_Acces_Raison": "",
    "preferred_username": "899700427885",
    "given_name": "KIT",
    "Acces_Regulation_Medicale": "FAUX",
    "UITVersion": "1.0",
    "authMode": "CARD",
    "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
    "SubjectRefPro": {
        "codeCivilite": "M",
        "exercices": [
            {
                "codeProfession": "10",
                "codeCategorieProfessionnelle": "C",
                "codeCiviliteDexercice": "DR",
                "nomDexercice": "DOC0042788",
                "prenomDexercice": "KIT",
                "codeTypeSavoirFaire": "S",
                "codeSavoirFaire": "SM26",
                "activities": [
                    {
                        "codeModeExercice": "L",
                        "codeSecteurDactivite": "SA07",
                        "identifiantTechniqueDeLaStructure": "R102671",
                        "raisonSocialeSite": "CABINET M DOC0042788",
                        "codePostal": "75009",
                        "ancienIdentifiantDeLaStructure": "499700427885006",
                        "autoriteDenregistrement": "CNOM/CNOM/CNOM",
                    }
                ],
            }
        ],
    },
    "SubjectOrganizationID": "R102671",
    "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
    "PSI_Locale": "1.2.250.1.213.1.3.1.1",
    "otherIds": [{"identifiant": "899700427885", "origine": "RPPS", "qualite": 1}],
    "SubjectNameID": "899700427885",
    "family_name": "DOC0042788",
}


@dataclass
class BrokerUnderTest:
    """A running broker: its base URL, its tables, its relying parties (id → RegisteredClient)."""

    url: str
    tables: Tables
    clients: dict[str, RegisteredClient]

    def issue_code(
        self,
        client_id: str,
        *,
        code_challenge: str,
        redirect_uri: str | None = None,
        nonce: str | None = None,
        identity: PscIdentity | None = None,
        scope: tuple[str, ...] = ("openid", "scope_all"),
        auth_time: int = 1_800_000_000,
        sid: str | None = None,
    ) -> str:
        """An authorization code for ``client_id``, as the end of the sign-in journey would issue it."""
        grant = CodeGrant(
            client_id=client_id,
            redirect_uri=redirect_uri or self.clients[client_id].redirect_uris[0],
            code_challenge=code_challenge,
            scope=scope,
            identity=identity or PscIdentity.from_userinfo(PSC_USERINFO),
            auth_time=auth_time,
            sid=sid or secrets.token_urlsafe(16),
            nonce=nonce,
        )
        code = issue_code(self.tables["codes"], grant, new_grant_id())
        assert code is not None
        return code


@pytest.fixture(scope="session")
def broker(sandbox: Sandbox) -> BrokerUnderTest:
    """The sandbox's broker, seen as a relying party's back channel sees it."""
    return BrokerUnderTest(
        url=sandbox.broker_url,
        tables=Tables.from_connection_string(sandbox.azurite_connection or ""),
        clients={client.client_id: client for client in sandbox.clients},
    )


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return cls(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


class RelyingParties:
    """What a relying party does at /token, for each registered client (built on ``broker`` only)."""

    def __init__(self, broker: BrokerUnderTest) -> None:
        self.broker = broker

    def code(self, client_id: str, *, nonce: str | None = None, **kwargs: Any) -> tuple[str, Pkce]:
        pkce = Pkce.new()
        return self.broker.issue_code(client_id, code_challenge=pkce.challenge, nonce=nonce, **kwargs), pkce

    def assertion(self, client_id: str = "rp-jwt", *, key: Mapping[str, Any] | None = None, **claims: Any) -> str:
        """A private_key_jwt client assertion (RFC 7523 3), signed with the client's key by default."""
        jwk = key or self.broker.clients[client_id].private_jwk
        assert jwk is not None
        now = int(time.time())
        payload = {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{self.broker.url}/token",
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
            **claims,
        }
        return jwt.encode(payload, jwt.PyJWK(dict(jwk)).key, algorithm="RS256", headers={"kid": jwk["kid"]})

    def credentials(self, client_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, form fields) authenticating ``client_id`` with its registered method."""
        client = self.broker.clients[client_id]
        if client.auth_method == "client_secret_basic":
            raw = f"{quote(client_id, safe='')}:{quote(client.secret or '', safe='')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}, {}
        if client.auth_method == "client_secret_post":
            return {}, {"client_id": client_id, "client_secret": client.secret or ""}
        return {}, {"client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion(client_id)}

    def redeem(
        self, rp_id: str, code: str, pkce: Pkce | None, *, as_client: str | None = None, **fields: str | None
    ) -> requests.Response:
        """POST /token for ``code`` issued to ``rp_id``; ``fields`` override (None removes) parameters."""
        headers, auth_fields = self.credentials(as_client or rp_id)
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.broker.clients[rp_id].redirect_uris[0],
            "code_verifier": pkce.verifier if pkce else None,
            **auth_fields,
            **fields,
        }
        data = {name: value for name, value in form.items() if value is not None}
        return requests.post(f"{self.broker.url}/token", data=data, headers=headers, timeout=10)

    def tokens(self, client_id: str = "rp-basic", **kwargs: Any) -> dict[str, Any]:
        """A code issued and redeemed: the token response."""
        code, pkce = self.code(client_id, **kwargs)
        response = self.redeem(client_id, code, pkce)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def rps(broker: BrokerUnderTest) -> RelyingParties:
    return RelyingParties(broker)
