"""Every app setting of the broker, read in one place and validated once.

The names are the contract shared with ``local.settings.json.example`` and the Bicep templates
(``infra/bicep``): a test checks that the three agree. A missing or malformed setting stops the
worker with a :class:`SettingsError` that names it, instead of failing later inside a request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import urlsplit

from sanscouture.models import Client

PREFIX = "BROKER_"

# Every setting the code reads, with whether it is required. Bicep must set exactly these
# (plus the platform's own names); tests/infra checks it.
SETTING_NAMES: tuple[str, ...] = (
    "BROKER_ISSUER",
    "BROKER_CLIENTS",
    "BROKER_ENTRA_AUTHORITY",
    "BROKER_ENTRA_CLIENT_ID",
    "BROKER_ENTRA_CLIENT_SECRET",
    "BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID",
    "BROKER_ENTRA_ALLOWED_TENANTS",
    "BROKER_ENTRA_REQUIRED_ACRS",
    "BROKER_ENTRA_MAX_AUTH_AGE",
    "BROKER_PSC_DISCOVERY_URL",
    "BROKER_PSC_CLIENT_ID",
    "BROKER_PSC_CLIENT_SECRET",
    "BROKER_PSC_TOKEN_AUTH_METHOD",
    "BROKER_TABLES_ENDPOINT",
    "BROKER_TABLES_CONNECTION_STRING",
    "BROKER_KEYVAULT_URL",
    "BROKER_SIGNING_KEY_NAME",
    "BROKER_SIGNING_KEY_FILE",
    "BROKER_SHOW_MIRE",
    "BROKER_SESSION_MAX_AGE",
    "BROKER_SESSION_IDLE_TIMEOUT",
    "BROKER_ACCESS_TOKEN_TTL",
    "BROKER_REFRESH_TOKEN_TTL",
    "BROKER_PAIRING_REVERIFY_DAYS",
    "BROKER_KEY_ROTATION_ENABLED",
    "BROKER_LIMIT_JOURNEYS_PER_MINUTE",
    "BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE",
    "BROKER_CA_BUNDLE",
    "BROKER_QUEUES",
    "BROKER_QUEUES__queueServiceUri",
    "BROKER_BACKCHANNEL_RETRY_SECONDS",
    "BROKER_BACKCHANNEL_MAX_ATTEMPTS",
    "BROKER_BACKCHANNEL_TIMEOUT",
)

# The identity-based connection of the back-channel logout queues as the Functions host reads it for
# the queue trigger (``connection="BROKER_QUEUES"``); the broker itself reads the service URI and uses
# the managed identity of BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID.
QUEUES_CONNECTION = "BROKER_QUEUES"

# Settings that only make sense on a developer machine: Bicep never sets them.
SANDBOX_ONLY_SETTINGS: frozenset[str] = frozenset(
    {
        "BROKER_ENTRA_CLIENT_SECRET",
        "BROKER_TABLES_CONNECTION_STRING",
        "BROKER_SIGNING_KEY_FILE",
        "BROKER_CA_BUNDLE",
        "BROKER_QUEUES",
    }
)

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token")
# How the broker authenticates to PSC's token endpoint: the secret ANS issued, or an RFC 7523 assertion
# signed with the broker's own signing key, whose public half ANS fetches from {issuer}/jwks.
PSC_CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name
PSC_PRIVATE_KEY_JWT = "private_key_jwt"
PSC_AUTH_METHODS = (PSC_CLIENT_SECRET_BASIC, PSC_PRIVATE_KEY_JWT)

# ANS publishes no pairing lifetime we could read (docs/design.md "Periodic re-verification"): a
# yearly proof, the rhythm of an access review, until ANS states one.
DEFAULT_PAIRING_REVERIFY_DAYS = 365
_SHA256_SECRET = re.compile(r"^sha256:[0-9a-f]{64}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message starts with the setting's name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.setting = name


@dataclass(frozen=True)
class Settings:
    """The broker's configuration, immutable once parsed (one instance per worker)."""

    issuer: str
    clients: tuple[Client, ...]
    entra_authority: str
    entra_client_id: str
    entra_allowed_tenants: frozenset[str]
    psc_discovery_url: str
    psc_client_id: str
    psc_client_secret: str | None = field(default=None, repr=False)
    psc_token_auth_method: str = PSC_CLIENT_SECRET_BASIC
    entra_client_secret: str | None = field(default=None, repr=False)
    entra_managed_identity_client_id: str | None = None
    entra_required_acrs: tuple[str, ...] = ()
    entra_max_auth_age: int = 4 * 3600
    tables_endpoint: str | None = None
    tables_connection_string: str | None = field(default=None, repr=False)
    keyvault_url: str | None = None
    signing_key_name: str | None = None
    signing_key_file: str | None = None
    show_mire: bool = False
    session_max_age: int = 4 * 3600
    session_idle_timeout: int = 30 * 60
    access_token_ttl: int = 120
    refresh_token_ttl: int = 30 * 60
    pairing_reverify_days: int = DEFAULT_PAIRING_REVERIFY_DAYS
    key_rotation_enabled: bool = False
    limit_journeys_per_minute: int = 30
    limit_failed_client_auth_per_minute: int = 10
    ca_bundle: str | None = None
    # Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the queue service, named as the
    # Functions host's queue trigger reads its connection ``BROKER_QUEUES`` (a connection string in the
    # sandbox; in Azure the identity-based ``BROKER_QUEUES__queueServiceUri``, with ``__credential`` and
    # ``__clientId`` for the host), then the delivery's timeout and retries.
    queues: str | None = field(default=None, repr=False)
    queues__queueserviceuri: str | None = None
    backchannel_retry_seconds: int = 30
    backchannel_max_attempts: int = 5
    backchannel_timeout: int = 5

    def client(self, client_id: str) -> Client | None:
        """The registered client with this ``client_id``, or None."""
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse and validate the settings; raise :class:`SettingsError` naming the first bad one."""
        reader = _Reader(env)
        issuer = reader.https_url("BROKER_ISSUER").rstrip("/")
        settings = cls(
            issuer=issuer,
            clients=parse_clients(reader.required("BROKER_CLIENTS"), "BROKER_CLIENTS"),
            entra_authority=reader.https_url("BROKER_ENTRA_AUTHORITY").rstrip("/"),
            entra_client_id=reader.required("BROKER_ENTRA_CLIENT_ID"),
            entra_client_secret=reader.optional("BROKER_ENTRA_CLIENT_SECRET"),
            entra_managed_identity_client_id=reader.optional("BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID"),
            entra_allowed_tenants=frozenset(reader.guid_list("BROKER_ENTRA_ALLOWED_TENANTS")),
            entra_required_acrs=reader.required_acrs("BROKER_ENTRA_REQUIRED_ACRS"),
            entra_max_auth_age=reader.seconds("BROKER_ENTRA_MAX_AUTH_AGE", 4 * 3600),
            psc_discovery_url=reader.https_url("BROKER_PSC_DISCOVERY_URL"),
            psc_client_id=reader.required("BROKER_PSC_CLIENT_ID"),
            psc_client_secret=reader.optional("BROKER_PSC_CLIENT_SECRET"),
            psc_token_auth_method=reader.choice("BROKER_PSC_TOKEN_AUTH_METHOD", PSC_AUTH_METHODS),
            tables_endpoint=reader.optional_https_url("BROKER_TABLES_ENDPOINT"),
            tables_connection_string=reader.optional("BROKER_TABLES_CONNECTION_STRING"),
            keyvault_url=reader.optional_https_url("BROKER_KEYVAULT_URL"),
            signing_key_name=reader.optional("BROKER_SIGNING_KEY_NAME"),
            signing_key_file=reader.optional("BROKER_SIGNING_KEY_FILE"),
            show_mire=reader.boolean("BROKER_SHOW_MIRE"),
            session_max_age=reader.seconds("BROKER_SESSION_MAX_AGE", 4 * 3600),
            session_idle_timeout=reader.seconds("BROKER_SESSION_IDLE_TIMEOUT", 30 * 60),
            access_token_ttl=reader.seconds("BROKER_ACCESS_TOKEN_TTL", 120),
            refresh_token_ttl=reader.seconds("BROKER_REFRESH_TOKEN_TTL", 30 * 60),
            pairing_reverify_days=reader.days_or_default("BROKER_PAIRING_REVERIFY_DAYS", DEFAULT_PAIRING_REVERIFY_DAYS),
            key_rotation_enabled=reader.boolean("BROKER_KEY_ROTATION_ENABLED"),
            limit_journeys_per_minute=reader.seconds("BROKER_LIMIT_JOURNEYS_PER_MINUTE", 30),
            limit_failed_client_auth_per_minute=reader.seconds("BROKER_LIMIT_FAILED_CLIENT_AUTH_PER_MINUTE", 10),
            ca_bundle=reader.optional("BROKER_CA_BUNDLE"),
            queues=reader.optional("BROKER_QUEUES"),
            queues__queueserviceuri=reader.optional_https_url("BROKER_QUEUES__queueServiceUri"),
            backchannel_retry_seconds=reader.seconds("BROKER_BACKCHANNEL_RETRY_SECONDS", 30),
            backchannel_max_attempts=reader.seconds("BROKER_BACKCHANNEL_MAX_ATTEMPTS", 5),
            backchannel_timeout=reader.seconds("BROKER_BACKCHANNEL_TIMEOUT", 5),
        )
        _check_exactly_one(
            env,
            "BROKER_ENTRA_CLIENT_SECRET",
            "BROKER_ENTRA_MANAGED_IDENTITY_CLIENT_ID",
            settings.entra_client_secret,
            settings.entra_managed_identity_client_id,
        )
        _check_exactly_one(
            env,
            "BROKER_TABLES_ENDPOINT",
            "BROKER_TABLES_CONNECTION_STRING",
            settings.tables_endpoint,
            settings.tables_connection_string,
        )
        _check_exactly_one(
            env, "BROKER_KEYVAULT_URL", "BROKER_SIGNING_KEY_FILE", settings.keyvault_url, settings.signing_key_file
        )
        if settings.keyvault_url and not settings.signing_key_name:
            raise SettingsError("BROKER_SIGNING_KEY_NAME", "is required with BROKER_KEYVAULT_URL")
        if not settings.entra_allowed_tenants:
            raise SettingsError("BROKER_ENTRA_ALLOWED_TENANTS", "list at least one tenant id")
        if not settings.entra_required_acrs and settings.keyvault_url:
            # The acrs of an enforced authentication context is the only proof of the Entra sign-in's
            # strength the broker sees; without it its tokens could not claim acr=eidas1.
            raise SettingsError(
                "BROKER_ENTRA_REQUIRED_ACRS", "'none' is for the sandbox only: in Azure list the contexts (c1)"
            )
        _check_psc_credential(settings)
        if settings.queues and settings.queues__queueserviceuri:
            raise SettingsError("BROKER_QUEUES", "set only one of it and BROKER_QUEUES__queueServiceUri")
        announced = [client.client_id for client in settings.clients if client.backchannel_logout_uri]
        if announced and not settings.has_queues:
            raise SettingsError("BROKER_QUEUES__queueServiceUri",
                                f"is required: {announced[0]!r} registers a backchannel_logout_uri")
        return settings

    @property
    def has_queues(self) -> bool:
        """Whether a queue service is configured (back-channel logout is delivered through it)."""
        return bool(self.queues or self.queues__queueserviceuri)


def _check_psc_credential(settings: Settings) -> None:
    """client_secret_basic needs the secret; private_key_jwt signs with the signing key, and a secret
    left beside it would be a live credential nobody uses: refused, so that it gets removed."""
    method = settings.psc_token_auth_method
    if method == PSC_CLIENT_SECRET_BASIC and not settings.psc_client_secret:
        raise SettingsError("BROKER_PSC_CLIENT_SECRET", f"is required with BROKER_PSC_TOKEN_AUTH_METHOD={method}")
    if method == PSC_PRIVATE_KEY_JWT and settings.psc_client_secret:
        raise SettingsError(
            "BROKER_PSC_CLIENT_SECRET",
            "must be empty with BROKER_PSC_TOKEN_AUTH_METHOD=private_key_jwt (the broker signs a client "
            "assertion with its signing key instead)",
        )


def _check_exactly_one(env: Mapping[str, str], name_a: str, name_b: str, a: object, b: object) -> None:
    if a and b:
        raise SettingsError(name_a, f"set either {name_a} or {name_b}, not both")
    if not a and not b:
        raise SettingsError(name_a, f"is required (or {name_b})")


def seconds_setting(env: Mapping[str, str], name: str, default: int) -> int:
    """One duration setting read as the broker reads it (for the administrator's tools)."""
    return _Reader(env).seconds(name, default)


class _Reader:
    """Typed accessors over the environment; each raises SettingsError with the name."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(name, "is required")
        return value

    def https_url(self, name: str) -> str:
        value = self.required(name)
        _check_https(name, value)
        return value

    def optional_https_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None:
            _check_https(name, value)
        return value

    def word_list(self, name: str) -> list[str]:
        value = self.optional(name) or ""
        return [item for item in re.split(r"[,\s]+", value) if item]

    def required_acrs(self, name: str) -> tuple[str, ...]:
        """Required, because it is the only proof of the Entra sign-in's strength the broker sees:
        authentication context ids (c1..c25), or the explicit word ``none`` to rely solely on a
        Conditional Access policy targeting the app (which the broker cannot observe)."""
        values = self.word_list(name)
        if not values:
            raise SettingsError(name, "is required: authentication contexts such as c1, or 'none' to disable the check")
        if values == ["none"]:
            return ()
        for value in values:
            if not re.fullmatch(r"c([1-9]|1[0-9]|2[0-5])", value):
                raise SettingsError(name, f"{value!r} is not an authentication context id (c1..c25) or 'none'")
        return tuple(values)

    def guid_list(self, name: str) -> list[str]:
        items = self.word_list(name)
        for item in items:
            if not _GUID.match(item):
                raise SettingsError(name, f"{item!r} is not a tenant id (GUID)")
        return [item.lower() for item in items]

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``; the first is the default."""
        value = self.optional(name) or choices[0]
        if value not in choices:
            raise SettingsError(name, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def seconds(self, name: str, default: int) -> int:
        value = self.optional(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) <= 0:
            raise SettingsError(name, f"must be a positive number of seconds, not {value!r}")
        return int(value)

    def days_or_default(self, name: str, default: int) -> int:
        """A positive number of days; absent or ``0`` means ``default`` (the documented default)."""
        value = self.optional(name)
        if value is None or (value.isdigit() and int(value) == 0):
            return default
        if not value.isdigit():
            raise SettingsError(name, f"must be a positive number of days, not {value!r}")
        return int(value)

    def boolean(self, name: str) -> bool:
        value = (self.optional(name) or "false").lower()
        if value not in ("true", "false", "1", "0"):
            raise SettingsError(name, f"must be true or false, not {value!r}")
        return value in ("true", "1")


def _check_https(name: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise SettingsError(name, f"must be an https URL, not {value!r}")


def parse_clients(raw: str, name: str) -> tuple[Client, ...]:
    """Parse a JSON list of RFC 7591 client metadata into :class:`Client` objects."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingsError(name, f"is not valid JSON ({error.msg} at position {error.pos})") from None
    if not isinstance(data, list) or not data:
        raise SettingsError(name, "must be a non-empty JSON list of client metadata objects")
    clients = tuple(_parse_client(item, f"{name}[{index}]") for index, item in enumerate(data))
    ids = [client.client_id for client in clients]
    duplicates = sorted({client_id for client_id in ids if ids.count(client_id) > 1})
    if duplicates:
        raise SettingsError(name, f"client_id {duplicates[0]!r} is registered twice")
    return clients


def _parse_client(item: Any, where: str) -> Client:
    if not isinstance(item, dict):
        raise SettingsError(where, "must be a JSON object")
    client_id = item.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise SettingsError(where, "client_id is required")
    where = f"{where} ({client_id})"
    redirect_uris = _uri_list(item, "redirect_uris", where, required=True)
    post_logout = _uri_list(item, "post_logout_redirect_uris", where, required=False)
    method = item.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise SettingsError(where, f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    secret = item.get("client_secret")
    if method == "private_key_jwt":
        if not item.get("jwks") and not item.get("jwks_uri"):
            raise SettingsError(where, "private_key_jwt needs jwks or jwks_uri")
        if item.get("jwks") and not isinstance(item["jwks"], dict):
            raise SettingsError(where, "jwks must be a JSON Web Key Set object")
    else:
        if not isinstance(secret, str) or not secret:
            raise SettingsError(where, f"{method} needs client_secret")
        if secret.startswith("sha256:") and not _SHA256_SECRET.match(secret):
            raise SettingsError(where, "client_secret 'sha256:' must be followed by 64 lowercase hex digits")
    scope = item.get("scope", "openid scope_all")
    if not isinstance(scope, str):
        raise SettingsError(where, "scope must be a space-separated string")
    grant_types = item.get("grant_types", ["authorization_code"])
    if (not isinstance(grant_types, list) or "authorization_code" not in grant_types
            or not set(grant_types) <= set(GRANT_TYPES)):
        raise SettingsError(where, "grant_types must list authorization_code, and may add refresh_token")
    require_par = item.get("require_pushed_authorization_requests", False)
    if not isinstance(require_par, bool):
        raise SettingsError(where, "require_pushed_authorization_requests must be true or false")
    backchannel_uri, session_required = _backchannel(item, where)
    return Client(
        backchannel_logout_uri=backchannel_uri,
        backchannel_logout_session_required=session_required,
        grant_types=tuple(grant_types),
        client_id=client_id,
        client_secret=secret if isinstance(secret, str) else None,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        token_endpoint_auth_method=method,
        jwks=item.get("jwks"),
        jwks_uri=item.get("jwks_uri"),
        scope=tuple(scope.split()),
        client_name=str(item.get("client_name") or client_id),
        require_pushed_authorization_requests=require_par,
    )


def _backchannel(item: dict[str, Any], where: str) -> tuple[str | None, bool]:
    """Back-Channel Logout 1.0 §2.2: ``backchannel_logout_uri`` is an absolute https URI without a
    fragment (it may have a query); ``backchannel_logout_session_required`` a boolean, false if absent."""
    uri = item.get("backchannel_logout_uri")
    if uri is not None:
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or parts.scheme != "https" or not parts.netloc or parts.fragment:
            raise SettingsError(where, f"backchannel_logout_uri: {uri!r} is not an https URI without fragment")
    required = item.get("backchannel_logout_session_required", False)
    if not isinstance(required, bool):
        raise SettingsError(where, "backchannel_logout_session_required must be true or false")
    return uri, required


def _uri_list(item: dict[str, Any], key: str, where: str, *, required: bool) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(uri, str) for uri in value):
        raise SettingsError(where, f"{key} must be a list of URIs")
    if required and not value:
        raise SettingsError(where, f"{key} must list at least one URI")
    for uri in value:
        parts = urlsplit(uri)
        if not parts.scheme or not parts.netloc or parts.fragment:
            raise SettingsError(where, f"{key}: {uri!r} is not an absolute URI without fragment")
    return tuple(value)
