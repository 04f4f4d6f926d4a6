"""What only the PostgreSQL view store can show, on a real server: migrations applied once and in
place, a changed schema version emptying one projection's tables, processes opening and writing
one store together, waking another process's watchers, and opening it from a URL."""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import psycopg
import pytest

from crm.errors import InvalidInput, OperationalError
from projections.catalogue import PROJECTION_NAMES, TIMELINE, Batch, projection_named
from projections.store import postgres_cases, postgres_kpis, postgres_risk, postgres_timeline
from projections.store.factory import open_view_store
from projections.store.postgres import PostgresViewStore, projection_lock_key, projection_tables
from projections.store.postgres_schema import Migration
from tests.contract.test_postgres_viewstore import schema_url
from tests.contract.viewstore_contract import SOURCES
from tests.contract.viewstore_harness import all_views
from tests.contract.viewstore_stories import WEEK_CASES, WEEK_CUSTOMERS, week_story
from tests.integration.test_entrypoints import launch
from tests.postgres_server import load_local_postgres
from tests.support import stream_of

DEADLINE = 10.0
TABLES = {
    "timeline": postgres_timeline.TABLES,
    "case_views": postgres_cases.TABLES,
    "customer_risk": postgres_risk.TABLES,
    "kpi_facts": postgres_kpis.TABLES,
}
NEXT_RELEASE = {  # a later release's step: not idempotent, so applying it twice would fail
    "timeline": (
        Migration(
            "entries remember their channel's display name",
            ("ALTER TABLE timeline ADD COLUMN channel_name TEXT NOT NULL DEFAULT ''",),
        ),
    )
}


def _filled(url: str, batch: Batch) -> dict[str, object]:
    """A store at `url` with the batch applied from two sources; its views, then closed."""
    store = PostgresViewStore(url, pool_size=2)
    try:
        store.apply(batch[:20], source=SOURCES[1])
        store.apply(batch, source=SOURCES[2])
        return all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
    finally:
        store.close()


def _scalar(url: str, sql: str, *params: object) -> object:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def _count(url: str, table: str) -> int:
    return int(str(_scalar(url, f"SELECT COUNT(*) FROM {table}")))


def test_a_later_release_migrates_in_place_once_and_keeps_every_row(postgres_url: str) -> None:
    url = schema_url(postgres_url, "views")
    batch = week_story().batch
    before = _filled(url, batch)
    rows = {table: _count(url, table) for tables in TABLES.values() for table in tables}
    later = projection_tables(extra=NEXT_RELEASE)

    upgraded = PostgresViewStore(url, tables=later, pool_size=2)
    try:
        assert upgraded.migrated.applied == (("timeline", NEXT_RELEASE["timeline"][0].name),)
        assert upgraded.migrated.rebuilt == ()
        assert all_views(upgraded, WEEK_CUSTOMERS, WEEK_CASES) == before
        for source in SOURCES[1:]:
            assert {upgraded.checkpoint(name, source) for name in PROJECTION_NAMES} != {0}
    finally:
        upgraded.close()
    again = PostgresViewStore(url, tables=later, pool_size=2)  # nothing left to apply
    again.close()

    assert again.migrated.applied == ()
    assert {table: _count(url, table) for table in rows} == rows
    assert _scalar(url, "SELECT COUNT(*) FROM timeline WHERE channel_name = ''") == rows["timeline"]
    steps = _scalar(
        url,
        "SELECT array_agg(name ORDER BY step) FROM projection_migrations"
        " WHERE projection = 'timeline'",
    )
    assert steps == [m.name for m in postgres_timeline.MIGRATIONS + NEXT_RELEASE["timeline"]]


def test_code_older_than_the_stores_migrations_refuses_to_open(postgres_url: str) -> None:
    url = schema_url(postgres_url, "views")
    PostgresViewStore(url, tables=projection_tables(extra=NEXT_RELEASE), pool_size=2).close()

    with pytest.raises(OperationalError, match="projection timeline has 2 migrations applied"):
        PostgresViewStore(url, pool_size=2)
    renamed = {"timeline": (Migration("another step", NEXT_RELEASE["timeline"][0].statements),)}
    with pytest.raises(OperationalError, match="migration 2 is"):
        PostgresViewStore(url, tables=projection_tables(extra=renamed), pool_size=2)


