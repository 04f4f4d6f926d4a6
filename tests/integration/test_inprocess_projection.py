"""The in-process projector over real SQLite files: events in, views out.

Covers the runner: live views as events are appended, restart from the checkpoint, retry after a
failing apply, waiting for a position, rebuild-equals-live and refilling a dropped store. What
the view store itself must do (order, paging, filters, merges, redelivery, checkpoints) is the
view store contract's (tests/contract/viewstore_contract.py), run against every adapter.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from crm.errors import InvariantViolated
from crm.eventstore.port import EventStore
from crm.eventstore.postgres import PostgresEventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Channel
from projections.catalogue import PROJECTION_NAMES, TIMELINE, Batch
from projections.runner import InProcessProjector, rebuild
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC
from services.case.events import CaseClosed, CaseReopened
from tests.support import (
    EventLog,
    contact,
    merged,
    positions,
    snapshot,
    survey,
    two_customer_story,
    unmerged,
    whole_timeline,
)

DEADLINE = 10.0


@pytest.fixture
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EventStore]:
    """An SQLite file; a test parametrized with `indirect=["store"]` may ask for "postgresql"."""
    if getattr(request, "param", "sqlite") == "postgresql":
        event_store: EventStore = PostgresEventStore(request.getfixturevalue("postgres_url"))
    else:
        event_store = SqliteEventStore(tmp_path / "events.db")
    yield event_store
    event_store.close()


@pytest.fixture
def view_store(tmp_path: Path) -> Iterator[SqliteViewStore]:
    views = SqliteViewStore(tmp_path / "views.db")
    yield views
    views.close()


@pytest.fixture
def log(store: EventStore) -> EventLog:
    return EventLog(store)


@pytest.fixture
def projector(store: EventStore, view_store: SqliteViewStore) -> Iterator[InProcessProjector]:
    running = InProcessProjector(store, view_store, CODEC, poll_interval=0.05)
    running.start()
    yield running
    assert running.stop(DEADLINE)


# ---------------------------------------------------------------- restart and rebuild


def test_a_new_projector_continues_from_the_checkpoint(
    log: EventLog, store: SqliteEventStore, view_store: SqliteViewStore
) -> None:
    first = InProcessProjector(store, view_store, CODEC, batch_size=3, poll_interval=0.05)
    first.start()
    two_customer_story(log)
    assert first.wait_until(store.last_position(), DEADLINE)
    assert first.stop(DEADLINE)
    halfway = view_store.checkpoint(TIMELINE.name)

    log.record(contact("case-2", "ct-after", channel=Channel.SOCIAL))
    log.record(survey("f-after", "c-1", csat=4))
    assert view_store.checkpoint(TIMELINE.name) == halfway
    second = InProcessProjector(store, view_store, CODEC, poll_interval=0.05)
    second.start()
    try:
        assert second.wait_until(store.last_position(), DEADLINE)
    finally:
        assert second.stop(DEADLINE)

    entries = whole_timeline(view_store, "c-1") + whole_timeline(view_store, "c-2")
    ids = [entry.event_id for entry in entries]
    assert sorted(ids) == sorted(event.event_id for event in store.read_all())
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_rebuild_gives_the_same_views_as_live(
    tmp_path: Path, log: EventLog, view_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    two_customer_story(log)
    log.record_all(*merged("c-2", "c-1"))
    log.record(CaseReopened("case-1", "refund never came"))
    log.record_all(*unmerged("c-2", "c-1"), *merged("c-2", "c-1", "m-2"))
    log.record(CaseClosed("case-9", "customer asked"))
    assert projector.wait_until(log.store.last_position(), DEADLINE)
    live = snapshot(view_store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"])

    fresh = SqliteViewStore(tmp_path / "rebuilt.db")
    try:
        assert rebuild(log.store, fresh, CODEC, batch_size=4) == log.store.last_position()
        assert snapshot(fresh, ["c-1", "c-2"], ["case-1", "case-2", "case-9"]) == live
        with pytest.raises(InvariantViolated):
            rebuild(log.store, fresh, CODEC)
    finally:
        fresh.close()
    assert len(live[1]["c-1"]) > len(live[1]["c-2"])  # c-2 is merged into c-1 at the end


# ---------------------------------------------------------------- failures and waiting


class FlakyViewStore(SqliteViewStore):
    """Fails the first few applies, as a locked or unavailable database would."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.attempts = 0

    def apply(
        self,
        batch: Batch,
        source: str = "",
        projections: Sequence[str] = PROJECTION_NAMES,
        generation: int | None = None,
    ) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise RuntimeError("database is locked")
        super().apply(batch, source, projections, generation)


def test_a_failing_apply_is_logged_and_retried_not_skipped(
    tmp_path: Path, log: EventLog, store: SqliteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    mine = two_customer_story(log)
    flaky = FlakyViewStore(tmp_path / "flaky.db", failures=2)
    projector = InProcessProjector(store, flaky, CODEC, poll_interval=0.05)
    with caplog.at_level(logging.ERROR, logger="projections.runner"):
        projector.start()
        try:
            assert projector.wait_until(store.last_position(), DEADLINE)
        finally:
            assert projector.stop(DEADLINE)
            flaky.close()
    reopened = SqliteViewStore(tmp_path / "flaky.db")
    try:
        assert positions(whole_timeline(reopened, "c-1")) == mine["c-1"]
    finally:
        reopened.close()
    failures = [record for record in caplog.records if "failed" in record.getMessage()]
    assert len(failures) == 2
    first_id = store.read_all(limit=1)[0].event_id
    assert "events 1.." in failures[0].getMessage()
    assert first_id in failures[0].getMessage()


def test_wait_until_gives_up_at_the_deadline(
    view_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    assert not projector.wait_until(1, 0.05)
    assert projector.wait_until(0, 0.05)


def test_a_read_store_of_an_older_schema_is_rebuilt_from_the_events(
    tmp_path: Path, log: EventLog, store: SqliteEventStore
) -> None:
    two_customer_story(log)
    path = tmp_path / "old-views.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE case_views (case_id TEXT PRIMARY KEY, status TEXT)")
        old.execute("CREATE TABLE checkpoints (projection TEXT PRIMARY KEY, position INTEGER)")
        old.execute("INSERT INTO checkpoints VALUES ('views', 999)")
        old.execute("PRAGMA user_version = 1")
    views = SqliteViewStore(path)
    assert views.checkpoint(TIMELINE.name) == 0, "old views and their checkpoint are dropped"
    projector = InProcessProjector(store, views, CODEC, poll_interval=0.05)
    projector.start()
    try:
        assert projector.wait_until(store.last_position(), timeout=10)
    finally:
        projector.stop()
    fresh = SqliteViewStore(tmp_path / "fresh-views.db")
    rebuild(store, fresh, CODEC)
    for table in ("timeline", "case_views"):
        assert _rows(path, table) == _rows(tmp_path / "fresh-views.db", table)
    views.close()
    fresh.close()


def _rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
