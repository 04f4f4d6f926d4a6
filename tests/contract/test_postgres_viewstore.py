"""The PostgreSQL adapter against the shared view store contract, on a real server.

Each test gets a database of its own (`postgres_url`); each store a test opens lives in a schema
of its own in it (the URL's search_path), so a Hypothesis example's store starts empty without
the cost of a new database.
"""

from __future__ import annotations

import itertools
from urllib.parse import quote

import psycopg
import pytest

from projections.store.port import ViewStore
from projections.store.postgres import PostgresViewStore
from tests.contract.viewstore_contract import ViewStoreContract

_SCHEMAS = itertools.count(1)


def schema_url(database_url: str, schema: str) -> str:
    """The database URL with `schema` created and first on the search path."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return f"{database_url}?options={quote(f'-csearch_path={schema}')}"


class TestPostgresViewStore(ViewStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.database_url = postgres_url
        self.urls: dict[ViewStore, str] = {}

    def make_store(self) -> ViewStore:
        url = schema_url(self.database_url, f"views_{next(_SCHEMAS)}")
        store = PostgresViewStore(url, pool_size=2)
        self.urls[store] = url
        return store

    def reopen_store(self, store: ViewStore) -> ViewStore:
        again = PostgresViewStore(self.urls[store], pool_size=2)
        self.urls[again] = self.urls[store]
        return again

    def record_schema_version(self, store: ViewStore, projection: str, version: int) -> None:
        with psycopg.connect(self.urls[store], autocommit=True) as conn:
            conn.execute(
                "UPDATE projection_versions SET version = %s WHERE projection = %s",
                (version, projection),
            )
