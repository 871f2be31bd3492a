"""Queue trigger: deliver the back-channel logout notices that ended sessions left on the queue.

OpenID Connect Back-Channel Logout 1.0 §2.5 (sanscouture/backchannel.py): a signed logout token POSTed
to the relying party's ``backchannel_logout_uri``; a failure is a new message made invisible for the
backoff, and after ``BROKER_BACKCHANNEL_MAX_ATTEMPTS`` the notice goes to ``backchannel-logout-poison``
(audited ``backchannel_logout_dead_lettered``). The function returns normally in each of these cases,
so the host deletes the message it was given; only an exception (the queue or the key ring
unavailable) leaves it to the host's own retries (``host.json`` ``extensions.queues``), whose poison
queue is the same one. Connection ``BROKER_QUEUES``: a connection string in the sandbox, the
identity-based ``BROKER_QUEUES__queueServiceUri`` in Azure.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import azure.functions as func

from functions._wiring import Services
from functions._wiring import services
from sanscouture.audit import AuditLog
from sanscouture.backchannel import POISON_QUEUE
from sanscouture.backchannel import QUEUE
from sanscouture.backchannel import Outcome
from sanscouture.backchannel import deliver
from sanscouture.settings import QUEUES_CONNECTION

if TYPE_CHECKING:
    import requests

bp = func.Blueprint()
log = logging.getLogger("sanscouture.backchannel")


@bp.queue_trigger(arg_name="message", queue_name=QUEUE, connection=QUEUES_CONNECTION)
def deliver_backchannel_logout(message: func.QueueMessage) -> None:
    handle(services(), message.get_body().decode("utf-8"))


def handle(wired: Services, body: str) -> Outcome:
    """Deliver one notice with the worker's collaborators."""
    queues = wired.queues
    if queues is None:  # a message can only be here if a queue is configured: a settings change
        raise RuntimeError("BROKER_QUEUES is not configured")
    return deliver(
        body,
        settings=wired.settings,
        sign=wired.key_ring.sign,
        post=functools.partial(_post_form, wired.http),
        outbox=queues[QUEUE],
        poison=queues[POISON_QUEUE],
        audit=AuditLog(wired.tables["audit"], wired.clock),  # not wired.broker: no MSAL for a delivery
        clock=wired.clock,
    )


def _post_form(session: requests.Session, url: str, form: Mapping[str, str], timeout: float) -> int:
    """``sanscouture.adapters.http.post_form``, imported on the first delivery: requests is heavy for a
    cold start, and this module is imported by every worker, which most often delivers nothing."""
    from sanscouture.adapters.http import post_form

    return post_form(session, url, form, timeout)
