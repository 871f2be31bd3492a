"""Small in-memory stand-ins for the ports, shared by the unit tests of ``sanscouture.oidc``."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Mapping
from typing import Any

from sanscouture.keys import generate_private_jwk
from sanscouture.models import Client
from sanscouture.models import CodeGrant
from sanscouture.models import PscIdentity
from sanscouture.models import Row
from sanscouture.settings import Settings

ISSUER = "https://broker.example.fr"
NOW = 1_800_000_000.0

# PSC userinfo of the BAS test identity (prosanteconnect/proof-of-concept HelperTest.java), trimmed to
# the fields the tests read.
PSC_USERINFO: dict[str, Any] = {
    "sub": "f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:899700427885",
    "SubjectNameID": "899700427885",
    "preferred_username": "899700427885",
    "given_name": "KIT",
    "family_name": "DOC0042788",
    "email_verified": False,
    "authMode": "CARD",
    "SubjectOrganization": "CABINET M DOC0042788",
    "SubjectOrganizationID": "R102671",
    "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
    "SubjectRefPro": {"codeCivilite": "M", "exercices": [{"codeProfession": "10", "nomDexercice": "DOC0042788"}]},
    "otherIds": [{"identifiant": "899700427885", "origine": "RPPS", "qualite": 1}],
}

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeRowStore:
    """RowStore in a dict, expiry-aware like adapters/tables.py; counts the calls it gets."""

    def __init__(self, name: str = "fake", clock: FakeClock | None = None) -> None:
        self.name = name
        self.clock = clock or FakeClock()
        self.rows: dict[tuple[str, str], Row] = {}
        self.calls: list[str] = []
        self._etags = itertools.count(1)

    def save(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> Row:
        self.calls.append("save")
        return self._put(partition, row, data, expires_in)

    def insert(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> bool:
        self.calls.append("insert")
        if self._live(partition, row) is not None:
            return False
        self._put(partition, row, data, expires_in)
        return True

    def find(self, partition: str, row: str) -> Row | None:
        self.calls.append("find")
        return self._live(partition, row)

    def replace(self, current: Row, data: Mapping[str, Any], expires_in: float | None) -> Row | None:
        self.calls.append("replace")
        found = self.rows.get((current.partition, current.row))
        if found is None or found.etag != current.etag:
            return None
        return self._put(current.partition, current.row, data, expires_in)

    def consume(self, partition: str, row: str) -> Row | None:
        self.calls.append("consume")
        found = self.rows.pop((partition, row), None)
        return found if found is not None and not self._expired(found) else None

    def consume_row(self, current: Row) -> bool:
        self.calls.append("consume_row")
        found = self.rows.get((current.partition, current.row))
        if found is None or found.etag != current.etag:
            return False
        del self.rows[(current.partition, current.row)]
        return True

    def save_many(self, partition: str, rows: Mapping[str, Mapping[str, Any]], expires_in: float | None) -> None:
        self.calls.append("save_many")
        for row, data in rows.items():
            self._put(partition, row, data, expires_in)

    def delete(self, partition: str, row: str) -> bool:
        self.calls.append("delete")
        return self.rows.pop((partition, row), None) is not None

    def partition(self, partition: str) -> list[Row]:
        self.calls.append("partition")
        return [row for (pk, _), row in self.rows.items() if pk == partition and not self._expired(row)]

    def merge_if_unchanged(self, partition: str, row: str, etag: str, changes: Mapping[str, Any]) -> str | None:
        self.calls.append("merge_if_unchanged")
        found = self._live(partition, row)
        if found is None or found.etag != etag:
            return None
        stored = Row(partition, row, {**found.data, **changes}, str(next(self._etags)), found.expires_at)
        self.rows[(partition, row)] = stored
        return stored.etag

    def merge(self, partition: str, row: str, changes: Mapping[str, Any]) -> bool:
        self.calls.append("merge")
        found = self._live(partition, row)
        if found is None:
            return False
        self.rows[(partition, row)] = Row(partition, row, {**found.data, **changes}, str(next(self._etags)),
                                          found.expires_at)
        return True

    def rows_since(self, field: str, since: float) -> list[Row]:
        self.calls.append("rows_since")
        return [row for row in self.rows.values()
                if not self._expired(row) and isinstance(row.data.get(field), int | float) and row.data[field] >= since]

    def rows_where(self, equals: Mapping[str, str]) -> list[Row]:
        self.calls.append("rows_where")
        if not equals:
            return []
        return [row for row in self.rows.values()
                if not self._expired(row) and all(row.data.get(name) == value for name, value in equals.items())]

    def _put(self, partition: str, row: str, data: Mapping[str, Any], expires_in: float | None) -> Row:
        expires_at = self.clock() + expires_in if expires_in is not None else None
        stored = Row(partition, row, dict(data), str(next(self._etags)), expires_at)
        self.rows[(partition, row)] = stored
        return stored

    def _live(self, partition: str, row: str) -> Row | None:
        found = self.rows.get((partition, row))
        return found if found is not None and not self._expired(found) else None

    def _expired(self, row: Row) -> bool:
        return row.expires_at is not None and row.expires_at <= self.clock()


class FakeOutbox:
    """The back-channel logout queue (sanscouture.ports.MessageQueue): the messages sent, in order."""

    name = "backchannel-logout"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, body: str, *, delay: int = 0) -> None:
        self.sent.append(body)


class FakeTables:
    def __init__(self, clock: FakeClock) -> None:
        self.stores = {name: FakeRowStore(name, clock) for name in ("codes", "jti", "bindings", "par")}

    def __getitem__(self, name: str) -> FakeRowStore:
        return self.stores[name]


class FakeKeySource:
    """KeySource over a list the test can change; counts loads."""

    def __init__(self, keys: list[dict[str, Any]] | None = None) -> None:
        self.keys = keys if keys is not None else [generate_private_jwk()]
        self.loads = 0
        self.fail: Exception | None = None

    def load(self) -> list[dict[str, Any]]:
        self.loads += 1
        if self.fail is not None:
            raise self.fail
        return [dict(key) for key in self.keys]


# One RSA key for the worlds of the endpoint tests, made once per run: generating one per test dominated
# their time, and mutation testing (docs/mutation.md) runs them once per mutant. Tests about keys make
# their own.
SHARED_BROKER_KEY = generate_private_jwk()


def shared_key_source() -> FakeKeySource:
    """A key source over :data:`SHARED_BROKER_KEY` (a copy: a test changing its list changes only its own)."""
    return FakeKeySource([dict(SHARED_BROKER_KEY)])


def sha256_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def make_settings(*clients: Client, **overrides: Any) -> Settings:
    """Valid settings for unit tests; keyword arguments replace any field."""
    settings = Settings(
        issuer=ISSUER,
        clients=clients,
        entra_authority="https://login.example.com/organizations",
        entra_client_id="broker",
        entra_allowed_tenants=frozenset({"00000000-0000-0000-0000-000000000001"}),
        psc_discovery_url="https://psc.example.fr/.well-known/wallet-openid-configuration",
        psc_client_id="broker",
        psc_client_secret="psc-secret",
        signing_key_file="/dev/null",
        tables_connection_string="UseDevelopmentStorage=true",
        entra_client_secret="entra-secret",
        entra_required_acrs=("c1",),
    )
    return dataclasses.replace(settings, **overrides)


def make_identity() -> PscIdentity:
    return PscIdentity.from_userinfo(PSC_USERINFO)


def make_grant(
    client_id: str = "rp-basic",
    *,
    redirect_uri: str = "https://rp.example.fr/callback",
    challenge: str = CHALLENGE,
    nonce: str | None = "n-0S6_WzA2Mj",
    scope: tuple[str, ...] = ("openid", "scope_all"),
    amr: tuple[str, ...] = (),
) -> CodeGrant:
    return CodeGrant(
        client_id=client_id,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        scope=scope,
        identity=make_identity(),
        auth_time=int(NOW) - 30,
        sid="sid-1",
        nonce=nonce,
        amr=amr,
    )
