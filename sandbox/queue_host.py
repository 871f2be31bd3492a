"""The queue triggers of ``function_app.app``, run as the Functions host runs them (the sandbox only).

Functions Core Tools cannot be installed here (sandbox/host.py serves the HTTP functions the same way).
For each function with a ``queueTrigger`` binding, a thread polls its queue on the connection the
binding names (``BROKER_QUEUES``) with the host's rules from ``host.json`` ``extensions.queues``:
a message is received invisible for ``visibilityTimeout``; the function returns → the message is
deleted; the function raises → the message is left to come back once its visibility ends; a message
received more than ``maxDequeueCount`` times goes to ``<queue>-poison`` without running the function.
Messages are base64 (``messageEncoding``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy
from azure.storage.queue import BinaryBase64EncodePolicy
from azure.storage.queue import QueueClient

from sandbox.host import functions_of

log = logging.getLogger("sandbox.queue_host")

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class QueueRules:
    """The host's queue settings (host.json ``extensions.queues``)."""

    max_dequeue_count: int = 5
    visibility_timeout: int = 0  # seconds a failed message stays invisible (the host's default: 0)
    batch_size: int = 16

    @classmethod
    def from_host_json(cls, path: Path = ROOT / "host.json") -> QueueRules:
        queues = json.loads(path.read_text(encoding="utf-8")).get("extensions", {}).get("queues", {})
        return cls(
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_seconds(queues.get("visibilityTimeout", "00:00:00")),
            batch_size=int(queues.get("batchSize", 16)),
        )


def _seconds(timespan: str) -> int:
    hours, minutes, seconds = (int(part) for part in timespan.split(":"))
    return hours * 3600 + minutes * 60 + seconds


@dataclass
class _Trigger:
    name: str
    queue: QueueClient
    poison: QueueClient
    handler: Callable[..., Any]
    arg_name: str


class QueueHost:
    """Polls the queue of every queue-triggered function of ``app`` and invokes it."""

    def __init__(self, app: func.FunctionApp, connections: dict[str, str], rules: QueueRules | None = None,
                 poll_interval: float = 0.1) -> None:
        self.rules = rules or QueueRules.from_host_json()
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.triggers: list[_Trigger] = []
        for function in functions_of(app):  # indexed once per app, shared with the HTTP host
            for binding in function.get_bindings():
                if binding.type != "queueTrigger":
                    continue
                connection = connections[binding.connection]
                self.triggers.append(_Trigger(
                    function.get_function_name(),
                    _client(connection, binding.queue_name),
                    _client(connection, f"{binding.queue_name}-poison"),
                    function.get_user_function(),
                    binding.name,
                ))

    def start(self) -> None:
        for trigger in self.triggers:
            for queue in (trigger.queue, trigger.poison):
                with contextlib.suppress(ResourceExistsError):
                    queue.create_queue()
            thread = threading.Thread(target=self._poll, args=(trigger,), name=f"queue-{trigger.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()

    def _poll(self, trigger: _Trigger) -> None:
        while not self._stop.is_set():
            try:
                handled = self.run_once(trigger)
            except Exception:  # the queue service went away (the sandbox is stopping): try again
                log.exception("queue host: polling %s failed", trigger.name)
                handled = 0
            if not handled:
                self._stop.wait(self._poll_interval)

    def run_once(self, trigger: _Trigger) -> int:
        """Receive one batch of ``trigger``'s queue and handle each message; how many were received."""
        # Received invisible for a long while: the function runs meanwhile; a failure then sets the
        # visibility the host uses for a retry (host.json visibilityTimeout).
        messages = list(trigger.queue.receive_messages(max_messages=self.rules.batch_size, visibility_timeout=300))
        for message in messages:
            if message.dequeue_count is not None and message.dequeue_count > self.rules.max_dequeue_count:
                trigger.poison.send_message(message.content)
                trigger.queue.delete_message(message)
                log.warning("queue host: %s moved to the poison queue", trigger.name)
                continue
            body = message.content
            try:
                trigger.handler(**{trigger.arg_name: func.QueueMessage(id=message.id, body=body,
                                                                       pop_receipt=message.pop_receipt)})
            except Exception:
                log.exception("queue host: %s failed (dequeue count %s)", trigger.name, message.dequeue_count)
                trigger.queue.update_message(message, visibility_timeout=self.rules.visibility_timeout)
                continue
            trigger.queue.delete_message(message)
        return len(messages)


def _client(connection_string: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(
        connection_string, name,
        message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
    )
