"""The in-process projector over real SQLite files: events in, timelines and case views out.

Covers global order, paging, filters, merges (including chains and undo), idempotent redelivery,
restart from the checkpoint, retry after a failing apply, and rebuild-equals-live.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from crm.errors import InvalidInput, InvariantViolated
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Channel
from projections.catalogue import PROJECTION_NAMES, TIMELINE, Batch
from projections.runner import InProcessProjector, decode_batch, rebuild
from projections.store.factory import open_view_store
from projections.store.queries import TimelinePage, TimelineQuery
from projections.store.sqlite import SqliteViewStore
from projections.timeline import TimelineEntry
from services.bootstrap import CODEC
from services.case.events import (
    CaseClosed,
    CaseOpened,
    CaseReopened,
    CaseStatus,
    ContactRecorded,
)
from tests.support import (
    T0,
    EventLog,
    contact,
    merged,
    opened,
    positions,
    registered,
    snapshot,
    survey,
    two_customer_story,
    unmerged,
    whole_timeline,
)

DEADLINE = 10.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    event_store = SqliteEventStore(tmp_path / "events.db")
    yield event_store
    event_store.close()


@pytest.fixture
def read_store(tmp_path: Path) -> Iterator[SqliteViewStore]:
    views = SqliteViewStore(tmp_path / "views.db")
    yield views
    views.close()


@pytest.fixture
def log(store: SqliteEventStore) -> EventLog:
    return EventLog(store)


@pytest.fixture
def projector(store: SqliteEventStore, read_store: SqliteViewStore) -> Iterator[InProcessProjector]:
    running = InProcessProjector(store, read_store, CODEC, poll_interval=0.05)
    running.start()
    yield running
    assert running.stop(DEADLINE)


# ---------------------------------------------------------------- live timeline and case view


def test_timeline_in_global_order_across_profile_cases_and_feedback(
    log: EventLog, read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    mine = two_customer_story(log)
    assert projector.wait_until(log.store.last_position(), DEADLINE)

    oldest_first = whole_timeline(read_store, "c-1")
    newest_first = whole_timeline(read_store, "c-1", newest_first=True)

    assert positions(oldest_first) == mine["c-1"]
    assert positions(newest_first) == mine["c-1"][::-1]
    assert positions(whole_timeline(read_store, "c-2")) == mine["c-2"]
    assert {entry.customer_id for entry in oldest_first} == {"c-1"}
    assert [entry.kind.value for entry in oldest_first[:4]] == [
        "customer",
        "case",
        "contact",
        "contact",
    ]
    assert oldest_first[5].summary == "Case transferred from billing to technical"
    assert oldest_first[5].actor == "agent:a-17"


def test_case_view_is_kept_up_to_date(
    log: EventLog, read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    two_customer_story(log)
    assert projector.wait_until(log.store.last_position(), DEADLINE)

    view = read_store.case_view("case-1")

    assert view is not None
    assert (view.customer_id, view.status, view.department) == (
        "c-1",
        CaseStatus.RESOLVED,
        "technical",
    )
    assert (view.contact_count, view.transfer_count) == (2, 1)
    assert view.first_response_at == T0 + timedelta(minutes=30)
    assert view.resolved_at is not None
    assert read_store.case_view("no-such-case") is None


# ---------------------------------------------------------------- paging and filters


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("page_size", [1, 4, 5, 100])
def test_paging_covers_every_entry_exactly_once(
    log: EventLog, read_store: SqliteViewStore, newest_first: bool, page_size: int
) -> None:
    log.record(registered("c-1"))
    log.record(opened("case-1", "c-1"))
    for n in range(18):
        log.record(contact("case-1", f"ct-{n}"))
    rebuild(log.store, read_store, CODEC)
    expected = positions(whole_timeline(read_store, "c-1", newest_first=newest_first))
    assert len(expected) == 20

    seen: list[int] = []
    pages: list[TimelinePage] = []
    token = ""
    while True:
        query = TimelineQuery("c-1", page_size, token, newest_first=newest_first)
        pages.append(read_store.timeline(query))
        seen += positions(pages[-1].entries)
        token = pages[-1].next_page_token
        if not token:
            break

    assert seen == expected
    assert all(len(page.entries) == page_size for page in pages[:-1])
    assert len(pages) == -(-20 // page_size)


def test_a_malformed_page_token_is_invalid_input(read_store: SqliteViewStore) -> None:
    with pytest.raises(InvalidInput) as raised:
        read_store.timeline(TimelineQuery("c-1", page_token="not-a-token"))
    assert raised.value.field == "page_token"


def test_filters_by_channel_kind_case_and_time(
    log: EventLog, read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    two_customer_story(log)
    assert projector.wait_until(log.store.last_position(), DEADLINE)
    everything = whole_timeline(read_store, "c-1")

    def matching(**filters: Any) -> list[TimelineEntry]:
        return whole_timeline(read_store, "c-1", **filters)

    phone = matching(channels=frozenset({"phone"}))
    assert {entry.channel for entry in phone} == {"phone"}
    assert len(phone) == 2  # case-1 opened on the phone, one phone contact
    chat_or_email = matching(channels=frozenset({"chat", "email"}))
    assert [entry.channel for entry in chat_or_email] == ["chat", "email", "chat"]
    feedback = matching(kinds=frozenset({"feedback"}))
    assert [entry.summary for entry in feedback] == ["CSAT 2/5 survey received by email"]
    contacts = matching(kinds=frozenset({"contact", "customer"}))
    assert {entry.kind.value for entry in contacts} == {"contact", "customer"}
    assert len(contacts) == 6
    case_2 = matching(case_id="case-2")
    assert [entry.event_type for entry in case_2] == [
        CaseOpened.TYPE,
        ContactRecorded.TYPE,
    ]
    assert matching(case_id="case-1", kinds=frozenset({"feedback"})) == feedback

    since, until = everything[3].occurred_at, everything[6].occurred_at
    window = matching(since=since, until=until)
    assert window == everything[3:6]  # since inclusive, until exclusive
    assert matching(since=since) == everything[3:]
    assert matching(until=until) == everything[:6]
    tokyo = since.astimezone(timezone(timedelta(hours=9)))
    assert matching(since=tokyo, until=until) == window


# ---------------------------------------------------------------- merges


def test_merged_customers_show_both_histories_and_undo_separates_them(
    log: EventLog, read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    survivor = [log.record(registered("c-1")).global_position]
    duplicate = [log.record(registered("c-9", "H. Yamada")).global_position]
    duplicate.append(log.record(opened("case-9", "c-9", channel=Channel.EMAIL)).global_position)
    survivor.append(log.record(opened("case-1", "c-1")).global_position)
    merge_dup, merge_surv = (log.record(event).global_position for event in merged("c-9", "c-1"))
    survivor.append(log.record(contact("case-1", "ct-1")).global_position)
    assert projector.wait_until(log.store.last_position(), DEADLINE)

    together = sorted([*survivor, *duplicate, merge_dup, merge_surv])
    assert positions(whole_timeline(read_store, "c-1")) == together
    assert positions(whole_timeline(read_store, "c-9")) == [*duplicate, merge_dup]
    watched = read_store.entries_after("c-1", duplicate[0], 3)
    assert positions(watched) == together[2:5]
    assert all(entry.customer_id == "c-9" for entry in whole_timeline(read_store, "c-1")[1:3])

    undo_dup, undo_surv = (log.record(event).global_position for event in unmerged("c-9", "c-1"))
    assert projector.wait_until(log.store.last_position(), DEADLINE)

    assert positions(whole_timeline(read_store, "c-1")) == sorted(
        [*survivor, merge_surv, undo_surv]
    )
    assert positions(whole_timeline(read_store, "c-9")) == [*duplicate, merge_dup, undo_dup]


def test_chain_merges_resolve_recursively(
    log: EventLog, read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    own = {cid: log.record(registered(cid)).global_position for cid in ("c-a", "c-b", "c-c")}
    # Recorded directly (the customer service refuses this order): A -> B, then B -> C.
    for event in [*merged("c-a", "c-b", "m-1"), *merged("c-b", "c-c", "m-2")]:
        log.record(event)
    assert projector.wait_until(log.store.last_position(), DEADLINE)

    on_c = {entry.customer_id for entry in whole_timeline(read_store, "c-c")}
    on_b = {entry.customer_id for entry in whole_timeline(read_store, "c-b")}
    assert on_c == {"c-a", "c-b", "c-c"}
    assert on_b == {"c-a", "c-b"}
    assert own["c-a"] in positions(whole_timeline(read_store, "c-c"))

    log.record_all(*unmerged("c-a", "c-b", "m-1"))
    assert projector.wait_until(log.store.last_position(), DEADLINE)

    assert {entry.customer_id for entry in whole_timeline(read_store, "c-c")} == {"c-b", "c-c"}
    assert {entry.customer_id for entry in whole_timeline(read_store, "c-a")} == {"c-a"}


# ---------------------------------------------------------------- idempotence and restart


def row_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM timeline").fetchone()[0])


def test_redelivering_a_batch_changes_nothing(
    tmp_path: Path, log: EventLog, read_store: SqliteViewStore
) -> None:
    two_customer_story(log)
    events = log.store.read_all()
    first, second = decode_batch(CODEC, events[:9]), decode_batch(CODEC, events[9:])
    read_store.apply(first)
    read_store.apply(second)
    before = snapshot(read_store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"])

    read_store.apply(second)
    read_store.apply(first)
    read_store.apply([*first[4:], *second[:3]])

    assert snapshot(read_store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"]) == before
    assert before[0] == events[-1].global_position
    assert row_count(tmp_path / "views.db") == len(events)


def test_a_duplicate_event_never_doubles_a_timeline_row(
    tmp_path: Path, log: EventLog, read_store: SqliteViewStore
) -> None:
    two_customer_story(log)
    batch = decode_batch(CODEC, log.store.read_all())
    read_store.apply(batch)
    with sqlite3.connect(tmp_path / "views.db") as conn:
        conn.execute("DELETE FROM checkpoints")  # as if the checkpoint were lost

    read_store.apply(batch)

    assert row_count(tmp_path / "views.db") == len(batch)


def test_a_new_projector_continues_from_the_checkpoint(
    log: EventLog, store: SqliteEventStore, read_store: SqliteViewStore
) -> None:
    first = InProcessProjector(store, read_store, CODEC, batch_size=3, poll_interval=0.05)
    first.start()
    two_customer_story(log)
    assert first.wait_until(store.last_position(), DEADLINE)
    assert first.stop(DEADLINE)
    halfway = read_store.checkpoint(TIMELINE.name)

    log.record(contact("case-2", "ct-after", channel=Channel.SOCIAL))
    log.record(survey("f-after", "c-1", csat=4))
    assert read_store.checkpoint(TIMELINE.name) == halfway
    second = InProcessProjector(store, read_store, CODEC, poll_interval=0.05)
    second.start()
    try:
        assert second.wait_until(store.last_position(), DEADLINE)
    finally:
        assert second.stop(DEADLINE)

    entries = whole_timeline(read_store, "c-1") + whole_timeline(read_store, "c-2")
    ids = [entry.event_id for entry in entries]
    assert sorted(ids) == sorted(event.event_id for event in store.read_all())
    assert len(set(ids)) == len(ids)


def test_rebuild_gives_the_same_views_as_live(
    tmp_path: Path, log: EventLog, read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    two_customer_story(log)
    log.record_all(*merged("c-2", "c-1"))
    log.record(CaseReopened("case-1", "refund never came"))
    log.record_all(*unmerged("c-2", "c-1"), *merged("c-2", "c-1", "m-2"))
    log.record(CaseClosed("case-9", "customer asked"))
    assert projector.wait_until(log.store.last_position(), DEADLINE)
    live = snapshot(read_store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"])

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
        self, batch: Batch, source: str = "", projections: Sequence[str] = PROJECTION_NAMES
    ) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise RuntimeError("database is locked")
        super().apply(batch, source, projections)


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
    read_store: SqliteViewStore, projector: InProcessProjector
) -> None:
    assert not projector.wait_until(1, 0.05)
    assert projector.wait_until(0, 0.05)


def test_wait_for_change_wakes_on_notify(read_store: SqliteViewStore) -> None:
    woke = threading.Event()

    def watch() -> None:
        read_store.wait_for_change(DEADLINE)
        woke.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    while not woke.is_set():
        read_store.notify_changed()
        woke.wait(0.01)
    watcher.join(DEADLINE)
    assert woke.is_set()


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
