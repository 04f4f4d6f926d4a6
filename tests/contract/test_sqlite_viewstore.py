"""The SQLite adapter against the shared view store contract, plus what only its file can show:
schema versions per projection, the file's layout version, and opening it from a URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crm.errors import InvalidInput
from projections.catalogue import PROJECTION_NAMES, TIMELINE, Batch
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from projections.store.sqlite import LAYOUT_VERSION, SqliteViewStore
from tests.contract.viewstore_contract import ViewStoreContract
from tests.contract.viewstore_harness import all_views
from tests.contract.viewstore_stories import WEEK_CASES, WEEK_CUSTOMERS, week_story
from tests.support import whole_timeline

SOURCES = ("", "crm.customer.v1#2")


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
def test_a_projection_of_another_schema_version_is_rebuilt_alone(
    tmp_path: Path, changed: str
) -> None:
    path = tmp_path / "views.db"
    batch = week_story().batch
    before = _filled(path, batch)
    empty_store = SqliteViewStore(tmp_path / "empty.db")
    empty = all_views(empty_store, WEEK_CUSTOMERS, WEEK_CASES)
    empty_store.close()
    with sqlite3.connect(path) as conn:  # as if the code's schema version had moved on
        conn.execute("UPDATE projection_versions SET version = 0 WHERE projection = ?", (changed,))
    emptied = {
        "timeline": {"timelines", "members"},
        "case_views": {"cases", "escalated"},
        "customer_risk": {"risk"},
        "kpi_facts": {"kpis"},
    }[changed]
    # Risk and retention read the timeline's merge links: without them c-9 counts apart.
    reads_merges = {"risk", "kpis"} if changed == "timeline" else set()

    store = SqliteViewStore(path)
    try:
        for source in SOURCES:
            for name in PROJECTION_NAMES:
                assert (store.checkpoint(name, source) == 0) == (name == changed), (name, source)
        after = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
        for view in after.keys() - {"checkpoints"} - reads_merges:
            assert after[view] == (empty[view] if view in emptied else before[view]), view
        assert before[next(iter(emptied))] != empty[next(iter(emptied))]

        store.apply(batch, source=SOURCES[1])  # refills only what was dropped
        refilled = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
    finally:
        store.close()
    assert {k: v for k, v in refilled.items() if k != "checkpoints"} == {
        k: v for k, v in before.items() if k != "checkpoints"
    }
    with sqlite3.connect(path) as conn:
        versions = dict(conn.execute("SELECT projection, version FROM projection_versions"))
    assert versions[changed] == 1


def test_a_rebuilt_projection_starts_with_empty_tables(tmp_path: Path) -> None:
    path = tmp_path / "views.db"
    _filled(path, week_story().batch)
    assert _count(path, "timeline") > 0 and _count(path, "customer_merges") > 0
    rows_elsewhere = {table: _count(path, table) for table in ("case_views", "kpi_contacts")}
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE projection_versions SET version = 0 WHERE projection = 'timeline'")

    SqliteViewStore(path).close()

    assert _count(path, "timeline") == 0
    assert _count(path, "customer_merges") == 0
    assert {table: _count(path, table) for table in rows_elsewhere} == rows_elsewhere


def test_a_file_of_an_older_layout_is_dropped_whole(tmp_path: Path) -> None:
    path = tmp_path / "views.db"
    _filled(path, week_story().batch)
    with sqlite3.connect(path) as conn:  # layout 5: one "views" projection, tables of its own
        conn.execute("CREATE TABLE read_model_meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO checkpoints (consumer, position) VALUES ('views', 999)")
        conn.execute("PRAGMA user_version = 5")

    store = SqliteViewStore(path)
    try:
        for name in PROJECTION_NAMES:
            for source in SOURCES:
                assert store.checkpoint(name, source) == 0
        assert all(whole_timeline(store, c) == [] for c in WEEK_CUSTOMERS)
        assert [store.case_view(case_id) for case_id in WEEK_CASES] == [None] * len(WEEK_CASES)
        assert store.timeline_watermark() == 0
    finally:
        store.close()
    assert "read_model_meta" not in _tables(path)
    assert _count(path, "checkpoints") == 0
    assert all(_count(path, table) == 0 for table in ("kpi_cases", "risk_cases", "timeline"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LAYOUT_VERSION


def test_open_view_store_from_a_url(tmp_path: Path) -> None:
    opened_store = open_view_store(f"sqlite:///{tmp_path}/nested/views.db")
    try:
        assert isinstance(opened_store, SqliteViewStore)
        assert opened_store.checkpoint(TIMELINE.name) == 0
    finally:
        opened_store.close()
    for url in ("postgres://localhost/crm", "sqlite:/x.db", "sqlite:///"):
        with pytest.raises(InvalidInput) as raised:
            open_view_store(url)
        assert raised.value.field == "read_store_url"
