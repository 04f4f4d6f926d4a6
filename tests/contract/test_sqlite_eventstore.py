"""The SQLite adapter against the shared event store contract, plus what only a file can show."""

from __future__ import annotations

import multiprocessing
import os
import queue
import sqlite3
import threading
from collections import Counter
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from crm.envelope import verify_chain
from crm.errors import ConcurrencyConflict, IntegrityError, InvalidInput, OperationalError
from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore, Snapshot, StreamState
from crm.eventstore.sqlite import LAYOUT_VERSION, SqliteEventStore
from tests.contract.eventstore_contract import (
    DEADLINE_SECONDS,
    EventStoreContract,
    Following,
    ids,
    new_event,
    new_events,
    request_events,
    wait_until,
)

Outcome = tuple[int, str, str]  # (revision attempted, "won" | "conflict" | "error: ...", event id)


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    def make_store(self) -> EventStore:
        return SqliteEventStore(self.directory / "events.db")


def _process_writer(
    path: str, rounds: int, barrier: Barrier, results: Queue[list[Outcome]]
) -> None:
    """One competing process: at each round, try to append the next revision."""
    outcomes: list[Outcome] = []
    store = SqliteEventStore(path)
    try:
        for revision in range(rounds):
            event = new_event(revision)
            try:
                barrier.wait(DEADLINE_SECONDS)
                expected = StreamState.NO_STREAM if revision == 0 else revision - 1
                store.append("Case-race", [event], expected)
            except ConcurrencyConflict:
                outcomes.append((revision, "conflict", event.event_id))
            except Exception as exc:  # sent to the parent, which fails the test
                outcomes.append((revision, f"error: {exc!r}", event.event_id))
            else:
                outcomes.append((revision, "won", event.event_id))
    finally:
        store.close()
        results.put(outcomes)


