"""The PostgreSQL adapter against the shared view store contract, on a real server.

Every store the suite opens lives in a schema of its own (the URL's search_path) in one database
for this module: as empty and as apart from the others as a new database, without copying a
template database for each of the suite's several hundred stores (a copy, and the server's
flushing of it at shutdown, cost more than the tests themselves on a busy disk).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

from projections.catalogue import PROJECTION_NAMES
from projections.store.port import ViewStore
from projections.store.postgres import PostgresViewStore
from tests.contract.viewstore_contract import ViewStoreContract
from tests.contract.viewstore_stories import week_story
from tests.postgres_server import PostgresServer

_SCHEMAS = itertools.count(1)


def schema_url(database_url: str, schema: str) -> str:
    """The database URL with `schema` created and first on the search path."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return f"{database_url}?options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(scope="module")
def views_database(postgres_server: PostgresServer) -> str:
    """One database for the module's stores, each in its own schema."""
    return postgres_server.create_database(f"views_contract_{os.getpid()}")


class TestPostgresViewStore(ViewStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, views_database: str) -> None:
        self.database_url = views_database
        self.urls: dict[ViewStore, str] = {}
        self.schemas: dict[str, str] = {}  # url -> its schema

    def make_store(self) -> ViewStore:
        schema = f"views_{next(_SCHEMAS)}"
        url = schema_url(self.database_url, schema)
        self.schemas[url] = schema
        store = PostgresViewStore(url, pool_size=2)
        self.urls[store] = url
        return store

    def reopen_store(self, store: ViewStore) -> ViewStore:
        again = PostgresViewStore(self.urls[store], pool_size=2)
        self.urls[again] = self.urls[store]
        return again

    @contextmanager
    def scratch_store(self) -> Iterator[ViewStore]:
        """As the harness's, then the schema dropped: a property opens a hundred stores, and
        the server's files of dropped tables need no flushing when it stops."""
        with super().scratch_store() as store:
            url = self.urls[store]
            yield store
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {self.schemas[url]} CASCADE")

    def record_schema_version(self, store: ViewStore, projection: str, version: int) -> None:
        with psycopg.connect(self.urls[store], autocommit=True) as conn:
            conn.execute(
                "UPDATE projection_versions SET version = %s WHERE projection = %s",
                (version, projection),
            )


class TestPostgresViewStoreInALaterGeneration(TestPostgresViewStore):
    """The whole contract again with every projection served by its second generation (schemas
    of their own, generation 1's tables dropped): the generation reaches every query and write."""

    def make_store(self) -> ViewStore:
        store = super().make_store()
        for name in PROJECTION_NAMES:
            building = store.begin_generation(name)
            store.switch(name, building, lambda after, upto: [])
            store.drop_generation(name, building - 1)
        return store


def test_a_query_that_read_the_old_generation_finishes_on_it_before_the_drop(
    views_database: str,
) -> None:
    """A query that resolved the old generation just before the switch reads its tables whole:
    dropping them waits until every transaction that read the generations has ended."""
    url = schema_url(views_database, "views_drop_wait")
    store = PostgresViewStore(url, pool_size=2)
    store.apply(week_story().batch)
    dropped = threading.Event()
    try:
        with psycopg.connect(url) as reader:
            reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            assert reader.execute("SELECT * FROM projection_generations").fetchall() == []
            building = store.begin_generation("timeline")
            store.switch("timeline", building, lambda after, upto: [])

            def drop() -> None:
                store.drop_generation("timeline", building - 1)
                dropped.set()

            dropping = threading.Thread(target=drop)
            dropping.start()
            row = reader.execute("SELECT COUNT(*) FROM timeline").fetchone()
            finished_first = not dropped.is_set()
            reader.rollback()
            dropping.join(30)
        assert row is not None and row[0] > 0
        assert finished_first and dropped.is_set()
        with psycopg.connect(url) as conn:
            gone = conn.execute("SELECT to_regclass('views_drop_wait.timeline')").fetchone()
        assert gone == (None,)
    finally:
        store.close()
