"""The sandbox's queue host runs queue triggers as the Functions host does (host.json extensions.queues):
a message handled without an exception is deleted; one whose function raises comes back, and after
maxDequeueCount receptions it goes to ``<queue>-poison`` without running the function again. Messages
run in parallel, and a new batch is received while one still runs: one that hangs delays no other."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import wait

import azure.functions as func
from azure.storage.queue import BinaryBase64DecodePolicy
from azure.storage.queue import BinaryBase64EncodePolicy
from azure.storage.queue import QueueClient

from sandbox import azurite
from sandbox.queue_host import QueueHost
from sandbox.queue_host import QueueRules


def queue(connection: str, name: str) -> QueueClient:
    return QueueClient.from_connection_string(connection, name, message_encode_policy=BinaryBase64EncodePolicy(),
                                              message_decode_policy=BinaryBase64DecodePolicy())


def test_host_json_rules_are_the_settings_defaults() -> None:
    rules = QueueRules.from_host_json()
    assert rules == QueueRules(max_dequeue_count=5, visibility_timeout=30, batch_size=16)
    assert (rules.threshold, rules.concurrency) == (8, 24)  # newBatchThreshold: batchSize / 2 by default


def test_a_failing_message_is_retried_then_poisoned_and_a_handled_one_deleted(azurite_server: azurite.Azurite) -> None:
    connection = azurite_server.queue_connection_string
    assert connection is not None
    name = f"q{uuid.uuid4().hex[:12]}"
    calls: list[bytes] = []
    done = threading.Event()
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="message", queue_name=name, connection="TEST_QUEUES")
    def handle(message: func.QueueMessage) -> None:
        calls.append(message.get_body())
        if message.get_body() == b"fails":
            raise RuntimeError("the function failed")
        done.set()

    host = QueueHost(app, {"TEST_QUEUES": connection}, QueueRules(max_dequeue_count=2, visibility_timeout=0))
    (trigger,) = host.triggers
    for client in (trigger.queue, trigger.poison):
        client.create_queue()
    queue(connection, name).send_message(b"fails")
    queue(connection, name).send_message(b"works")
    for _ in range(3):  # received twice and failed, then poisoned at the third reception
        wait(host.run_once(trigger))
    assert calls.count(b"fails") == 2 and calls.count(b"works") == 1 and done.is_set()
    assert [m.content for m in queue(connection, f"{name}-poison").peek_messages(max_messages=5)] == [b"fails"]
    assert list(queue(connection, name).peek_messages(max_messages=5)) == []


def test_a_hanging_message_delays_neither_its_batch_nor_the_next(azurite_server: azurite.Azurite) -> None:
    """One message's function hangs: the other of its batch, and one sent afterwards, are handled meanwhile."""
    connection = azurite_server.queue_connection_string
    assert connection is not None
    name = f"q{uuid.uuid4().hex[:12]}"
    release, handled, changed = threading.Event(), [], threading.Condition()
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="message", queue_name=name, connection="TEST_QUEUES")
    def handle(message: func.QueueMessage) -> None:
        if message.get_body() == b"hangs":
            release.wait(timeout=30)
        with changed:
            handled.append(message.get_body())
            changed.notify_all()

    def handled_within(expected: list[bytes], seconds: float = 10) -> bool:
        with changed:
            return changed.wait_for(lambda: sorted(handled) == sorted(expected), timeout=seconds)

    host = QueueHost(app, {"TEST_QUEUES": connection}, QueueRules(batch_size=2, new_batch_threshold=1),
                     poll_interval=0.05)
    sender = queue(connection, name)
    sender.create_queue()
    sender.send_message(b"hangs")
    sender.send_message(b"same batch")
    host.start()
    try:
        assert handled_within([b"same batch"])
        sender.send_message(b"next batch")  # received while "hangs" still runs (1 <= newBatchThreshold)
        assert handled_within([b"same batch", b"next batch"])
        assert not release.is_set()
    finally:
        release.set()
        assert handled_within([b"same batch", b"next batch", b"hangs"])
        host.stop()
    assert list(sender.peek_messages(max_messages=5)) == []
