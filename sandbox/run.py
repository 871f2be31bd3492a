"""Start the whole sandbox on 127.0.0.1: Azurite, the broker host, the Entra and PSC simulators and the
demo service. Used by ``make demo`` (``python -m sandbox``) and by the end-to-end tests.

Ports default to docs/design.md's (demo 7070, broker 7071, Entra 7072, PSC 7073, Azurite 10002) and can be
changed with ``SANDBOX_DEMO_PORT``, ``SANDBOX_BROKER_PORT``, ``SANDBOX_ENTRA_PORT``, ``SANDBOX_PSC_PORT``
and ``SANDBOX_AZURITE_PORT``. ``SANDBOX_CLIENTS`` names a JSON file of extra relying parties (the same
format as ``BROKER_CLIENTS``) so that a service developer can try their own application.
``SANDBOX_PSC_TOKEN_AUTH_METHOD=private_key_jwt`` registers the broker with the PSC simulator as ANS
may: client assertions signed with the broker's key, fetched from its ``/jwks`` (default
``client_secret_basic``).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from sandbox import azurite
from sandbox import processes
from sandbox import tls as local_tls
from sandbox.broker_clock import MovableClock
from sandbox.broker_clock import time_travel
from sandbox.broker_clock import with_clock_control
from sandbox.servers import RunningServer
from sandbox.servers import serve

if TYPE_CHECKING:
    from flask import Flask

    from sandbox.psc_sim import PscSimConfig
    from sandbox.queue_host import QueueHost

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".data"

DEMO_CLIENT_ID = "portail-demo"


@dataclass(frozen=True)
class Ports:
    demo: int = 7070
    broker: int = 7071
    entra: int = 7072
    psc: int = 7073
    azurite: int = 10002
    azurite_queue: int = 10001  # Azurite's Queue service: the back-channel logout queues

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ports:
        def port(name: str, default: int) -> int:
            value = env.get(name, "").strip()
            if not value:
                return default
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise SystemExit(f"{name}: {value!r} is not a TCP port")
            return int(value)

        return cls(
            demo=port("SANDBOX_DEMO_PORT", 7070),
            broker=port("SANDBOX_BROKER_PORT", 7071),
            entra=port("SANDBOX_ENTRA_PORT", 7072),
            psc=port("SANDBOX_PSC_PORT", 7073),
            azurite=port("SANDBOX_AZURITE_PORT", 10002),
            azurite_queue=port("SANDBOX_AZURITE_QUEUE_PORT", 10001),
        )


@dataclass(frozen=True)
class RegisteredClient:
    """A relying party registered with the broker, with its clear secret (the broker keeps a hash)."""

    client_id: str
    redirect_uris: tuple[str, ...]
    secret: str | None = None
    auth_method: str = "client_secret_basic"
    jwks: Mapping[str, Any] | None = None
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_name: str = ""
    grant_types: tuple[str, ...] = ("authorization_code",)
    private_jwk: Mapping[str, Any] | None = field(default=None, repr=False)  # private_key_jwt clients
    require_pushed_authorization_requests: bool = False  # RFC 9126 6: PAR only
    backchannel_logout_uri: str | None = None  # OIDC Back-Channel Logout 1.0
    backchannel_logout_session_required: bool = False

    def metadata(self) -> dict[str, Any]:
        """RFC 7591 metadata as BROKER_CLIENTS takes it; the secret only as its SHA-256."""
        data: dict[str, Any] = {
            "client_id": self.client_id,
            "client_name": self.client_name or self.client_id,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "token_endpoint_auth_method": self.auth_method,
            "scope": "openid profile email scope_all",
            "grant_types": list(self.grant_types),
        }
        if self.secret:
            data["client_secret"] = "sha256:" + hashlib.sha256(self.secret.encode()).hexdigest()
        if self.jwks:
            data["jwks"] = dict(self.jwks)
        if self.require_pushed_authorization_requests:
            data["require_pushed_authorization_requests"] = True
        if self.backchannel_logout_uri:
            data["backchannel_logout_uri"] = self.backchannel_logout_uri
            data["backchannel_logout_session_required"] = self.backchannel_logout_session_required
        return data


def load_extra_clients(path: Path) -> list[dict[str, Any]]:
    """Read the SANDBOX_CLIENTS file: a JSON list in the BROKER_CLIENTS format."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"SANDBOX_CLIENTS: cannot read {path}: {error}") from None
    if not isinstance(data, list):
        raise SystemExit(f"SANDBOX_CLIENTS: {path} must hold a JSON list of client metadata")
    return data


