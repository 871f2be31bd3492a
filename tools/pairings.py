"""List and revoke pairings ("appairages") — the ES administrator's tool.

    python -m tools.pairings list [--tenant TID]
    python -m tools.pairings remove --tenant TID --oid OID [--reason TEXT]

Storage is reached as the broker reaches it: ``BROKER_TABLES_ENDPOINT`` with the administrator's Azure
identity (``az login``; the account needs *Storage Table Data Contributor* on the storage account), or
``BROKER_TABLES_CONNECTION_STRING`` in the sandbox. A removal is the professional's own « Supprimer
l'appairage » (:func:`sanscouture.pairings.remove_pairing`): recorded in the audit table
(``pairing_removed``, ``by=administrator``), the account's refresh and access tokens revoked, its
broker sessions refused at their next use, the relying parties of those sessions told through the
back-channel logout queue (``BROKER_QUEUES`` or ``BROKER_QUEUES__queueServiceUri``); the next sign-in
of that Entra account asks for a new pairing with the CPS card or e-CPS. National identifiers are
printed masked, as everywhere else. With
``APPLICATIONINSIGHTS_CONNECTION_STRING`` (and ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD``)
the removal is also an Application Insights trace, which the « pairing removed by an administrator » alert
watches (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TextIO

from sanscouture.adapters import telemetry
from sanscouture.adapters.queues import Queues
from sanscouture.adapters.queues import StorageQueue
from sanscouture.adapters.tables import Tables
from sanscouture.backchannel import QUEUE
from sanscouture.bindings import BindingStore
from sanscouture.models import mask_national_id
from sanscouture.pairings import remove_pairing


def tables_from_environment(env: Mapping[str, str]) -> Tables:
    connection_string = env.get("BROKER_TABLES_CONNECTION_STRING", "").strip()
    if connection_string:
        return Tables.from_connection_string(connection_string)
    endpoint = env.get("BROKER_TABLES_ENDPOINT", "").strip()
    if not endpoint:
        raise SystemExit("Set BROKER_TABLES_ENDPOINT (https://<account>.table.core.windows.net) or "
                         "BROKER_TABLES_CONNECTION_STRING.")
    from azure.identity import DefaultAzureCredential

    return Tables.from_endpoint(endpoint, DefaultAzureCredential())


def outbox_from_environment(env: Mapping[str, str]) -> StorageQueue | None:
    """The back-channel logout queue the broker's sessions are announced on: ``BROKER_QUEUES`` (a
    connection string, the sandbox) or ``BROKER_QUEUES__queueServiceUri`` with the administrator's
    identity (*Storage Queue Data Message Sender* at least). None when neither is set: no relying
    party registers a back-channel logout URI."""
    connection_string = env.get("BROKER_QUEUES", "").strip()
    if connection_string:
        return Queues.from_connection_string(connection_string)[QUEUE]
    endpoint = env.get("BROKER_QUEUES__queueServiceUri", "").strip()
    if not endpoint:
        return None
    from azure.identity import DefaultAzureCredential

    return Queues.from_endpoint(endpoint, DefaultAzureCredential())[QUEUE]


def list_pairings(tables: Tables, tenant: str | None, out: TextIO) -> int:
    store = tables["bindings"]
    rows = store.partition(tenant) if tenant else store.all_rows()
    header = f"{'tenant':36}  {'object id':36}  {'national id':12}  {'auth':6}  {'paired at (UTC)':16}  last used (UTC)"
    out.write(header + "\n")
    for row in rows:
        data = row.data
        masked = mask_national_id(str(data.get("subject_name_id", "")))
        out.write(
            f"{row.partition:36}  {row.row:36}  {masked:12}  {data.get('auth_mode', '')!s:6}  "
            f"{_when(data.get('paired_at'))}  {_when(data.get('last_used_at'))}\n"
        )
    out.write(f"{len(rows)} pairing(s)\n")
    return 0


def remove(tables: Tables, tenant: str, oid: str, reason: str, out: TextIO,
           outbox: StorageQueue | None = None) -> int:
    """The pairing as it is now, removed by :func:`sanscouture.pairings.remove_pairing` (audited,
    sessions ended, refresh tokens revoked), only if nobody changed it since this read."""
    existing = BindingStore(tables["bindings"]).find(tenant, oid)
    if existing is None:
        out.write(f"No pairing for tenant {tenant}, object id {oid}.\n")
        return 1
    removed = remove_pairing(tables, existing, by="administrator", reason=reason, outbox=outbox)
    if removed is None:
        out.write("The pairing changed or was removed while this command ran; nothing was removed. "
                  "List it again, then retry.\n")
        return 1
    out.write(f"Pairing removed (national id {removed.national_id}); recorded in the audit table; "
              f"{removed.grants_revoked} grant(s) of the account revoked; "
              f"{removed.backchannel_logouts} back-channel logout(s) queued.\n")
    return 0


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.pairings", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="list pairings, national identifiers masked")
    listing.add_argument("--tenant", help="only this Entra tenant id")
    removal = commands.add_parser("remove", help="revoke one pairing (audited)")
    removal.add_argument("--tenant", required=True, help="Entra tenant id (tid)")
    removal.add_argument("--oid", required=True, help="Entra object id of the account (oid)")
    removal.add_argument("--reason", default="revoked by an administrator", help="kept in the audit table")
    args = parser.parse_args(argv)
    tables = tables_from_environment(env)
    if args.command == "list":
        return list_pairings(tables, args.tenant, out)
    with telemetry.exported_from_a_tool(env):  # the removal's audit record reaches Application Insights too
        return remove(tables, args.tenant.lower(), args.oid.lower(), args.reason, out,
                      outbox=outbox_from_environment(env))


def _when(epoch: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(epoch))) if isinstance(epoch, int) else "-".ljust(16)


if __name__ == "__main__":
    raise SystemExit(main())