@pytest.mark.parametrize("changed", PROJECTION_NAMES)
def test_a_changed_schema_version_empties_that_projections_tables_only(
    postgres_url: str, changed: str
) -> None:
    url = schema_url(postgres_url, "views")
    batch = week_story().batch
    _filled(url, batch)
    rows = {table: _count(url, table) for tables in TABLES.values() for table in tables}
    assert all(rows[table] > 0 for table in TABLES[changed])
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE projection_versions SET version = 0 WHERE projection = %s", (changed,))

    store = PostgresViewStore(url, pool_size=2)
    store.close()

    assert store.migrated.rebuilt == (changed,)
    for projection, tables in TABLES.items():
        for table in tables:
            assert _count(url, table) == (0 if projection == changed else rows[table]), table
    version = _scalar(url, "SELECT version FROM projection_versions WHERE projection = %s", changed)
    assert version == projection_named(changed).schema_version


def test_a_refilled_timeline_numbers_its_entries_after_every_number_handed_out_before(
    postgres_url: str,
) -> None:
    """A watch that saw sequence N before the timeline was emptied still sees the refill."""
    url = schema_url(postgres_url, "views")
    batch = week_story().batch
    _filled(url, batch)
    mark = int(str(_scalar(url, "SELECT MAX(seq) FROM timeline")))
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE projection_versions SET version = 0 WHERE projection = 'timeline'")
    first = PostgresViewStore(url, pool_size=2)
    try:
        assert first.timeline_watermark() == 0
        first.apply(batch)
        written = first.writers_after(mark, 1000)
    finally:
        first.close()
    assert len(written) == _count(url, "timeline") > 0


def test_stores_opened_together_migrate_once(postgres_url: str) -> None:
    url = schema_url(postgres_url, "views")
    opened: list[PostgresViewStore] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(PostgresViewStore(url, pool_size=1))
        except BaseException as exc:  # reported below, with the thread's error
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE * 3)
    for store in opened:
        store.close()

    assert failures == [] and len(opened) == 4
    steps = sum(len(tables.migrations) for tables in projection_tables())
    assert _scalar(url, "SELECT COUNT(*) FROM projection_migrations") == steps
    assert sum(len(store.migrated.applied) for store in opened) == steps


