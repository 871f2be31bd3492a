"""The sandbox's queue host runs queue triggers as the Functions host does (host.json extensions.queues):
a message handled without an exception is deleted; one whose function raises comes back, and after
maxDequeueCount receptions it goes to ``<queue>-poison`` without running the function again."""

from __future__ import annotations

import threading
import uuid

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
    assert QueueRules.from_host_json() == QueueRules(max_dequeue_count=5, visibility_timeout=30, batch_size=16)


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
        host.run_once(trigger)
    assert calls.count(b"fails") == 2 and calls.count(b"works") == 1 and done.is_set()
    assert [m.content for m in queue(connection, f"{name}-poison").peek_messages(max_messages=5)] == [b"fails"]
    assert list(queue(connection, name).peek_messages(max_messages=5)) == []