def test_many_processes_get_one_winner_per_revision(tmp_path: Path) -> None:
    processes, rounds = 4, 8
    path = str(tmp_path / "events.db")
    SqliteEventStore(path).close()  # create the file and schema before the race starts
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Queue[list[Outcome]] = context.Queue()
    workers = [
        context.Process(target=_process_writer, args=(path, rounds, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [o for _ in workers for o in results.get(timeout=60)]
    except queue.Empty:
        pytest.fail("a writer process reported nothing")
    finally:
        for worker in workers:
            worker.join(DEADLINE_SECONDS)
            if worker.is_alive():
                worker.kill()
    assert [o for o in outcomes if o[1].startswith("error")] == []
    tally = Counter((revision, kind) for revision, kind, _ in outcomes)
    for revision in range(rounds):
        assert tally[(revision, "won")] == 1
        assert tally[(revision, "conflict")] == processes - 1
    winners = {revision: event_id for revision, kind, event_id in outcomes if kind == "won"}
    store = SqliteEventStore(path)
    try:
        recorded = store.read_stream("Case-race")
        assert ids(recorded) == [winners[r] for r in range(rounds)]
        assert verify_chain(recorded) == rounds
    finally:
        store.close()


def test_events_survive_close_and_reopen(tmp_path: Path) -> None:
    events = new_events(3)
    store = SqliteEventStore(tmp_path / "events.db")
    result = store.append("Case-1", events, StreamState.NO_STREAM)
    before = store.read_all()
    store.close()
    reopened = SqliteEventStore(tmp_path / "events.db")
    try:
        assert reopened.read_all() == before
        assert reopened.last_position() == result.global_position
        assert reopened.append("Case-1", events, StreamState.NO_STREAM) == result
        assert reopened.append("Case-1", [new_event(3)], 2).revision == 3
        assert verify_chain(reopened.read_stream("Case-1")) == 4
    finally:
        reopened.close()


def test_positions_start_at_one_and_have_no_gaps(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    try:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        with pytest.raises(ConcurrencyConflict):
            store.append("Case-1", [new_event(2)], 0)
        store.append("Case-2", new_events(2), StreamState.NO_STREAM)
        assert [e.global_position for e in store.read_all()] == [1, 2, 3, 4]
    finally:
        store.close()


def test_binary_payload_round_trips(tmp_path: Path) -> None:
    data = bytes(range(256)) * 64 + b"\x00" + os.urandom(4096)
    store = SqliteEventStore(tmp_path / "events.db")
    try:
        store.append("Case-1", [new_event(data=data)], StreamState.NO_STREAM)
        assert store.read_stream("Case-1")[0].data == data
    finally:
        store.close()


def test_tampering_is_detected_by_the_hash_chain(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    try:
        store.append("Case-1", new_events(3), StreamState.NO_STREAM)
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE events SET data = ? WHERE revision = 1", (b'{"n": 99}',))
        with pytest.raises(IntegrityError, match="Case-1 is broken at revision 1 "):
            verify_chain(store.read_stream("Case-1"))
    finally:
        store.close()


def test_following_sees_appends_from_another_store_on_the_same_file(tmp_path: Path) -> None:
    follower = SqliteEventStore(tmp_path / "events.db")
    writer = SqliteEventStore(tmp_path / "events.db")
    following = Following(follower, idle=0.02)  # another store's appends are polled
    try:
        events = new_events(2)
        writer.append("Case-1", events, StreamState.NO_STREAM)
        wait_until(lambda: len(following.received) == 2, "events written through the other store")
        assert ids(following.received) == [e.event_id for e in events]
    finally:
        following.stop()
        follower.close()
        writer.close()
    assert not following.thread.is_alive()


def test_closed_store_raises_operational_error(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    store.close()
    with pytest.raises(OperationalError):
        store.read_all()


def test_negative_expected_revision_is_invalid_input(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    try:
        with pytest.raises(InvalidInput) as caught:
            store.append("Case-1", [new_event()], -1)
        assert caught.value.field == "expected"
    finally:
        store.close()


def test_factory_opens_relative_sqlite_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_event_store("sqlite:///data/nested/events.db")
    try:
        assert isinstance(store, SqliteEventStore)
        store.append("Case-1", [new_event()], StreamState.NO_STREAM)
    finally:
        store.close()
    assert (tmp_path / "data" / "nested" / "events.db").is_file()


def test_factory_opens_absolute_sqlite_path(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "events.db"
    url = f"sqlite:///{path}"
    assert url.startswith("sqlite:////")
    store = open_event_store(url)
    try:
        store.append("Case-1", [new_event()], StreamState.NO_STREAM)
    finally:
        store.close()
    assert path.is_file()


@pytest.mark.parametrize(
    "url", ["mysql://localhost/crm", "events.db", "sqlite:///", "sqlite://events.db", ""]
)
def test_factory_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(InvalidInput, match="sqlite:///") as caught:
        open_event_store(url)
    assert caught.value.field == "event_store_url"


def _as_written_before_the_request_index(path: Path) -> None:
    """Turn a file back into layout 0: the events table alone."""
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE request_index")
        raw.execute("DROP TABLE snapshots")
        raw.execute("PRAGMA user_version = 0")


def test_opening_an_older_file_builds_the_request_index_from_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    appends = [
        ("Customer-dup", request_events("merge", "d-merge")),
        ("Case-1", request_events("open", "d-open", count=2)),
        ("Customer-survivor", request_events("merge", "d-merge")),
        ("Case-1", request_events("note", "d-note")),
        ("Case-2", request_events("", "")),
    ]
    for stream, events in appends:
        store.append(stream, events, StreamState.ANY)
    indexed = {r: store.find_request(r) for r in ("merge", "open", "note")}
    store.close()
    _as_written_before_the_request_index(path)

    reopened = SqliteEventStore(path)
    try:
        assert {r: reopened.find_request(r) for r in indexed} == indexed
        assert [r.stream for r in indexed["merge"]] == ["Customer-dup", "Customer-survivor"]
        with pytest.raises(ConcurrencyConflict):  # the rebuilt index still binds the id
            reopened.append("Case-3", request_events("open", "d-other"), StreamState.ANY)
    finally:
        reopened.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == LAYOUT_VERSION


def test_an_older_file_that_reused_a_request_id_keeps_each_streams_digest(tmp_path: Path) -> None:
    """Before the index, a request id could be reused on another stream; opening such a file
    must not fail, and each stream keeps the command it recorded."""
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    store.append("Case-1", request_events("reused", "d-open"), StreamState.ANY)
    store.close()
    with sqlite3.connect(path) as raw:  # what the old code let through, written by hand
        raw.execute("DELETE FROM request_index")
    store = SqliteEventStore(path)
    store.append("Case-2", request_events("reused", "d-note"), StreamState.ANY)
    store.close()
    _as_written_before_the_request_index(path)

    reopened = SqliteEventStore(path)
    try:
        records = reopened.find_request("reused")
        assert [(r.stream, r.command_digest) for r in records] == [
            ("Case-1", "d-open"),
            ("Case-2", "d-note"),
        ]
    finally:
        reopened.close()


def test_appends_waiting_for_the_writer_share_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the file's write lock
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            store.append(f"Case-{n}", [new_event(n)], StreamState.NO_STREAM)
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        first = threading.Thread(target=append, args=(0,), daemon=True)
        first.start()
        # The first append becomes the writer and waits for the lock; seven more queue behind it.
        wait_until(lambda: store.commits.writing, "the first append to wait as the writer")
        others = [threading.Thread(target=append, args=(n,), daemon=True) for n in range(1, 8)]
        for thread in others:
            thread.start()
        wait_until(lambda: store.commits.queued == 7, "seven queued appends")
        before = store.commits.transactions
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    for thread in [first, *others]:
        thread.join(DEADLINE_SECONDS)
    try:
        assert errors == []
        assert store.commits.transactions - before == 2  # the first alone, then the seven
        assert [e.global_position for e in store.read_all()] == list(range(1, 9))
    finally:
        store.close()


def test_a_snapshot_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    events = new_events(2)
    store.append("Case-1", events, StreamState.NO_STREAM)
    snapshot = Snapshot("Case-1", 1, events[1].event_id, 3, b"{}")
    store.save_snapshot(snapshot)
    store.close()
    reopened = SqliteEventStore(path)
    try:
        assert reopened.read_snapshot("Case-1") == snapshot
    finally:
        reopened.close()


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_store_file_lost_while_open_fails_appends_and_tells_listeners(
    tmp_path: Path, how: str
) -> None:
    """An open connection would go on writing to the old inode; nothing may be acknowledged."""
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    told: list[str] = []
    store.on_unavailable(told.append)
    store.append("case-1", new_events(1), StreamState.NO_STREAM)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        SqliteEventStore(path).close()
    try:
        with pytest.raises(OperationalError, match=rf"events\.db was {how}"):
            store.append("case-1", new_events(1, start=1), 0)
        assert len(told) == 1 and str(path) in told[0]
    finally:
        store.close()