def test_writers_of_one_projection_in_parallel_build_the_views_one_writer_builds(
    postgres_url: str,
) -> None:
    """Several workers of one projection (Kafka partitions on different machines) each write a
    source of their own at the same time, and a case's events and its feedback arrive from
    different topics; the views equal those of one writer."""
    batch = week_story().batch
    straight_url = schema_url(postgres_url, "straight")
    url = schema_url(postgres_url, "parallel")
    expected = _filled(straight_url, batch)
    del expected["checkpoints"]
    sources: dict[str, Batch] = {}
    for recorded_event, event in batch:
        partition = WEEK_CUSTOMERS.index(recorded_event.metadata.customer_id) % 2
        source = f"crm.{stream_of(event).split('-')[0]}.v1#{partition}"
        sources[source] = [*sources.get(source, []), (recorded_event, event)]
    stores = [PostgresViewStore(url, pool_size=1) for _ in sources]
    failures: list[BaseException] = []

    def write(store: PostgresViewStore, source: str, events: Batch) -> None:
        try:
            for event in events:
                store.apply([event], source=source)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [
        threading.Thread(target=write, args=(store, source, events))
        for store, (source, events) in zip(stores, sources.items(), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE * 6)
    try:
        assert failures == []
        views = all_views(stores[0], WEEK_CUSTOMERS, WEEK_CASES)
        del views["checkpoints"]
        assert views == expected
    finally:
        for store in stores:
            store.close()


def _apply_when_told(url: str, go: EventType, applied: EventType) -> None:
    store = PostgresViewStore(url, pool_size=1)
    try:
        go.wait(DEADLINE)
        store.apply(week_story().batch[:5])
        applied.set()
    finally:
        store.close()


def test_a_batch_applied_in_another_process_wakes_this_ones_watchers(postgres_url: str) -> None:
    url = schema_url(postgres_url, "views")
    store = PostgresViewStore(url, pool_size=1)
    store.listen_across_processes()
    spawn = multiprocessing.get_context("spawn")  # no fork of a process full of threads
    go, applied = spawn.Event(), spawn.Event()
    writer = spawn.Process(target=_apply_when_told, args=(url, go, applied))
    writer.start()
    try:
        seen = store.change_generation
        go.set()
        deadline = time.monotonic() + DEADLINE * 3
        while store.change_generation == seen and time.monotonic() < deadline:
            store.wait_for_change(DEADLINE)
        assert store.change_generation != seen, "no wake from the other process's batch"
        assert applied.wait(DEADLINE)
        assert store.checkpoint(TIMELINE.name) == 5
    finally:
        writer.join(DEADLINE)
        store.close()


def test_open_view_store_from_a_postgresql_url(postgres_url: str) -> None:
    store = open_view_store(postgres_url)
    try:
        assert isinstance(store, PostgresViewStore)
        assert store.checkpoint(TIMELINE.name) == 0
    finally:
        store.close()
    port = load_local_postgres().free_port()
    for url in (f"postgresql://crm@127.0.0.1:{port}/crm", "postgresql://crm@host:nope/crm"):
        with pytest.raises(InvalidInput) as raised:
            open_view_store(url)
        assert raised.value.field == "read_store_url"


def test_a_writer_of_a_projection_waits_for_another_writers_commit_and_no_other(
    postgres_url: str,
) -> None:
    url = schema_url(postgres_url, "views")
    store = PostgresViewStore(url, pool_size=2)
    batch = week_story().batch
    done = {"timeline": threading.Event(), "case_views": threading.Event()}

    def apply(name: str) -> None:
        store.apply(batch, projections=[name])
        done[name].set()

    with psycopg.connect(url) as other:  # another writer of case_views, mid-transaction
        other.execute("SELECT pg_advisory_xact_lock(%s)", (projection_lock_key("case_views"),))
        waiting = threading.Thread(target=apply, args=("case_views",))
        waiting.start()
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and not _scalar(
            url, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ):
            done["case_views"].wait(0.05)
        assert not done["case_views"].is_set()
        assert store.checkpoint("case_views") == 0
        apply("timeline")  # not blocked
        other.rollback()
    waiting.join(DEADLINE)
    try:
        assert done["case_views"].is_set()
        assert store.checkpoint("case_views") == store.checkpoint("timeline") == len(batch)
    finally:
        store.close()


def test_a_listener_whose_connection_dropped_listens_again(postgres_url: str) -> None:
    url = schema_url(postgres_url, "views")
    store = PostgresViewStore(url, pool_size=1)
    writer = PostgresViewStore(url, pool_size=1)
    store.listen_across_processes()

    def changed_after(seen: int) -> bool:
        deadline = time.monotonic() + DEADLINE * 3
        while store.change_generation == seen and time.monotonic() < deadline:
            store.wait_for_change(DEADLINE)
        return store.change_generation != seen

    try:
        seen = store.change_generation
        with psycopg.connect(url, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'postgresql view store listener'"
            ).fetchone()
        assert dropped == (1,)
        assert changed_after(seen), "no wake on listening again"  # something may have changed
        seen = store.change_generation
        writer.apply(week_story().batch[:3])
        assert changed_after(seen), "no wake for a batch written after the drop"
    finally:
        writer.close()
        store.close()


def test_a_server_older_than_its_view_store_stops_at_start_with_one_line(
    postgres_url: str, tmp_path: Path
) -> None:
    PostgresViewStore(postgres_url, tables=projection_tables(extra=NEXT_RELEASE)).close()

    done = launch(
        "server",
        *("--read-store-url", postgres_url, "--listen", "127.0.0.1:0"),
        env={"CRM_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
    )

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"crm-server: --read-store-url / CRM_READ_STORE_URL: {postgres_url}: postgresql view"
        " store: projection timeline has 2 migrations applied, this code knows 1"
    ), done.stderr
