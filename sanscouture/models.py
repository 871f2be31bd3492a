"""Frozen dataclasses that cross boundaries between the core, the adapters and the HTTP layer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any


@dataclass(frozen=True)
class Client:
    """A registered relying party (RFC 7591 client metadata names)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name
    client_secret: str | None = field(default=None, repr=False)
    post_logout_redirect_uris: tuple[str, ...] = ()
    jwks: Mapping[str, Any] | None = None
    jwks_uri: str | None = None
    scope: tuple[str, ...] = ("openid", "scope_all")
    client_name: str = ""


@dataclass(frozen=True)
class DependencyStatus:
    """The readiness of one dependency, as reported by ``/health``."""

    name: str
    ok: bool
    detail: str = ""
