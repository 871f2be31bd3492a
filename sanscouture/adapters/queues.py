"""Azure Storage queues (the back-channel logout's outbox and its poison queue), thin.

Messages are base64-encoded text, the encoding the Functions host's queue trigger expects by default
(``host.json`` ``extensions.queues.messageEncoding``). Azurite's queue service in the sandbox; the
account's queue endpoint with the managed identity in Azure.
"""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.exceptions import AzureError
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy
from azure.storage.queue import BinaryBase64EncodePolicy
from azure.storage.queue import QueueClient
from azure.storage.queue import QueueServiceClient

from sanscouture.errors import StorageUnavailableError


class StorageQueue:
    """One queue: :class:`sanscouture.ports.MessageQueue`."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self.name = client.queue_name

    def send(self, body: str, *, delay: int = 0) -> None:
        try:
            self._client.send_message(body.encode("utf-8"), visibility_timeout=delay or None)
        except AzureError as error:
            raise StorageUnavailableError(detail=f"queue {self.name}: {type(error).__name__}") from error

    def create(self) -> None:
        """Create the queue if missing (the sandbox; Bicep creates them in Azure)."""
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()


class Queues:
    """The storage account's queue service."""

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service

    @classmethod
    def from_connection_string(cls, connection_string: str) -> Queues:
        return cls(QueueServiceClient.from_connection_string(connection_string))

    @classmethod
    def from_endpoint(cls, endpoint: str, credential: Any) -> Queues:
        return cls(QueueServiceClient(endpoint, credential=credential))

    def __getitem__(self, name: str) -> StorageQueue:
        client = self._service.get_queue_client(
            name, message_encode_policy=BinaryBase64EncodePolicy(), message_decode_policy=BinaryBase64DecodePolicy()
        )
        return StorageQueue(client)
