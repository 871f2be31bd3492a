"""Pro Santé Connect identities of the simulator, with the userinfo shapes PSC has been seen to return.

Claim names, nesting and value formats follow public PSC userinfo samples: ANS's proof of concept
(GitHub prosanteconnect/proof-of-concept: the claims of api-proxy/.../prosanteconnect/UserInfos.java, the
test data of dam/psc-dam-api/dam-api/src/test/java/fr/ans/psc/util/HelperTest.java) and the other
samples each layout names (:attr:`UserinfoLayout.source`); docs/design.md lists the personas. The
people, identifiers and the hospital are fictitious. idNat = ``8`` + RPPS number (11 digits), or an
EDIT test identity (``ANS`` + a timestamp). Real PSC userinfo has been observed in more than one
layout (:data:`LAYOUTS`); each persona answers in one of them, so that the broker is tested with all.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field
from typing import Any

SUB_PREFIX = "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:"
"""Keycloak federated-user prefix seen in every BAS ``sub``."""

CARD = "CARD"
"""``authMode`` observed for a CPS card login."""

MOBILE = "MOBILE"
"""``authMode`` for e-CPS: in none of the public samples above (none is an e-CPS login); a guess."""

ROLE_OID = "1.2.250.1.213.1.1.5.5"
SECTEUR_OID = "1.2.250.1.71.4.2.4"


@dataclass(frozen=True)
class Activity:
    """One ``SubjectRefPro.exercices[].activities[]`` item; PSC sends every key, empty when unknown."""

    codeModeExercice: str = ""
    codeSecteurDactivite: str = ""
    codeSectionPharmacien: str = ""
    codeRole: str = ""
    codeGenreActivite: str = ""
    numeroSiretSite: str = ""
    numeroSirenSite: str = ""
    numeroFinessSite: str = ""
    numeroFinessetablissementJuridique: str = ""
    identifiantTechniqueDeLaStructure: str = ""
    raisonSocialeSite: str = ""
    enseigneCommercialeSite: str = ""
    complementDestinataire: str = ""
    complementPointGeographique: str = ""
    numeroVoie: str = ""
    indiceRepetitionVoie: str = ""
    codeTypeDeVoie: str = ""
    libelleVoie: str = ""
    mentionDistribution: str = ""
    bureauCedex: str = ""
    codePostal: str = ""
    codeCommune: str = ""
    codePays: str = ""
    telephone: str = ""
    telephone2: str = ""
    telecopie: str = ""
    adresseEMail: str = ""
    codeDepartement: str = ""
    ancienIdentifiantDeLaStructure: str = ""
    autoriteDenregistrement: str = ""


@dataclass(frozen=True)
class Exercice:
    """One ``SubjectRefPro.exercices[]`` item (a profession exercised)."""

    codeProfession: str
    codeCategorieProfessionnelle: str
    codeCiviliteDexercice: str
    nomDexercice: str
    prenomDexercice: str
    codeTypeSavoirFaire: str
    codeSavoirFaire: str
    activities: tuple[Activity, ...]


@dataclass(frozen=True)
class UserinfoLayout:
    """Where PSC put the claims that moved between observed userinfo responses."""

    name: str
    source: str
    civility_in_refpro: bool  # codeCivilite inside SubjectRefPro (else top level, with codeGenreActivite)
    auth_mode: bool  # authMode present
    email_verified: bool  # email_verified present (false)


BAS_2022 = UserinfoLayout(
    "bas-2022",
    "prosanteconnect/proof-of-concept dam/.../HelperTest.java USERINFO (BAS, CPS card)",
    civility_in_refpro=True, auth_mode=True, email_verified=False,
)
EDIT_2021 = UserinfoLayout(
    "edit-2021",
    "prosanteconnect/proof-of-concept dam/.../HelperTest.java, the 5-activity sample (EDIT identity, 2021)",
    civility_in_refpro=True, auth_mode=False, email_verified=True,
)
EDIT_2023 = UserinfoLayout(
    "edit-2023",
    "ad2ien/prosante-connect-synapse-module tests/test_mapping.py (EDIT identity, November 2023)",
    civility_in_refpro=False, auth_mode=False, email_verified=False,
)
LAYOUTS: tuple[UserinfoLayout, ...] = (BAS_2022, EDIT_2021, EDIT_2023)


@dataclass(frozen=True)
class PscPersona:
    """A health professional as PSC knows them; ``userinfo()`` gives the PSC claims in ``layout``.

    ``auth_mode`` is the means the wallet offers them with (card or e-CPS); whether userinfo says it
    (``authMode``) depends on the layout.
    """

    id: str
    label: str
    id_nat: str
    auth_mode: str
    given_name: str
    family_name: str
    code_civilite: str
    exercices: tuple[Exercice, ...] = field(repr=False)
    layout: UserinfoLayout = BAS_2022
    origine: str = "RPPS"

    @property
    def sub(self) -> str:
        return SUB_PREFIX + self.id_nat

    def public(self) -> dict[str, str]:
        """The JSON shape of ``GET /personas``."""
        return {
            "id": self.id, "label": self.label, "SubjectNameID": self.id_nat, "authMode": self.auth_mode,
            "sub": self.sub, "given_name": self.given_name, "family_name": self.family_name,
            "layout": self.layout.name,
        }

    def userinfo(self) -> dict[str, Any]:
        """Userinfo with scope ``scope_all``: the claim names and shapes of the samples of its layout."""
        first = self.exercices[0]
        site = first.activities[0]
        exercices = [  # lists, as the JSON PSC sends
            {**dataclasses.asdict(e), "activities": [dataclasses.asdict(a) for a in e.activities]}
            for e in self.exercices
        ]
        info: dict[str, Any] = {
            "sub": self.sub,
            "preferred_username": self.id_nat,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "SubjectNameID": self.id_nat,
            "SubjectOrganization": site.raisonSocialeSite,
            "SubjectOrganizationID": site.identifiantTechniqueDeLaStructure,
            "SubjectRole": [f"{e.codeProfession}^{ROLE_OID}" for e in self.exercices],
            "Secteur_Activite": f"{site.codeSecteurDactivite}^{SECTEUR_OID}",
            "PSI_Locale": "1.2.250.1.213.1.3.1.1",
            # The samples show this value for a CPS card; the e-CPS value is not documented either.
            "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
            "Mode_Acces_Raison": "",
            "Acces_Regulation_Medicale": "FAUX",
            "UITVersion": "1.0",
            "otherIds": [{"identifiant": self.id_nat, "origine": self.origine, "qualite": 1}],
        }
        if self.layout.civility_in_refpro:
            info["SubjectRefPro"] = {"codeCivilite": self.code_civilite, "exercices": exercices}
        else:
            info["SubjectRefPro"] = {"exercices": exercices}
            info["codeCivilite"] = self.code_civilite
            info["codeGenreActivite"] = site.codeGenreActivite
        if self.layout.email_verified:
            info["email_verified"] = False
        if self.layout.auth_mode:
            info["authMode"] = self.auth_mode
        return info


def _chu(**overrides: str) -> Activity:
    """A salaried activity at the fictitious teaching hospital the sandbox is about."""
    values = {
        "codeModeExercice": "S",
        "codeSecteurDactivite": "SA01",
        "numeroFinessSite": "990000011",
        "numeroFinessetablissementJuridique": "990000003",
        "identifiantTechniqueDeLaStructure": "F990000011",
        "raisonSocialeSite": "CHU EXEMPLE",
        "numeroVoie": "1",
        "codeTypeDeVoie": "R",
        "libelleVoie": "DE L'HOPITAL",
        "bureauCedex": "75013 PARIS",
        "codePostal": "75013",
        "codeCommune": "75113",
        "codePays": "99000",
        "codeDepartement": "75",
        "ancienIdentifiantDeLaStructure": "1990000011",
        "autoriteDenregistrement": "CNOM/CNOM/ARS",
        **overrides,
    }
    return Activity(**values)


PERSONAS: tuple[PscPersona, ...] = (
    PscPersona(
        id="medecin-cps",
        label="Médecin, carte CPS",
        id_nat="810100000001",
        auth_mode=CARD,
        given_name="CLAIRE",
        family_name="MARTIN",
        code_civilite="MME",
        exercices=(Exercice("10", "C", "DR", "MARTIN", "CLAIRE", "S", "SM26", (_chu(),)),),
    ),
    PscPersona(
        id="infirmier-ecps",
        label="Infirmier, e-CPS",
        id_nat="810100000002",
        auth_mode=MOBILE,
        given_name="THOMAS",
        family_name="BERNARD",
        code_civilite="M",
        exercices=(
            Exercice("60", "C", "", "BERNARD", "THOMAS", "", "", (_chu(autoriteDenregistrement="ONI/ONI/ARS"),)),
        ),
    ),
    PscPersona(
        id="pharmacien-cps",
        label="Pharmacienne hospitalière, carte CPS",
        id_nat="810100000003",
        auth_mode=CARD,
        given_name="SOPHIE",
        family_name="LEFEVRE",
        code_civilite="MME",
        exercices=(
            Exercice(
                "21", "C", "DR", "LEFEVRE", "SOPHIE", "", "",
                (_chu(codeSectionPharmacien="H", autoriteDenregistrement="CNOP/CNOP/ARS"),),
            ),
        ),
    ),
    PscPersona(
        # The shared-workstation case: a colleague signs in on the secretary's session.
        id="medecin2-cps",
        label="Second médecin (poste partagé), carte CPS",
        id_nat="810100000004",
        auth_mode=CARD,
        given_name="NICOLAS",
        family_name="MOREAU",
        code_civilite="M",
        exercices=(
            Exercice(
                "10", "C", "DR", "MOREAU", "NICOLAS", "S", "SM26",
                (
                    _chu(),
                    _chu(
                        codeModeExercice="L", codeSecteurDactivite="SA07", numeroFinessSite="",
                        numeroFinessetablissementJuridique="", identifiantTechniqueDeLaStructure="R104410",
                        raisonSocialeSite="CABINET DU DR MOREAU", libelleVoie="DES LILAS", numeroVoie="12",
                        bureauCedex="75020 PARIS", codePostal="75020", codeCommune="75120",
                        ancienIdentifiantDeLaStructure="481010000000406", autoriteDenregistrement="CNOM/CNOM/CNOM",
                    ),
                ),
            ),
        ),
    ),
    PscPersona(
        # Userinfo as an EDIT identity of 2021: no authMode, email_verified false.
        id="kine-2021",
        label="Masseuse-kinésithérapeute, carte CPS (userinfo sans authMode, format 2021)",
        id_nat="810100000005",
        auth_mode=CARD,
        given_name="CAMILLE",
        family_name="ROBERT",
        code_civilite="MME",
        exercices=(
            Exercice(
                "70", "C", "MME", "ROBERT", "CAMILLE", "", "",
                (_chu(codeGenreActivite="GENR01", autoriteDenregistrement="CNOMK/CNOMK/ARS"),),
            ),
        ),
        layout=EDIT_2021,
    ),
    PscPersona(
        # Userinfo as an EDIT identity of late 2023: codeCivilite and codeGenreActivite at the top
        # level, no authMode, no email_verified, names in mixed case.
        id="infirmiere-2023",
        label="Infirmière, e-CPS (userinfo avec codeCivilite hors SubjectRefPro, format 2023)",
        id_nat="ANS20240315093012",
        auth_mode=MOBILE,
        given_name="Manon",
        family_name="Girard",
        code_civilite="MME",
        exercices=(
            Exercice(
                "60", "C", "", "Girard", "Manon", "", "",
                (_chu(codeGenreActivite="GENR01", autoriteDenregistrement="ONI/ONI/ARS"),),
            ),
        ),
        layout=EDIT_2023,
        origine="EDIT",
    ),
)


def find_persona(hint: str | None, personas: tuple[PscPersona, ...] = PERSONAS) -> PscPersona | None:
    """The persona named by a ``login_hint``: its id or its national identifier."""
    if not hint:
        return None
    return next((p for p in personas if hint.strip() in (p.id, p.id_nat)), None)
