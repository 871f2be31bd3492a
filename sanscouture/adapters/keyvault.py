"""Signing keys as the versions of one Key Vault secret (a private JWK in JSON each).

Rotation (``sanscouture/rotation.py``) adds a version with a future ``not_before`` (published at
``/jwks`` before it signs) and later disables the retired ones. The key ring calls :meth:`load` rarely
(once per worker and hour, see ``sanscouture/keys.py``): never once per request. Key Vault returns a
version's value before its ``not_before`` ("Date-time controlled operations",
MicrosoftDocs/azure-docs, articles/key-vault/secrets/about-secrets.md) but not once it is disabled
("Operation get is not allowed on a disabled secret"): disabled versions are never fetched.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets import SecretProperties

from sanscouture.errors import TemporarilyUnavailableError
from sanscouture.keys import SigningKey
from sanscouture.models import KeyVersion
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


JWK_CONTENT_TYPE = "application/jwk+json"


class KeyVaultKeySource:
    """A :class:`~sanscouture.ports.KeyStore` over the versions of one Key Vault secret.

    :meth:`load` needs *Key Vault Secrets User*; :meth:`add` and :meth:`disable` need *Key Vault
    Secrets Officer* (the administrator's, or the app's when the rotation timer is enabled: docs/deploy.md §6).
    """

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
            versions = [props for props in self._listed() if self._usable(props)]
            return [jwk for jwk in (self._fetch(props) for props in versions) if jwk is not None]
        except AzureError as error:
            raise self._unavailable(error) from error

    def versions(self) -> list[KeyVersion]:
        """Every version, newest (``created_on``) first; the usable ones' ``kid`` read from their value."""
        try:
            return [self._version(props) for props in self._listed()]
        except AzureError as error:
            raise self._unavailable(error) from error

    def add(self, jwk: Mapping[str, Any], not_before: float) -> KeyVersion:
        """A new version holding ``jwk``, signing from ``not_before`` (Key Vault "Set Secret").

        Key Vault keeps whole seconds: rounded up, so that the key never signs earlier than asked."""
        not_before = float(math.ceil(not_before))
        try:
            secret = self._client.set_secret(
                self._name, json.dumps(dict(jwk), separators=(",", ":")), content_type=JWK_CONTENT_TYPE,
                not_before=datetime.fromtimestamp(not_before, tz=UTC),
            )
        except AzureError as error:
            raise self._unavailable(error) from error
        props = secret.properties
        return KeyVersion(
            id=str(props.version), kid=str(jwk["kid"]), created=_epoch(props.created_on), not_before=not_before,
            enabled=True,
        )

    def disable(self, version: KeyVersion) -> None:
        """Set the version's ``enabled`` attribute to false (Key Vault "Update Secret"; reversible)."""
        try:
            self._client.update_secret_properties(self._name, version.id, enabled=False)
        except AzureError as error:
            raise self._unavailable(error) from error

    def _listed(self) -> list[SecretProperties]:
        listed: Iterable[SecretProperties] = self._client.list_properties_of_secret_versions(self._name)
        return sorted(listed, key=lambda props: props.created_on or _EPOCH, reverse=True)

    def _version(self, props: SecretProperties) -> KeyVersion:
        enabled = self._usable(props)
        jwk = self._fetch(props) if enabled else None
        try:
            kid: str | None = SigningKey.from_jwk(jwk).kid if jwk is not None else None
        except ValueError:
            kid = None
        return KeyVersion(
            id=str(props.version), kid=kid, created=_epoch(props.created_on), not_before=_epoch(props.not_before),
            enabled=enabled,
        )

    def _unavailable(self, error: AzureError) -> TemporarilyUnavailableError:
        status = getattr(error, "status_code", None)  # 403: the identity lacks the role
        return TemporarilyUnavailableError(
            "signing keys are temporarily unavailable, try again",
            detail=f"key vault secret {self._name}: {type(error).__name__}" + (f" (HTTP {status})" if status else ""),
        )

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


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def from_settings(url: str, name: str, credential: TokenCredential) -> KeyVaultKeySource:
    """The Key Vault key source of ``BROKER_KEYVAULT_URL`` / ``BROKER_SIGNING_KEY_NAME``."""
    return KeyVaultKeySource(SecretClient(vault_url=url, credential=credential, **_CLIENT_OPTIONS), name)
