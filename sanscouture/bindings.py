"""Pairings ("appairages"): an Entra account ``(tid, oid)`` linked to a PSC identity.

A pairing is created only from the two authentications of one journey, with an insert that fails if
one appeared meanwhile: nothing is ever overwritten, and nothing is ever matched on a name or e-mail.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from sanscouture.audit import AuditEntry
from sanscouture.audit import AuditLog
from sanscouture.models import Binding
from sanscouture.models import EntraAccount
from sanscouture.models import PscIdentity
from sanscouture.models import Row
from sanscouture.ports import Clock
from sanscouture.ports import RowStore


class BindingStore:
    """The ``bindings`` table: PartitionKey = tenant id, RowKey = object id."""

    def __init__(self, store: RowStore, clock: Clock = time.time) -> None:
        self._store = store
        self._clock = clock

    def find(self, tid: str, oid: str) -> Binding | None:
        row = self._store.find(tid, oid)
        return _binding(row, self._clock()) if row else None

    def create(
        self, account: EntraAccount, identity: PscIdentity, audit: AuditEntry | None = None
    ) -> tuple[Binding, bool]:
        """Insert the pairing; when one already exists, return it untouched and ``False``.

        ``audit`` is the pairing's audit entry, written after the pairing and kept in its row: if
        that second write fails, :func:`restore_missing_audit` writes it from the row (the sweep).
        """
        now = int(self._clock())
        pairing_id = secrets.token_urlsafe(16)
        data = {
            **_identity_fields(identity),
            "entra_username": account.preferred_username,
            "pairing_id": pairing_id,
            "paired_at": now,
            "last_used_at": now,
            "verified_at": now,
            **({"audit": audit.to_dict()} if audit is not None else {}),
        }
        if self._store.insert(account.tid, account.oid, data, expires_in=None):
            return Binding(account.tid, account.oid, identity, now, now, verified_at=now, pairing_id=pairing_id), True
        existing = self.find(account.tid, account.oid)
        if existing is None:  # removed between our insert and read: report it as not created
            raise LookupError("pairing vanished while being created")
        return existing, False

    def use_if_unchanged(self, tid: str, oid: str, etag: str) -> bool:
        """Record a use of the pairing, only if it is still the version read at ``etag`` (one round
        trip): False when it was removed or changed meanwhile (the caller then reads it again)."""
        return self._store.merge_if_unchanged(tid, oid, etag, {"last_used_at": int(self._clock())}) is not None

    def renew(self, tid: str, oid: str, etag: str | None, identity: PscIdentity) -> bool:
        """Record a periodic re-verification by ``identity`` (the same PSC ``sub`` as the pairing):
        ``verified_at`` and ``last_used_at`` now, the identity as PSC has just given it (its claims
        may have changed in a year). A write conditional on ``etag``, the version the re-verification
        page was read from; a concurrent change of the row (a session ended in it) is read again, but
        a row that no longer names this identity is never written: False then (removed or replaced).
        """
        now = int(self._clock())
        changes = {**_identity_fields(identity), "verified_at": now, "last_used_at": now}
        for _ in range(3):
            if etag is not None and self._store.merge_if_unchanged(tid, oid, etag, changes) is not None:
                return True
            current = self.find(tid, oid)
            if current is None or current.identity.sub != identity.sub:
                return False
            etag = current.etag
        return False

    def revoke_session(self, tid: str, oid: str, public_sid: str, until: int) -> tuple[str, ...]:
        """List a session of this account as ended until it would have expired anyway (its 4 hours),
        dropping the entries past theirs. Nothing to do when the pairing is gone (its sessions with it).

        Returns the relying parties recorded for the session (:meth:`record_rp_session`), whose entry
        goes with this write: they are told now (back-channel logout), never again by a removal."""
        for _ in range(3):  # a concurrent change of the row: read it again
            row = self._store.find(tid, oid)
            if row is None:
                return ()
            now = self._clock()
            revoked = {key: value for key, value in dict(row.data.get("revoked_sessions") or {}).items()
                       if isinstance(value, int) and value > now}
            revoked[public_sid] = until
            recorded = _rp_sessions(row.data, now)
            data = {key: value for key, value in row.data.items()
                    if not key.startswith(RP_SESSION_PREFIX) or key[len(RP_SESSION_PREFIX):] in recorded}
            data.pop(RP_SESSION_PREFIX + public_sid, None)
            if self._store.replace(row, {**data, "revoked_sessions": revoked}, expires_in=None) is not None:
                return recorded.get(public_sid, ())
        return ()

    def record_rp_session(self, tid: str, oid: str, public_sid: str, client_ids: tuple[str, ...], until: int) -> bool:
        """Record in the pairing's row that the session ``public_sid`` signed in to these relying
        parties (those with a back-channel logout URI), so that a removal of the pairing, by whoever
        and from wherever, can tell them. One merge of one property of its own (the session's whole
        list, which its cookie carries), whatever the row's version; False when the pairing is gone."""
        change = {RP_SESSION_PREFIX + public_sid: {"until": until, "clients": list(client_ids)}}
        return self._store.merge(tid, oid, change)

    def remove(self, tid: str, oid: str) -> bool:
        return self._store.delete(tid, oid)

    def audits_since(self, since: float) -> list[AuditEntry]:
        """The audit entries of the pairings made since ``since`` (a scan: for the timer only)."""
        rows = self._store.rows_since("paired_at", since)
        return [AuditEntry.from_dict(row.data["audit"]) for row in rows if isinstance(row.data.get("audit"), dict)]


