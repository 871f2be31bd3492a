"""The administrator's pairing tool against Azurite: list (masked) and audited removal."""

from __future__ import annotations

import io
import uuid

from sandbox import azurite
from sanscouture.adapters.tables import Tables
from sanscouture.bindings import BindingStore
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from tools.pairings import main


def test_list_masks_national_ids_and_remove_is_audited(azurite_server: azurite.Azurite) -> None:
    env = {"BROKER_TABLES_CONNECTION_STRING": azurite_server.connection_string}
    tables = Tables.from_connection_string(azurite_server.connection_string)
    tables.create_all()
    tenant, oid = str(uuid.uuid4()), str(uuid.uuid4())
    identity = PscIdentity(sub="f:x:810100000009", subject_name_id="810100000009", given_name="Anne",
                           family_name="DUPONT", auth_mode="CARD")
    BindingStore(tables["bindings"]).create(EntraAccount(tid=tenant, oid=oid, auth_time=0), identity)

    listing = io.StringIO()
    assert main(["list", "--tenant", tenant], env, listing) == 0
    assert "********0009" in listing.getvalue() and "810100000009" not in listing.getvalue()
    assert "1 pairing(s)" in listing.getvalue()

    family = uuid.uuid4().hex  # a refresh token family of the account, as /token stores it
    tables["codes"].save(family, "grant", {"state": "redeemed", "tid": tenant, "oid": oid}, expires_in=1800)

    removal = io.StringIO()
    assert main(["remove", "--tenant", tenant, "--oid", oid, "--reason", "départ"], env, removal) == 0
    assert BindingStore(tables["bindings"]).find(tenant, oid) is None
    assert tables["codes"].find(family, "grant") is None  # the account's tokens die with the pairing
    assert "1 grant(s) of the account revoked" in removal.getvalue() and "810100000009" not in removal.getvalue()
    audit = [row.data for row in tables["audit"].all_rows() if row.data.get("oid") == oid]
    assert [(a["event"], a["reason"], a["by"]) for a in audit] == [("pairing_removed", "départ", "administrator")]

    assert main(["remove", "--tenant", tenant, "--oid", oid], env, io.StringIO()) == 1
