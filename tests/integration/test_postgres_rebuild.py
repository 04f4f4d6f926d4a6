"""Rebuilding projections into PostgreSQL: large batches with the views kept in memory between
them give exactly the rows live processing writes, also when another writer moves the same
projections meanwhile."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest

from bench.history import HistoryWriter
from crm.eventstore.sqlite import SqliteEventStore
from projections.runner import decode_batch, rebuild
from projections.store import remembered
from projections.store.postgres import PostgresViewStore, projection_tables
from services.bootstrap import CODEC
from tests.contract.test_postgres_viewstore import schema_url


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteEventStore]:
    """A realistic history (bench.history): merges, feedback, reopenings, refusals."""
    store = SqliteEventStore(tmp_path_factory.mktemp("history") / "events.db")
    HistoryWriter(store, seed=5).write(600)
    yield store
    store.close()


def live(store: SqliteEventStore, url: str) -> None:
    """The views as the in-process projector builds them: small batches, nothing kept."""
    views = PostgresViewStore(url, pool_size=1)
    position = 0
    while events := store.read_all(after=position, limit=50):
        views.apply(decode_batch(CODEC, events))
        position = events[-1].global_position
    views.close()


def rows(url: str) -> dict[str, list[str]]:
    """Every view table's rows as sorted JSON, without the timeline's writing order (`seq`)."""
    names = [name for tables in projection_tables() for name in tables.tables]
    with psycopg.connect(url) as conn:
        return {
            name: sorted(
                json.dumps(row[0], sort_keys=True)
                for row in conn.execute(f"SELECT to_jsonb(t) - 'seq' FROM {name} t")
            )
            for name in names
        }


def test_a_rebuild_that_forgets_most_of_what_it_kept_equals_live(
    history: SqliteEventStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    live(history, live_url := schema_url(postgres_url, "live"))
    monkeypatch.setattr(remembered, "CAPACITY", 3)  # most views are read back from the tables
    rebuilt_url = schema_url(postgres_url, "rebuilt")
    views = PostgresViewStore(rebuilt_url, pool_size=1)
    try:
        assert rebuild(history, views, CODEC, batch_size=37) == history.last_position()
    finally:
        views.close()
    expected = rows(live_url)
    assert all(expected[name] for name in ("timeline", "case_views", "kpi_cases"))
    assert rows(rebuilt_url) == expected


def test_views_written_by_another_writer_meanwhile_are_not_trusted_from_memory(
    history: SqliteEventStore, postgres_url: str
) -> None:
    live(history, live_url := schema_url(postgres_url, "live"))
    url = schema_url(postgres_url, "shared")
    rebuilding = PostgresViewStore(url, pool_size=1)
    other = PostgresViewStore(url, pool_size=1)
    events = decode_batch(CODEC, history.read_all(after=0, limit=100_000))
    third = len(events) // 3
    try:
        with rebuilding.replaying():
            rebuilding.apply(events[:third])
            other.apply(events[third : 2 * third])  # moves every projection past what was kept
            rebuilding.apply(events[2 * third :])
    finally:
        rebuilding.close()
        other.close()
    assert rows(url) == rows(live_url)
