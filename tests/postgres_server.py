"""The `postgres_server` and `postgres_url` fixtures: one real PostgreSQL for the whole session.

The server comes from `deploy/postgres/local_postgres.py` (loaded by path: `deploy/` is not a
package) and starts on the first test that asks for it; each test that wants a store gets a database
of its own (`postgres_url`), so tests never see each other's rows. Registered as a plugin by
tests/conftest.py.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

from tests.kafka_broker import note_start

LOCAL_POSTGRES = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "local_postgres.py"
_DATABASES = itertools.count(1)


def load_local_postgres() -> ModuleType:
    """Import deploy/postgres/local_postgres.py by its path, once per process."""
    name = "local_postgres"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LOCAL_POSTGRES)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LOCAL_POSTGRES}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class PostgresServer(Protocol):
    """What tests use of local_postgres.LocalPostgres (loaded by path, so spelled out here)."""

    port: int
    directory: Path

    @property
    def url(self) -> str: ...

    def create_database(self, name: str) -> str: ...

    def start(self, timeout: float = 60) -> None: ...

    def stop(self, timeout: float = 30) -> None: ...

    def kill(self) -> None: ...


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """A started PostgreSQL on a free port in a temp directory, stopped when the session ends."""
    local_postgres = load_local_postgres()
    started = time.monotonic()
    server: PostgresServer = local_postgres.LocalPostgres()
    server.start()
    seconds = time.monotonic() - started
    note_start(pytestconfig, f"postgresql started on port {server.port}", seconds)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database, for one test."""
    return postgres_server.create_database(f"test_{os.getpid()}_{next(_DATABASES)}")
