"""The SQLite adapter against the shared view store contract, plus what only its file can show:
a rebuilt projection's tables, the file's layout version, and opening it from a URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crm.errors import InvalidInput
from projections.catalogue import PROJECTION_NAMES, TIMELINE, Batch
from projections.store import sqlite_cases, sqlite_kpis, sqlite_risk, sqlite_timeline
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from projections.store.sqlite import LAYOUT_VERSION, SqliteViewStore
from tests.contract.viewstore_contract import ViewStoreContract
from tests.contract.viewstore_harness import all_views
from tests.contract.viewstore_stories import WEEK_CASES, WEEK_CUSTOMERS, week_story

SOURCES = ("", "crm.customer.v1#2")
TABLES = {
    "timeline": sqlite_timeline.TABLES,
    "case_views": sqlite_cases.TABLES,
    "customer_risk": sqlite_risk.TABLES,
    "kpi_facts": sqlite_kpis.TABLES,
}


class TestSqliteViewStore(ViewStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path
        self.paths: dict[ViewStore, Path] = {}

    def make_store(self) -> ViewStore:
        path = self.directory / f"views-{len(self.paths)}.db"
        store = SqliteViewStore(path)
        self.paths[store] = path
        return store

    def reopen_store(self, store: ViewStore) -> ViewStore:
        again = SqliteViewStore(self.paths[store])
        self.paths[again] = self.paths[store]
        return again

    def record_schema_version(self, store: ViewStore, projection: str, version: int) -> None:
        with sqlite3.connect(self.paths[store]) as conn:
            conn.execute(
                "UPDATE projection_versions SET version = ? WHERE projection = ?",
                (version, projection),
            )


class TestSqliteViewStoreInALaterGeneration(TestSqliteViewStore):
    """The whole contract again with every projection served by its second generation: the
    generation's table names reach every query and every write."""

    def make_store(self) -> ViewStore:
        store = super().make_store()
        for name in PROJECTION_NAMES:
            building = store.begin_generation(name)
            store.switch(name, building, lambda after, upto: [])
            store.drop_generation(name, building - 1)
        return store


def _filled(path: Path, batch: Batch) -> dict[str, object]:
    """A store at `path` with the batch applied from two sources; its views, then closed."""
    store = SqliteViewStore(path)
    try:
        store.apply(batch[:20], source=SOURCES[0])
        store.apply(batch, source=SOURCES[1])
        return all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
    finally:
        store.close()


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(row[0]) for row in rows}


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize("changed", PROJECTION_NAMES)
def test_a_rebuilt_projection_starts_with_empty_tables_and_the_others_keep_their_rows(
    tmp_path: Path, changed: str
) -> None:
    path = tmp_path / "views.db"
    _filled(path, week_story().batch)
    rows = {table: _count(path, table) for tables in TABLES.values() for table in tables}
    assert all(rows[table] > 0 for table in TABLES[changed])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE projection_versions SET version = 0 WHERE projection = ?", (changed,))

    SqliteViewStore(path).close()

    for projection, tables in TABLES.items():
        for table in tables:
            assert _count(path, table) == (0 if projection == changed else rows[table]), table


def test_a_file_of_an_older_layout_is_dropped_whole(tmp_path: Path) -> None:
    path = tmp_path / "views.db"
    with sqlite3.connect(path) as conn:  # layout 5: one "views" projection, its own tables
        conn.execute("CREATE TABLE checkpoints (projection TEXT PRIMARY KEY, position INTEGER)")
        conn.execute("INSERT INTO checkpoints VALUES ('views', 999)")
        conn.execute(
            "CREATE TABLE feedback_signals (feedback_id TEXT PRIMARY KEY, customer_id TEXT,"
            " case_id TEXT, reason TEXT, global_position INTEGER)"
        )
        conn.execute("INSERT INTO feedback_signals VALUES ('f-1', 'c-1', '', 'poor_score', 3)")
        conn.execute("CREATE TABLE case_views (case_id TEXT PRIMARY KEY, view TEXT)")
        conn.execute("INSERT INTO case_views VALUES ('case-1', '{}')")
        conn.execute("PRAGMA user_version = 5")
    batch = week_story().batch

    store = SqliteViewStore(path)
    try:
        assert {store.checkpoint(name) for name in PROJECTION_NAMES} == {0}
        assert store.case_view("case-1") is None
        assert store.customer_risk("c-1").latest_feedback_reason == ""
        store.apply(batch)  # the new layout works: checkpoints per consumer and source
        assert {store.checkpoint(name) for name in PROJECTION_NAMES} == {len(batch)}
    finally:
        store.close()
    assert "feedback_signals" not in _tables(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LAYOUT_VERSION
        assert (
            conn.execute("SELECT COUNT(*) FROM checkpoints WHERE consumer = 'views'").fetchone()[0]
            == 0
        )


def test_open_view_store_from_a_url(tmp_path: Path) -> None:
    opened_store = open_view_store(f"sqlite:///{tmp_path}/nested/views.db")
    try:
        assert isinstance(opened_store, SqliteViewStore)
        assert opened_store.checkpoint(TIMELINE.name) == 0
    finally:
        opened_store.close()
    for url in ("pg://localhost/crm", "sqlite:/x.db", "sqlite:///"):
        with pytest.raises(InvalidInput) as raised:
            open_view_store(url)
        assert raised.value.field == "read_store_url"


def test_a_query_that_read_the_old_generation_finishes_on_it_after_the_switch_and_drop(
    tmp_path: Path,
) -> None:
    """A query's read transaction is one WAL snapshot: one that resolved the old generation
    just before the switch reads its tables whole, even if they are dropped meanwhile."""
    path = tmp_path / "views.db"
    batch = week_story().batch
    store = SqliteViewStore(path)
    store.apply(batch)
    before = _count(path, "timeline")
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT * FROM projection_generations").fetchall() == []
        building = store.begin_generation("timeline")
        store.switch("timeline", building, lambda after, upto: [])
        store.drop_generation("timeline", building - 1)

        entries = reader.execute("SELECT COUNT(*) FROM timeline").fetchone()[0]
        reader.execute("ROLLBACK")
        assert entries == before > 0
        assert "timeline" not in _tables(path)
    finally:
        reader.close()
        store.close()
