"""The simulator's one protocol error: an OAuth ``error``, Keycloak's ``error_description`` and a status."""

from __future__ import annotations


class ProtocolError(Exception):
    """Answered as ``{"error", "error_description"}`` (token endpoint) or redirected (authorization)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status
