"""The queue triggers of ``function_app.app``, run as the Functions host runs them (the sandbox only).

Functions Core Tools cannot be installed here (sandbox/host.py serves the HTTP functions the same way).
For each function with a ``queueTrigger`` binding, a thread polls its queue on the connection the
binding names (``BROKER_QUEUES``) with the host's rules from ``host.json`` ``extensions.queues``:
a message is received invisible for ``visibilityTimeout``; the function returns → the message is
deleted; the function raises → the message is left to come back once its visibility ends; a message
received more than ``maxDequeueCount`` times goes to ``<queue>-poison`` without running the function.
Messages are base64 (``messageEncoding``).

As the host's queue listener does, the messages of a batch run in parallel, each on its own thread, and
the next batch is received as soon as no more than ``newBatchThreshold`` messages are still running
(default: half of ``batchSize``): one message that hangs (a relying party that never answers) delays
no other. At most ``batchSize + newBatchThreshold`` messages of a queue run at once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy
from azure.storage.queue import BinaryBase64EncodePolicy
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueMessage

from sandbox.host import functions_of

log = logging.getLogger("sandbox.queue_host")

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class QueueRules:
    """The host's queue settings (host.json ``extensions.queues``)."""

    max_dequeue_count: int = 5
    visibility_timeout: int = 0  # seconds a failed message stays invisible (the host's default: 0)
    batch_size: int = 16
    new_batch_threshold: int | None = None  # None: the host's default, half of batch_size

    @property
    def threshold(self) -> int:
        """Running messages at or below which the next batch is received (``newBatchThreshold``).

        The host's default is ``batchSize / 2`` per processor; the sandbox counts one processor."""
        return self.batch_size // 2 if self.new_batch_threshold is None else self.new_batch_threshold

    @property
    def concurrency(self) -> int:
        """The most messages of one queue running at once: a batch received at the threshold."""
        return self.batch_size + self.threshold

    @classmethod
    def from_host_json(cls, path: Path = ROOT / "host.json") -> QueueRules:
        queues = json.loads(path.read_text(encoding="utf-8")).get("extensions", {}).get("queues", {})
        return cls(
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_seconds(queues.get("visibilityTimeout", "00:00:00")),
            batch_size=int(queues.get("batchSize", 16)),
            new_batch_threshold=int(queues["newBatchThreshold"]) if "newBatchThreshold" in queues else None,
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
    pool: ThreadPoolExecutor


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
                connection, name = connections[binding.connection], function.get_function_name()
                self.triggers.append(_Trigger(
                    name,
                    _client(connection, binding.queue_name),
                    _client(connection, f"{binding.queue_name}-poison"),
                    function.get_user_function(),
                    binding.name,
                    ThreadPoolExecutor(self.rules.concurrency, thread_name_prefix=f"queue-{name}"),
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
        for trigger in self.triggers:  # the messages running finish; those not started come back later
            trigger.pool.shutdown(wait=True, cancel_futures=True)

    def _poll(self, trigger: _Trigger) -> None:
        running: set[Future[None]] = set()
        while not self._stop.is_set():
            running = {future for future in running if not future.done()}
            if len(running) > self.rules.threshold:  # the host waits for some to finish (newBatchThreshold)
                wait(running, timeout=self._poll_interval, return_when=FIRST_COMPLETED)
                continue
            try:
                started = self.run_once(trigger)
            except Exception:  # the queue service went away (the sandbox is stopping): try again
                log.exception("queue host: polling %s failed", trigger.name)
                started = []
            running.update(started)
            if not started:
                self._stop.wait(self._poll_interval)

    def run_once(self, trigger: _Trigger) -> list[Future[None]]:
        """Receive one batch of ``trigger``'s queue and start each message on its own thread; their futures."""
        # Received invisible for a long while: the function runs meanwhile; a failure then sets the
        # visibility the host uses for a retry (host.json visibilityTimeout).
        messages = trigger.queue.receive_messages(max_messages=self.rules.batch_size, visibility_timeout=300)
        futures = [trigger.pool.submit(self._handle, trigger, message) for message in messages]
        for future in futures:
            future.add_done_callback(functools.partial(_log_failure, trigger.name))
        return futures

    def _handle(self, trigger: _Trigger, message: QueueMessage) -> None:
        """One message: poisoned past ``maxDequeueCount``, else the function; deleted once it returns."""
        if message.dequeue_count is not None and message.dequeue_count > self.rules.max_dequeue_count:
            trigger.poison.send_message(message.content)
            trigger.queue.delete_message(message)
            log.warning("queue host: %s moved to the poison queue", trigger.name)
            return
        try:
            trigger.handler(**{trigger.arg_name: func.QueueMessage(id=message.id, body=message.content,
                                                                   pop_receipt=message.pop_receipt)})
        except Exception:
            log.exception("queue host: %s failed (dequeue count %s)", trigger.name, message.dequeue_count)
            trigger.queue.update_message(message, visibility_timeout=self.rules.visibility_timeout)
            return
        trigger.queue.delete_message(message)


def _log_failure(name: str, future: Future[None]) -> None:
    """A message whose handling broke outside the function (the queue service went away): logged."""
    if not future.cancelled() and (error := future.exception()) is not None:
        log.error("queue host: handling a message of %s failed", name, exc_info=error)


def _client(connection_string: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(
        connection_string, name,
        message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy(),
    )
