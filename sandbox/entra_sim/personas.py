"""Entra ID users of the simulator: one per authentication means the broker must tell apart.

Tenants and object IDs are fixed fictitious GUIDs so that pairings stored by the broker survive a
simulator restart. Tests pick a persona with ``login_hint=<id>`` (a UPN works too, as with Entra).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

from sandbox.oidc_keys import b64url

HOSPITAL_TENANT_ID = "3c9a7e52-61d4-4b8f-9a0e-5f2b7c1d8e43"
"""The hospital's (ES) tenant, the one the broker allows."""

OTHER_TENANT_ID = "a1f0c6d2-8b37-4e59-b2c4-7d6e9f013a58"
"""Another organisation's tenant, which the broker's allow-list must refuse."""

TENANT_DOMAINS: dict[str, str] = {
    "chu-exemple.fr": HOSPITAL_TENANT_ID,
    "clinique-voisine.fr": OTHER_TENANT_ID,
}
"""Verified domains, so ``/{domain}/...`` resolves to a tenant as it does with Entra."""

Method = Literal["cpx", "whfb", "fido2", "password"]

METHOD_LABELS: dict[str, str] = {
    "cpx": "Carte CPx (certificat sur carte à puce)",
    "whfb": "Windows Hello Entreprise",
    "fido2": "Clé de sécurité FIDO2",
    "password": "Mot de passe seul",
}

# Pairwise subjects are derived with a fixed key so they are stable across restarts, like Entra's.
_PAIRWISE_KEY = b"entra-sim pairwise subject"


@dataclass(frozen=True)
class EntraPersona:
    """A user of an Entra tenant and how they authenticate.

    ``sso``: the Windows session holds a Primary Refresh Token, so once signed in the browser gets
    through without any screen; its ``auth_time`` is the Windows logon, ``windows_logon_age`` seconds
    ago when a test opens that session (switch ``windows-session``). ``compliant``: the method
    satisfies the hospital's authentication strength (phishing-resistant), so Conditional Access
    grants an enforced ``acrs`` auth context; otherwise it steps the sign-in up.
    """

    id: str
    label: str
    tid: str
    oid: str
    method: Method
    sso: bool
    compliant: bool
    preferred_username: str
    name: str
    windows_logon_age: int = 6 * 3600

    @property
    def method_label(self) -> str:
        return METHOD_LABELS[self.method]

    def public(self) -> dict[str, object]:
        """The JSON shape of ``GET /personas``."""
        return dataclasses.asdict(self)

    def pairwise_sub(self, client_id: str) -> str:
        """Entra's ``sub`` is pairwise: the same user has a different ``sub`` for each application."""
        digest = hmac.new(_PAIRWISE_KEY, f"{self.oid}|{client_id}".encode(), hashlib.sha256).digest()
        return b64url(digest)


PERSONAS: tuple[EntraPersona, ...] = (
    EntraPersona(
        id="cpx",
        label="Médecin, carte CPx",
        tid=HOSPITAL_TENANT_ID,
        oid="5b2f8c1e-3a47-4d90-8e6b-1c2d3e4f5a61",
        method="cpx",
        sso=False,
        compliant=True,
        preferred_username="claire.martin@chu-exemple.fr",
        name="Dr Claire Martin",
    ),
    EntraPersona(
        id="whfb-sso",
        label="Infirmier, Windows Hello Entreprise (session Windows, SSO)",
        tid=HOSPITAL_TENANT_ID,
        oid="9d4e6f70-2b18-4c3a-a5d9-7e8f90a1b2c3",
        method="whfb",
        sso=True,
        compliant=True,
        preferred_username="thomas.bernard@chu-exemple.fr",
        name="Thomas Bernard",
    ),
    EntraPersona(
        id="fido2",
        label="Pharmacienne, clé FIDO2",
        tid=HOSPITAL_TENANT_ID,
        oid="c7a1b2d3-4e5f-4a6b-9c8d-0e1f2a3b4c5d",
        method="fido2",
        sso=False,
        compliant=True,
        preferred_username="sophie.lefevre@chu-exemple.fr",
        name="Dr Sophie Lefèvre",
    ),
    EntraPersona(
        id="password",
        label="Secrétaire médical, mot de passe seul (non conforme)",
        tid=HOSPITAL_TENANT_ID,
        oid="e2f3a4b5-c6d7-48e9-8f0a-1b2c3d4e5f60",
        method="password",
        sso=False,
        compliant=False,
        preferred_username="julien.petit@chu-exemple.fr",
        name="Julien Petit",
    ),
    EntraPersona(
        # A Windows logon with a password: the PRT carries no MFA claim, so SSO works but an
        # enforced authentication strength steps it up (and prompt=none gets interaction_required).
        id="password-sso",
        label="Agent administratif, session Windows par mot de passe (non conforme)",
        tid=HOSPITAL_TENANT_ID,
        oid="3e4f5a6b-7c8d-49e0-a1b2-c3d4e5f60718",
        method="password",
        sso=True,
        compliant=False,
        preferred_username="nadia.kaci@chu-exemple.fr",
        name="Nadia Kaci",
    ),
    EntraPersona(
        id="other-tenant",
        label="Médecin d'une autre organisation (tenant non autorisé)",
        tid=OTHER_TENANT_ID,
        oid="0f1e2d3c-4b5a-4697-8877-a6b5c4d3e2f1",
        method="cpx",
        sso=False,
        compliant=True,
        preferred_username="amelie.durand@clinique-voisine.fr",
        name="Dr Amélie Durand",
    ),
    EntraPersona(
        id="cpx-urgences",
        label="Médecin urgentiste, carte CPx (poste partagé des urgences)",
        tid=HOSPITAL_TENANT_ID,
        oid="6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d",
        method="cpx",
        sso=False,
        compliant=True,
        preferred_username="hugo.roux@chu-exemple.fr",
        name="Dr Hugo Roux",
    ),
    EntraPersona(
        id="cpx-interne",
        label="Interne, carte CPx (pas encore appairée)",
        tid=HOSPITAL_TENANT_ID,
        oid="1d2c3b4a-5f6e-4d7c-9b8a-0f1e2d3c4b5a",
        method="cpx",
        sso=False,
        compliant=True,
        preferred_username="lea.garnier@chu-exemple.fr",
        name="Dr Léa Garnier",
    ),
)


def find_persona(hint: str | None, personas: tuple[EntraPersona, ...] = PERSONAS) -> EntraPersona | None:
    """The persona named by a ``login_hint``: its id or its UPN (case-insensitive, as Entra)."""
    if not hint:
        return None
    wanted = hint.strip().lower()
    return next((p for p in personas if wanted in (p.id, p.preferred_username.lower())), None)
