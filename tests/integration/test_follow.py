"""The follow loop on a real SQLite store: failures are logged and retried from the checkpoint
without skipping a batch, the backoff is capped, and the idle callback sets the wait."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput, OperationalError
from crm.eventstore.port import StreamState
from crm.eventstore.sqlite import SqliteEventStore
from crm.follow import Follower
from tests.contract.eventstore_contract import DEADLINE_SECONDS, ids, new_events, wait_until


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    event_store = SqliteEventStore(tmp_path / "events.db")
    yield event_store
    event_store.close()


class Consumer:
    """Handles batches into a list and a checkpoint; fails the first `failures` batches."""

    def __init__(self, failures: int = 0, fail_after_first_event: bool = False) -> None:
        self.failures = failures
        self.fail_after_first_event = fail_after_first_event
        self.position = 0
        self.handled: list[RecordedEvent] = []
        self.attempts: list[tuple[int, int]] = []
        self.idle_calls = 0
        self.idle_seconds = 0.05

    def handle(self, batch: list[RecordedEvent]) -> None:
        self.attempts.append((batch[0].global_position, batch[-1].global_position))
        for event in batch:
            if self.failures and (event is not batch[0] or not self.fail_after_first_event):
                self.failures -= 1
                raise RuntimeError("database is locked")
            self.handled.append(event)
            self.position = event.global_position  # moves event by event, as a fold would

    def idle(self) -> float:
        self.idle_calls += 1
        return self.idle_seconds


def run(follower: Follower) -> threading.Thread:
    thread = threading.Thread(target=follower.run, daemon=True)
    thread.start()
    return thread


def stop(follower: Follower, thread: threading.Thread) -> None:
    follower.stop()
    thread.join(DEADLINE_SECONDS)
    assert not thread.is_alive()


def follower_for(store: SqliteEventStore, consumer: Consumer, **options: float) -> Follower:
    return Follower(
        store,
        "test consumer",
        checkpoint=lambda: consumer.position,
        handle=consumer.handle,
        idle=consumer.idle,
        batch_size=3,
        first_backoff=options.get("first_backoff", 0.01),
        max_backoff=options.get("max_backoff", 0.05),
    )


def test_a_failing_batch_is_logged_and_retried_from_the_checkpoint_never_skipped(
    store: SqliteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    events = new_events(7)
    store.append("Case-1", events, StreamState.NO_STREAM)
    consumer = Consumer(failures=2, fail_after_first_event=True)
    follower = follower_for(store, consumer)
    with caplog.at_level(logging.ERROR, logger="crm.follow"):
        thread = run(follower)
        try:
            wait_until(lambda: len(consumer.handled) == 7, "every event")
        finally:
            stop(follower, thread)

    assert ids(consumer.handled) == [e.event_id for e in events]  # each once, in order
    # The first event of the failing batch was handled; the retry starts after it.
    assert consumer.attempts[:3] == [(1, 3), (2, 4), (3, 5)]
    failures = [r for r in caplog.records if r.name == "crm.follow"]
    assert len(failures) == 2
    message = failures[0].getMessage()
    assert "test consumer: events 1..3" in message
    assert events[0].event_id in message and events[2].event_id in message
    assert '"n"' not in message, "payloads never reach the log"
    assert failures[0].exc_info is not None


def test_a_failing_read_is_retried_from_the_checkpoint(
    store: SqliteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    events = new_events(4)
    store.append("Case-1", events, StreamState.NO_STREAM)
    consumer = Consumer()
    reads = 0
    read_all = store.read_all

    def flaky_read_all(after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        nonlocal reads
        reads += 1
        if reads in (2, 3):
            raise OperationalError("sqlite event store: disk I/O error")
        return read_all(after, limit)

    store.read_all = flaky_read_all  # type: ignore[method-assign]
    follower = follower_for(store, consumer)
    with caplog.at_level(logging.ERROR, logger="crm.follow"):
        thread = run(follower)
        try:
            wait_until(lambda: len(consumer.handled) == 4, "every event")
        finally:
            stop(follower, thread)
    assert ids(consumer.handled) == [e.event_id for e in events]
    messages = [r.getMessage() for r in caplog.records if r.name == "crm.follow"]
    assert len(messages) == 2
    assert "after position 3 failed" in messages[0]


def test_the_backoff_grows_is_jittered_and_capped(
    store: SqliteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.append("Case-1", new_events(1), StreamState.NO_STREAM)
    consumer = Consumer(failures=6)
    follower = follower_for(store, consumer, first_backoff=0.01, max_backoff=0.04)
    with caplog.at_level(logging.ERROR, logger="crm.follow"):
        thread = run(follower)
        try:
            wait_until(lambda: len(consumer.handled) == 1, "the event after six failures")
        finally:
            stop(follower, thread)
    follows = [r for r in caplog.records if r.name == "crm.follow"]
    delays = [r.args[-1] for r in follows if isinstance(r.args, tuple)]
    assert len(delays) == 6
    for delay, base in zip(delays, [0.01, 0.02, 0.04, 0.04, 0.04, 0.04], strict=True):
        assert isinstance(delay, float)
        assert base / 2 <= delay <= base


def test_stop_ends_a_backoff_at_once(store: SqliteEventStore) -> None:
    store.append("Case-1", new_events(1), StreamState.NO_STREAM)
    consumer = Consumer(failures=1)
    follower = follower_for(store, consumer, first_backoff=60.0, max_backoff=60.0)
    thread = run(follower)
    wait_until(lambda: consumer.attempts != [], "the failing attempt")
    started = time.monotonic()
    stop(follower, thread)
    assert time.monotonic() - started < 2.0
    assert consumer.handled == []


def test_idle_is_called_when_caught_up_and_its_answer_is_the_wait(
    store: SqliteEventStore,
) -> None:
    consumer = Consumer()
    consumer.idle_seconds = 0.01  # short: the loop comes back to idle again and again
    follower = follower_for(store, consumer)
    thread = run(follower)
    try:
        wait_until(lambda: consumer.idle_calls >= 5, "repeated idle calls")
        assert consumer.handled == []
        consumer.idle_seconds = 60.0  # long: only an append (or stop) ends the wait
        calls = consumer.idle_calls
        time.sleep(0.2)  # a window in which nothing may happen: no deadline to poll for
        assert consumer.idle_calls <= calls + 1
    finally:
        stop(follower, thread)


def test_a_failing_idle_callback_is_logged_and_retried(
    store: SqliteEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0
    done = threading.Event()

    def idle() -> float:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the clock is unavailable")
        done.set()
        return 60.0

    follower = Follower(
        store, "idle test", checkpoint=lambda: 0, handle=lambda batch: None, idle=idle
    )
    with caplog.at_level(logging.ERROR, logger="crm.follow"):
        thread = run(follower)
        try:
            assert done.wait(DEADLINE_SECONDS)
        finally:
            stop(follower, thread)
    (failure,) = [r for r in caplog.records if r.name == "crm.follow"]
    assert "idle test: reading, or idle work, after position 0 failed" in failure.getMessage()


def test_batch_size_must_be_positive(store: SqliteEventStore) -> None:
    with pytest.raises(InvalidInput) as raised:
        Follower(
            store,
            "x",
            checkpoint=lambda: 0,
            handle=lambda batch: None,
            idle=lambda: 1.0,
            batch_size=0,
        )
    assert raised.value.field == "batch_size"
