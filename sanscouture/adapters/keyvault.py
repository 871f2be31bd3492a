"""Signing keys as the versions of one Key Vault secret (a private JWK in JSON each).

Rotation adds a version (optionally with a future ``not_before``: it is then published at ``/jwks``
before it signs) and later disables or expires the oldest. The key ring calls :meth:`load` rarely
(once per worker and hour, see ``sanscouture/keys.py``): never once per request.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets import SecretProperties

from sanscouture.errors import TemporarilyUnavailableError
from sanscouture.ports import Clock

log = logging.getLogger(__name__)

_EPOCH = datetime.fromtimestamp(0, tz=UTC)

# A sign-in must not hang on Key Vault: fail fast, retry little (the ring keeps serving cached keys).
_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 10,
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
}


class KeyVaultKeySource:
    """A :class:`~sanscouture.ports.KeySource` over the versions of one Key Vault secret."""

    def __init__(self, secret_client: SecretClient, name: str, clock: Clock = time.time) -> None:
        self._client = secret_client
        self._name = name
        self._clock = clock

    def load(self) -> list[dict[str, Any]]:
        """The enabled, unexpired versions' JWKs, newest (``created_on``) first.

        A version's ``not_before`` is carried as the JWK member ``nbf`` (epoch seconds) so that the
        ring publishes it without signing with it yet. Raises TemporarilyUnavailableError when Key
        Vault cannot be reached or refuses access.
        """
        try:
            listed = self._client.list_properties_of_secret_versions(self._name)
            versions = [props for props in listed if self._usable(props)]
            versions.sort(key=lambda props: props.created_on or _EPOCH, reverse=True)
            return [jwk for jwk in (self._fetch(props) for props in versions) if jwk is not None]
        except AzureError as error:
            raise TemporarilyUnavailableError(
                "signing keys are temporarily unavailable, try again",
                detail=f"key vault secret {self._name}: {type(error).__name__}",
            ) from error

    def _usable(self, props: SecretProperties) -> bool:
        if not props.enabled:
            return False
        return props.expires_on is None or props.expires_on.timestamp() > self._clock()

    def _fetch(self, props: SecretProperties) -> dict[str, Any] | None:
        secret = self._client.get_secret(self._name, props.version)
        try:
            jwk = json.loads(secret.value or "")
        except json.JSONDecodeError:
            jwk = None
        if not isinstance(jwk, dict):
            # Name the version only: the value is a private key.
            log.error("key vault secret %s version %s is not a JSON object; skipped", self._name, props.version)
            return None
        if props.not_before is not None:
            jwk["nbf"] = props.not_before.timestamp()
        return jwk


def from_settings(url: str, name: str, credential: TokenCredential) -> KeyVaultKeySource:
    """The Key Vault key source of ``BROKER_KEYVAULT_URL`` / ``BROKER_SIGNING_KEY_NAME``."""
    return KeyVaultKeySource(SecretClient(vault_url=url, credential=credential, **_CLIENT_OPTIONS), name)
