"""Session-wide fixtures: the local TLS material and an in-memory Azurite for the whole test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import azurite
from sandbox import tls
from sandbox.servers import free_port


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> tls.LocalTls:
    """A CA and server certificate for this test run, trusted by requests in this process."""
    material = tls.ensure(Path(tmp_path_factory.mktemp("tls")))
    material.trust_in_this_process()
    return material


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[azurite.Azurite]:
    """Azurite's Table service in memory on a free port, for the whole session."""
    server = azurite.start(free_port())
    yield server
    server.stop()
