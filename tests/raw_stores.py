"""Test servers on SQLite or PostgreSQL stores, and SQL run on their event table behind the
system's back, as an intruder with database access would: one test, both adapters."""

from __future__ import annotations

import itertools
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crm.settings import Settings
from tests.postgres_server import PostgresServer

BACKENDS = ["sqlite", "postgresql"]
_DATABASES = itertools.count()


@dataclass(frozen=True)
class Backend:
    """Where a test server keeps its events and views: SQLite files in its data directory, or
    two PostgreSQL databases of the session's server."""

    kind: str
    data_dir: Path
    event_store_url: str = ""
    read_store_url: str = ""

    def settings(self, **more: Any) -> Settings:
        """The server's settings on these stores (more settings as given)."""
        urls = {}
        if self.kind == "postgresql":
            urls = {"event_store_url": self.event_store_url, "read_store_url": self.read_store_url}
        return Settings.defaults(data_dir=self.data_dir, **urls, **more)

    def serves(self, *stores: object) -> bool:
        """Whether the stores a server built are of this backend's kind (not a default)."""
        word = "postgres" if self.kind == "postgresql" else "sqlite"
        return all(word in type(store).__module__ for store in stores)

    def execute(self, sqlite_sql: str, postgres_sql: str = "", *params: Any) -> list[Any]:
        """Run one statement on the event store's own tables (`?` placeholders in either SQL;
        the PostgreSQL form defaults to the SQLite one); the rows it returns, if any."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.data_dir / "events.db") as raw:
                return raw.execute(sqlite_sql, params).fetchall()
        sql = (postgres_sql or sqlite_sql).replace("?", "%s")
        with psycopg.connect(self.event_store_url) as conn:
            cursor = conn.execute(sql, params)
            return [] if cursor.description is None else cursor.fetchall()


def backend_for(request: pytest.FixtureRequest, data_dir: Path) -> Backend:
    """The backend a fixture parametrized over BACKENDS stands for."""
    kind: str = request.param
    if kind == "sqlite":
        return Backend(kind, data_dir)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"raw_{os.getpid()}_{next(_DATABASES)}"
    return Backend(
        kind,
        data_dir,
        server.create_database(f"{name}_events"),
        server.create_database(f"{name}_views"),
    )