def restore_missing_audit(bindings: BindingStore, audit: AuditLog, since: float) -> int:
    """Write the audit row of every pairing made since ``since`` whose request failed between its two
    writes (pairing inserted, audit not): under any single failure a pairing ends with its audit
    row. Idempotent; returns how many rows were restored (marked ``reconstructed``)."""
    restored = 0
    for entry in bindings.audits_since(since):
        if not audit.exists(entry):
            audit.write(entry, reconstructed=True)
            restored += 1
    return restored


def _identity_fields(identity: PscIdentity) -> dict[str, object]:
    """The PSC identity as a pairing's row keeps it (the whole identity, and its key facts readable
    in Storage Explorer)."""
    return {
        "psc_sub": identity.sub,
        "subject_name_id": identity.subject_name_id,
        "given_name": identity.given_name,
        "family_name": identity.family_name,
        "auth_mode": identity.auth_mode,
        "identity": identity.to_dict(),
    }


RP_SESSION_PREFIX = "bcl_"


def _rp_sessions(data: Mapping[str, Any], now: float) -> dict[str, tuple[str, ...]]:
    """The recorded relying parties of the row's sessions still alive (public ``sid`` -> client ids)."""
    sessions: dict[str, tuple[str, ...]] = {}
    for key, value in data.items():
        if key.startswith(RP_SESSION_PREFIX) and isinstance(value, dict):
            until, clients = value.get("until"), value.get("clients")
            if isinstance(until, int) and until > now and isinstance(clients, list):
                sessions[key[len(RP_SESSION_PREFIX):]] = tuple(str(client) for client in clients)
    return sessions


def _binding(row: Row, now: float) -> Binding:
    revoked = row.data.get("revoked_sessions")
    return Binding(
        tid=row.partition,
        oid=row.row,
        identity=PscIdentity.from_dict(row.data["identity"]),
        paired_at=int(row.data.get("paired_at", 0)),
        last_used_at=int(row.data.get("last_used_at", 0)),
        verified_at=int(row.data.get("verified_at", 0)),
        pairing_id=str(row.data.get("pairing_id") or ""),
        etag=row.etag,
        revoked_sessions={str(k): int(v) for k, v in revoked.items()} if isinstance(revoked, dict) else {},
        rp_sessions=_rp_sessions(row.data, now),
    )
