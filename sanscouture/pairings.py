"""Removing a pairing: the one way to undo an "appairage", for the professional and the administrator.

Used by "Mes appairages" (``/compte``, :mod:`sanscouture.account`) and by the administrator's
``python -m tools.pairings remove`` (docs/design.md "Mes appairages"). A removal must leave nothing of
the pairing usable, whoever asked for it:

* the pairing row is deleted only if it is still the version the caller read (``If-Match`` its ETag):
  a pairing made again meanwhile (another browser, the same person re-pairing) is never deleted by a
  page that showed the old one;
* the broker sessions of the account end with the row: every use of a session reads it and refuses a
  missing pairing, and a session opened through another pairing than the one it meets (a pairing made
  again, even within the same second, with the same identity) is refused too (:meth:`Binding.admits_session`);
* the account's grants are deleted from the ``codes`` table: pending codes, and the token families
  (refresh tokens and the access tokens' records, so ``/token`` answers ``invalid_grant`` and
  ``/userinfo`` ``invalid_token``), even if the same identity is paired again later;
* the relying parties the account's live sessions signed in to, with a back-channel logout URI, are
  told (a notice each on the ``backchannel-logout`` queue, OIDC Back-Channel Logout 1.0);
* the removal is audited (``pairing_removed``, ``by`` ``professional`` or ``administrator``, the
  national identifier masked).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from sanscouture.audit import AuditLog
from sanscouture.errors import StorageUnavailableError
from sanscouture.models import Binding
from sanscouture.models import Row
from sanscouture.oidc.backchannel import LogoutNotice
from sanscouture.ports import Clock
from sanscouture.ports import MessageQueue
from sanscouture.ports import RowStore
from sanscouture.ports import TableSet

log = logging.getLogger("sanscouture.pairings")

RemovedBy = Literal["professional", "administrator"]


@dataclass(frozen=True)
class PairingRemoved:
    """What a removal did: the account, its identity (masked) and how many grants died with it."""

    tid: str
    oid: str
    national_id: str  # masked: last four characters only
    grants_revoked: int
    backchannel_logouts: int = 0  # logout notices queued for the relying parties of its sessions


def remove_pairing(
    tables: TableSet,
    binding: Binding,
    *,
    by: RemovedBy,
    reason: str | None = None,
    clock: Clock = time.time,
    outbox: MessageQueue | None = None,
) -> PairingRemoved | None:
    """Remove ``binding`` as the caller read it; None when it changed or vanished since (its ETag).

    Order: the row first (one conditional delete: from then on no session or refresh token of the
    account passes the pairing check), then the audit (a removal is never unrecorded once done), then
    the grants (so that a later pairing of the same identity revives none of them), last the
    back-channel logout notices on ``outbox`` (the ``backchannel-logout`` queue) for the relying
    parties the account's sessions signed in to.
    """
    if binding.etag is None:
        raise ValueError("a pairing is removed as it was read: its ETag is required")
    if not tables["bindings"].consume_row(Row(binding.tid, binding.oid, {}, binding.etag)):
        return None
    national_id = binding.identity.masked_national_id
    AuditLog(tables["audit"], clock).record(
        "pairing_removed", tid=binding.tid, oid=binding.oid, national_id=national_id, by=by, reason=reason or "",
    )
    revoked = revoke_account_grants(tables["codes"], binding.tid, binding.oid)
    announced = announce_pairing_removed(outbox, binding, clock())
    log.info("pairing removed", extra={"tid": binding.tid, "oid": binding.oid, "national_id": national_id,
                                       "by": by, "grants_revoked": revoked, "backchannel_logouts": announced})
    return PairingRemoved(binding.tid, binding.oid, national_id, revoked, announced)


def announce_pairing_removed(outbox: MessageQueue | None, binding: Binding, now: float) -> int:
    """Tell the relying parties that the account's live sessions signed in to (recorded in the
    pairing's row, :meth:`BindingStore.record_rp_session`) that those sessions ended (OIDC
    Back-Channel Logout 1.0): one queued notice per (client, session). Sessions already ended
    (logout, a newer sign-in) were announced then and are skipped. Only clients that had a
    back-channel URI when they were recorded are in the row; the delivery checks the registration
    again, so the caller needs no client registry (``tools.pairings`` has none)."""
    if outbox is None:
        if binding.rp_sessions:
            log.error("back-channel logout not announced: no queue given", extra={"tid": binding.tid})
        return 0
    sent = 0
    for sid, client_ids in binding.rp_sessions.items():
        if binding.session_revoked(sid, now):
            continue
        for client_id in dict.fromkeys(client_ids):
            try:
                outbox.send(LogoutNotice(client_id, binding.identity.sub, sid).to_message())
                sent += 1
            except StorageUnavailableError as error:
                log.error("back-channel logout not announced: queue unavailable",
                          extra={"client_id": client_id, "error_detail": error.detail})
    return sent


def revoke_account_grants(codes: RowStore, tid: str, oid: str) -> int:
    """Delete every grant of the Entra account ``(tid, oid)``: codes not yet redeemed and token
    families (refresh tokens, access tokens' records). A filtered scan of the ``codes`` table, whose
    rows all expire within hours: acceptable for a removal, never done on a sign-in."""
    revoked = 0
    for row in codes.rows_where({"tid": tid, "oid": oid}):
        revoked += codes.delete(row.partition, row.row)
    return revoked
