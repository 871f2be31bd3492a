"""Back-channel logout, delivered reliably through an Azure Storage queue (OIDC Back-Channel Logout 1.0).

A request that ends a session (``/logout``, a newer sign-in, a pairing's removal) only *announces* it:
one message per (relying party, session) on the ``backchannel-logout`` queue, so that no person waits
on a relying party. The queue-triggered function (``functions/backchannel.py``) *delivers* each: it
signs a logout token and POSTs it to the client's ``backchannel_logout_uri`` (§2.5); a 2xx answer
is done (audited ``backchannel_logout_delivered``); anything else is retried as a new message made
invisible for ``BROKER_BACKCHANNEL_RETRY_SECONDS`` doubled at each attempt, and after
``BROKER_BACKCHANNEL_MAX_ATTEMPTS`` attempts the message goes to ``backchannel-logout-poison``
(audited ``backchannel_logout_dead_lettered``, which an alert watches).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import Literal
from typing import Protocol

from sanscouture.audit import AuditLog
from sanscouture.errors import StorageUnavailableError
from sanscouture.models import Client
from sanscouture.oidc.backchannel import LOGOUT_TOKEN_TYPE
from sanscouture.oidc.backchannel import LogoutNotice
from sanscouture.oidc.backchannel import logout_token_claims
from sanscouture.oidc.backchannel import notices_for
from sanscouture.ports import Clock
from sanscouture.ports import MessageQueue
from sanscouture.settings import Settings

log = logging.getLogger("sanscouture.backchannel")

QUEUE = "backchannel-logout"
# The name the Functions host gives the poison queue of QUEUE (``<queue>-poison``): the broker's own
# dead letters and the host's (a delivery that crashed maxDequeueCount times) end in the same place.
POISON_QUEUE = f"{QUEUE}-poison"

Outcome = Literal["delivered", "retried", "dead_lettered", "dropped"]
Signer = Callable[[Mapping[str, Any], str], str]


class FormPoster(Protocol):
    """POSTs an ``application/x-www-form-urlencoded`` body, no redirect followed: the HTTP status."""

    def __call__(self, url: str, form: Mapping[str, str], timeout: float) -> int: ...


def announce(outbox: MessageQueue | None, clients: tuple[Client, ...], client_ids: list[str] | tuple[str, ...], *,
             sub: str, sid: str | None) -> int:
    """Enqueue a logout notice for each of ``client_ids`` that registered a back-channel URI.

    Never raises: a session ends whether or not the queue answers (the outage is logged, and the
    relying parties' own session lifetimes bound what is lost)."""
    notices = notices_for(clients, client_ids, sub=sub, sid=sid)
    if not notices:
        return 0
    if outbox is None:
        log.error("back-channel logout not announced: no queue configured", extra={"clients": len(notices)})
        return 0
    sent = 0
    for notice in notices:
        try:
            outbox.send(notice.to_message())
            sent += 1
        except StorageUnavailableError as error:
            log.error("back-channel logout not announced: queue unavailable",
                      extra={"client_id": notice.client_id, "error_detail": error.detail})
    return sent


def deliver(
    body: str,
    *,
    settings: Settings,
    sign: Signer,
    post: FormPoster,
    outbox: MessageQueue,
    poison: MessageQueue,
    audit: AuditLog,
    clock: Clock = time.time,
) -> Outcome:
    """Deliver one queued notice (§2.5): POST the logout token, then done, retried later, or dead-lettered."""
    try:
        notice = LogoutNotice.from_message(body)
    except ValueError:
        log.error("back-channel logout: a message the broker did not write was dropped")
        return "dropped"
    client = settings.client(notice.client_id)
    if client is None or not client.backchannel_logout_uri:
        log.warning("back-channel logout: client no longer registered for it", extra={"client_id": notice.client_id})
        return "dropped"
    try:
        claims = logout_token_claims(client, notice, issuer=settings.issuer, now=int(clock()),
                                     jti=secrets.token_urlsafe(16))
    except ValueError as error:
        log.warning("back-channel logout: no token can be made", extra={"client_id": client.client_id,
                                                                        "error_detail": str(error)})
        return "dropped"
    token = sign(claims, LOGOUT_TOKEN_TYPE)
    try:
        status = post(client.backchannel_logout_uri, {"logout_token": token}, float(settings.backchannel_timeout))
        reason, failure = ("http_error", f"HTTP {status}") if not 200 <= status < 300 else ("", None)
    except Exception as error:  # a timeout, a refused connection, a TLS failure: all worth a retry
        reason, failure = "unreachable", type(error).__name__
    if failure is None:
        audit.record("backchannel_logout_delivered", client_id=client.client_id, sid=notice.sid or "",
                     attempt=notice.attempt)
        return "delivered"
    if notice.attempt >= settings.backchannel_max_attempts:
        poison.send(body)
        # reason and error: the dimensions the dead-letter alert shows (infra/monitoring/alert-dead-letters.kql).
        audit.record("backchannel_logout_dead_lettered", client_id=client.client_id, sid=notice.sid or "",
                     attempts=notice.attempt, reason=reason, error=failure)
        return "dead_lettered"
    delay = retry_delay(settings.backchannel_retry_seconds, notice.attempt)
    outbox.send(notice.retried().to_message(), delay=delay)
    log.warning("back-channel logout failed, retried later",
                extra={"client_id": client.client_id, "attempt": notice.attempt, "retry_in": delay,
                       "error_detail": failure})
    return "retried"


def retry_delay(first: int, attempt: int) -> int:
    """The backoff before attempt ``attempt + 1``: ``first`` seconds, doubling, at most 7 days (the
    longest visibility timeout Azure Storage queues accept)."""
    return int(min(first * 2 ** (attempt - 1), 7 * 24 * 3600))