@dataclass
class Sandbox:
    """Everything the broker needs, started in this process (servers in threads, Azurite as a child)."""

    ports: Ports
    data_dir: Path = DATA_DIR
    azurite_connection: str | None = None
    # Azurite's Queue service (BROKER_QUEUES): started with Azurite when the sandbox starts it; without
    # one, no relying party gets a back-channel logout URI and no queue trigger runs.
    queues_connection: str | None = None
    persist_tables: bool = True
    clients: list[RegisteredClient] = field(default_factory=list)
    extra_clients: list[dict[str, Any]] = field(default_factory=list)
    broker_overrides: dict[str, str] = field(default_factory=dict)  # BROKER_* settings replaced
    psc_token_auth_method: str = "client_secret_basic"
    telemetry_port: int | None = None  # a port: the broker's telemetry goes to a local sink (off by default)
    servers: list[RunningServer | processes.ChildServer] = field(default_factory=list)
    queue_host: QueueHost | None = None
    _azurite: azurite.Azurite | None = None

    @property
    def broker_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.broker}"

    @property
    def entra_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.entra}"

    @property
    def psc_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.psc}"

    @property
    def demo_url(self) -> str:
        return f"https://127.0.0.1:{self.ports.demo}"

    def start(self) -> None:
        self.tls = local_tls.ensure(self.data_dir / "tls")
        self.tls.trust_in_this_process()
        if self.azurite_connection is None:
            location = self.data_dir / "azurite" if self.persist_tables else None
            self._azurite = azurite.start(self.ports.azurite, location, self.data_dir / "azurite.log",
                                          queue_port=self.ports.azurite_queue)
            self.azurite_connection = self._azurite.connection_string
            self.queues_connection = self._azurite.queue_connection_string
        self.entra_secret = secrets.token_urlsafe(32)
        self.psc_secret = secrets.token_urlsafe(32)
        self.demo_client = RegisteredClient(
            client_id=DEMO_CLIENT_ID,
            client_name="Portail de démonstration",
            redirect_uris=(f"{self.demo_url}/callback",),
            post_logout_redirect_uris=(f"{self.demo_url}/",),
            secret=secrets.token_urlsafe(32),
            grant_types=("authorization_code", "refresh_token"),
            # The demo service shows that it was signed out by the broker (Back-Channel Logout 1.0).
            backchannel_logout_uri=f"{self.demo_url}/backchannel-logout" if self.queues_connection else None,
            backchannel_logout_session_required=True,
        )
        self.clients.insert(0, self.demo_client)
        os.environ.update(self.broker_environment())
        if self.telemetry_port is not None:
            self._start_telemetry(self.telemetry_port)
        self._start_servers()

    @property
    def telemetry_url(self) -> str | None:
        """The telemetry sink's page, when telemetry is on."""
        return next((server.url for server in self.servers if server.name == "telemetry"), None)

    def _start_telemetry(self, port: int) -> None:
        """The sink, and the broker's telemetry exported to it as the Functions worker exports it in Azure."""
        from sandbox import telemetry_sink
        from sanscouture.adapters import telemetry

        sink = telemetry_sink.TelemetrySink(self.data_dir / "telemetry.jsonl")
        self.servers.append(serve("telemetry", sink, port, self.tls))
        os.environ.update(telemetry_sink.exporter_environment(self.servers[-1].url))
        telemetry.configure_like_the_worker()
        telemetry_sink.keep_sandbox_logs_out()

    def registered_metadata(self) -> list[dict[str, Any]]:
        return [client.metadata() for client in self.clients] + self.extra_clients

    def broker_environment(self) -> dict[str, str]:
        """The BROKER_* settings of the sandbox's broker (what local.settings.json holds locally)."""
        from sandbox.entra_sim.personas import HOSPITAL_TENANT_ID

        clients = self.registered_metadata()
        return {
            "BROKER_ISSUER": self.broker_url,
            "BROKER_CLIENTS": json.dumps(clients),
            "BROKER_ENTRA_AUTHORITY": f"{self.entra_url}/organizations",
            "BROKER_ENTRA_CLIENT_ID": "sans-couture-broker",
            "BROKER_ENTRA_CLIENT_SECRET": self.entra_secret,
            "BROKER_ENTRA_ALLOWED_TENANTS": HOSPITAL_TENANT_ID,
            "BROKER_ENTRA_REQUIRED_ACRS": "c1",
            "BROKER_PSC_DISCOVERY_URL": (
                f"{self.psc_url}/auth/realms/esante-wallet/.well-known/wallet-openid-configuration"
            ),
            "BROKER_PSC_CLIENT_ID": "sans-couture-broker",
            # private_key_jwt: no secret (the broker refuses one beside it), its signing key instead.
            "BROKER_PSC_CLIENT_SECRET": self.psc_secret if self.psc_token_auth_method == "client_secret_basic" else "",
            "BROKER_PSC_TOKEN_AUTH_METHOD": self.psc_token_auth_method,
            "BROKER_TABLES_CONNECTION_STRING": self.azurite_connection or "",
            "BROKER_SIGNING_KEY_FILE": str(self.data_dir / "keys" / "signing-keys.json"),
            "BROKER_CA_BUNDLE": str(self.tls.bundle),
            **({"BROKER_QUEUES": self.queues_connection} if self.queues_connection else {}),
            **self.broker_overrides,
        }

    def _start_servers(self) -> None:
        # Imported here, once the BROKER_* environment is set: the broker reads it on first use.
        from functions import _wiring
        from sandbox.flex import FlexHost
        from sandbox.flex import FlexInstance
        from sandbox.host import FunctionsHost
        from sanscouture.adapters.keyfile import ensure_key_file
        from sanscouture.adapters.tables import Tables

        ensure_key_file(Path(os.environ["BROKER_SIGNING_KEY_FILE"]))
        Tables.from_connection_string(self.azurite_connection or "").create_all()
        self.broker_clock = MovableClock()
        _wiring.use_clock(self.broker_clock)

        tls_dir = self.tls.directory
        # The simulators and the demo service in processes of their own, as they are other machines in
        # Azure: started first, in parallel, while this process imports the broker.
        children = [
            processes.start_async("entra", "sandbox.run:entra_app", {
                "base_url": self.entra_url, "client_secret": self.entra_secret,
                "redirect_uris": (f"{self.broker_url}/callback",)}, self.ports.entra, tls_dir),
            processes.start_async("psc", "sandbox.run:psc_app", {
                "base_url": self.psc_url, "config": self._psc_registration()}, self.ports.psc, tls_dir),
            processes.start_async("demo", "sandbox.run:demo_app", {
                "base_url": self.demo_url, "issuer": self.broker_url, "client_id": self.demo_client.client_id,
                "client_secret": self.demo_client.secret or ""}, self.ports.demo, tls_dir),
        ]
        import function_app

        if self.queues_connection:
            # The queue triggers run as the Functions host runs them (host.json extensions.queues).
            from sandbox.queue_host import QueueHost

            self.queue_host = QueueHost(function_app.app, {"BROKER_QUEUES": self.queues_connection})
            self.queue_host.start()
        host = FunctionsHost(function_app.app, traced=self.telemetry_port is not None)
        for child in children:  # the broker answers only once its upstreams do
            self.servers.append(child.wait())
        # Served as one Flex Consumption instance serves it (concurrency and threads from the Bicep).
        flex = FlexHost(with_clock_control(host, self.broker_clock), FlexInstance.from_bicep())
        self.servers.append(serve("broker", flex, self.ports.broker, self.tls))

    def time_travel(self, seconds: int) -> AbstractContextManager[None]:
        """The broker's, Entra's and PSC's clocks ``seconds`` ahead for a ``with`` block."""
        return time_travel(self.broker_url, self.entra_url, self.psc_url, seconds)

    def _psc_registration(self) -> PscSimConfig:
        """The broker as ANS would register it with PSC, from the broker's own settings."""
        from sandbox import psc_sim

        env = self.broker_environment()
        method = env["BROKER_PSC_TOKEN_AUTH_METHOD"]
        return psc_sim.sandbox_config(
            client_id=env["BROKER_PSC_CLIENT_ID"],
            client_secret=env["BROKER_PSC_CLIENT_SECRET"],
            redirect_uris=(f"{self.broker_url}/pair/callback",),
            post_logout_redirect_uris=(f"{self.broker_url}/",),
            token_endpoint_auth_method=method,
            jwks_uri=f"{env['BROKER_ISSUER']}/jwks" if method == "private_key_jwt" else None,
            ca_bundle=str(self.tls.bundle),
        )

    def stop(self) -> None:
        if self.queue_host is not None:
            self.queue_host.stop()
            self.queue_host = None
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        if self._azurite is not None:
            self._azurite.stop()
            self._azurite = None


# Factories of the applications served in child processes (sandbox/processes.py): module-level, so that a
# spawned interpreter imports them by name; arguments are plain values.


def entra_app(base_url: str, client_secret: str, redirect_uris: tuple[str, ...]) -> Flask:
    """The Entra simulator with the broker's app registration; trusts the managed identity too, as the
    Bicep sets it up."""
    from sandbox import entra_sim

    config = entra_sim.sandbox_config(client_id="sans-couture-broker", client_secret=client_secret,
                                      redirect_uris=redirect_uris, base_url=base_url)
    return entra_sim.create_app(base_url, config)


def psc_app(base_url: str, config: PscSimConfig) -> Flask:
    """The PSC simulator with the broker registered as ANS would register it."""
    from sandbox import psc_sim

    return psc_sim.create_app(base_url, config)


def demo_app(base_url: str, issuer: str, client_id: str, client_secret: str) -> Flask:
    """The demo relying party."""
    from sandbox.demo import app as demo

    return demo.create_app(base_url=base_url, issuer=issuer, client_id=client_id, client_secret=client_secret)
