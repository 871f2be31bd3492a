"""The Functions app registers every endpoint of docs/design.md, anonymous, and the two timers."""

from __future__ import annotations

import subprocess
import sys

import function_app
from sandbox.host import functions_of
from sandbox.host import routes_of

EXPECTED_ROUTES = {
    ".well-known/openid-configuration": {"GET"},
    ".well-known/wallet-openid-configuration": {"GET"},
    "jwks": {"GET"},
    "authorize": {"GET", "POST"},
    "choose": {"POST"},
    "callback": {"GET", "POST"},
    "pair": {"POST"},
    "pair/callback": {"GET"},
    "confirm": {"POST"},
    "token": {"GET", "POST"},
    "par": {"GET", "POST"},
    "userinfo": {"GET", "POST"},
    "logout": {"GET", "POST"},
    "compte": {"GET"},
    "compte/supprimer": {"GET", "POST"},
    "health": {"GET"},
    "assets/{name}": {"GET"},
}


def test_every_endpoint_is_registered_with_its_methods() -> None:
    routes = {route.template: set(route.methods) for route in routes_of(function_app.app)}
    assert routes == EXPECTED_ROUTES


def test_no_route_uses_the_prefix_the_functions_host_reserves() -> None:
    assert not any(route.startswith("admin") for route in EXPECTED_ROUTES)


def test_the_timers_sweep_every_quarter_hour_and_rotate_the_signing_key_monthly() -> None:
    functions = functions_of(function_app.app)
    timers = {f.get_function_name(): f.get_trigger().schedule for f in functions
              if f.get_trigger().get_binding_name() == "timerTrigger"}
    assert timers == {"sweep_expired_rows": "0 */15 * * * *", "rotate_signing_key": "0 0 3 1 * *"}


def test_mes_appairages_is_imported_on_first_use_not_on_the_cold_start() -> None:
    """functions/compte.py imports sanscouture.account lazily, like the pages' Jinja2."""
    code = "import sys, function_app; print(sorted(m for m in ('sanscouture.account', 'jinja2') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"


def test_the_table_sdk_requests_and_the_key_rotation_are_imported_on_first_use_not_on_the_cold_start() -> None:
    """The first request of a cold instance is most often an unauthenticated /authorize, which reads no row
    and calls nobody: the Table SDK and requests (about 12 MiB and a third of the import time) wait for the
    first request that needs them, the key rotation for its timer (bench/__main__.py prints both figures)."""
    heavy = ("azure.data.tables", "requests", "urllib3", "sanscouture.adapters.tables", "sanscouture.rotation")
    code = f"import sys, function_app; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"


def test_the_back_channel_logout_queue_trigger_reads_its_queue_on_the_broker_queues_connection() -> None:
    """Its connection is the identity-based BROKER_QUEUES that Bicep sets; the queue SDK is not imported
    on the cold start (only when the worker first sends or delivers)."""
    functions = functions_of(function_app.app)
    queues = {f.get_function_name(): (f.get_trigger().queue_name, f.get_trigger().connection) for f in functions
              if f.get_trigger().get_binding_name() == "queueTrigger"}
    assert queues == {"deliver_backchannel_logout": ("backchannel-logout", "BROKER_QUEUES")}
    code = "import sys, function_app; print(sorted(m for m in ('azure.storage.queue',) if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"
