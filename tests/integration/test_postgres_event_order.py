"""The PostgreSQL event store's global order has no gaps a follower could skip.

A table ordered by a sequence has a classic hole: a transaction that took position 7 may commit
after one that took position 8, and a follower that read 8 meanwhile moves its checkpoint past 7
for ever. The store allocates positions under a table lock held until commit (see
crm/eventstore/postgres.py), so a later writer waits instead of committing first. These tests
hold an append's transaction open after it has taken its position and show that later appends wait
and no reader sees past the held one; and they run writers in several processes against a reader
and check that the reader is handed exactly the committed events, each once, in position order.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import Counter
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

import psycopg
import pytest

from crm.envelope import verify_chain
from crm.errors import ConcurrencyConflict
from crm.eventstore.port import StreamState
from crm.eventstore.postgres import PostgresEventStore
from tests.contract.eventstore_contract import (
    DEADLINE_SECONDS,
    Following,
    ids,
    new_event,
    new_events,
    positions,
    wait_until,
)

GATE = 4242  # the advisory lock the held append waits on

_HOLD_SLOW_APPENDS = f"""
    CREATE FUNCTION hold_slow_appends() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.stream = 'Case-slow' THEN
            PERFORM pg_advisory_xact_lock_shared({GATE});
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER hold_slow_appends AFTER INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION hold_slow_appends();
"""


def _waiting(conn: psycopg.Connection[tuple[Any, ...]], wait_event: str) -> int:
    """How many of this database's backends wait on a lock of the given kind right now."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = %s",
        (wait_event,),
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def gate(postgres_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection holding the gate: appends to Case-slow stop after inserting, until released."""
    PostgresEventStore(postgres_url).close()  # the tables, before the trigger goes on them
    conn = psycopg.connect(postgres_url, autocommit=True)
    conn.execute(_HOLD_SLOW_APPENDS)
    conn.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    try:
        yield conn
    finally:
        conn.close()


def test_appends_after_a_held_one_wait_and_no_reader_sees_past_it(
    postgres_url: str, gate: psycopg.Connection[tuple[Any, ...]]
) -> None:
    slow_store = PostgresEventStore(postgres_url)
    later_stores = [
        PostgresEventStore(postgres_url) for _ in range(3)
    ]  # other processes, as it were
    reader = PostgresEventStore(postgres_url)
    first = new_events(2)
    slow_store.append("Case-early", first, StreamState.NO_STREAM)
    following = Following(reader, idle=0.02)
    errors: list[BaseException] = []

    def append(store: PostgresEventStore, stream: str) -> None:
        try:
            store.append(stream, [new_event()], StreamState.NO_STREAM)
        except BaseException as exc:  # reported below
            errors.append(exc)

    slow = threading.Thread(target=append, args=(slow_store, "Case-slow"), daemon=True)
    later = [
        threading.Thread(target=append, args=(store, f"Case-later-{n}"), daemon=True)
        for n, store in enumerate(later_stores)
    ]
    try:
        wait_until(lambda: len(following.received) == 2, "the events committed before")
        slow.start()
        # Position 3 is taken and its row inserted; the transaction now waits on the gate.
        wait_until(lambda: _waiting(gate, "advisory") == 1, "the slow append to hold")
        for thread in later:
            thread.start()
        wait_until(lambda: _waiting(gate, "relation") == 3, "the later appends to queue")
        # Nothing later can be read while position 3 is uncommitted: no reader can pass it.
        assert positions(reader.read_all()) == [1, 2]
        assert reader.last_position() == 2
        assert all(thread.is_alive() for thread in [slow, *later])
        assert positions(following.received) == [1, 2]
        gate.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        for thread in [slow, *later]:
            thread.join(DEADLINE_SECONDS)
        assert errors == []
        wait_until(lambda: len(following.received) == 6, "every event after the release")
    finally:
        following.stop()
        for store in [slow_store, *later_stores, reader]:
            store.close()
    everything = PostgresEventStore(postgres_url)
    try:
        recorded = everything.read_all()
    finally:
        everything.close()
    assert positions(recorded) == [1, 2, 3, 4, 5, 6]
    assert recorded[2].stream == "Case-slow"  # the held append kept the position it took
    assert ids(following.received) == ids(recorded)


Acknowledged = tuple[str, int]  # (event id, global position of the append's last event)
Contested = tuple[int, str, str]  # (revision attempted, "won" | "conflict" | "error: ...", id)


def _writer_process(
    url: str,
    writer: int,
    rounds: int,
    barrier: Barrier,
    results: Queue[tuple[list[str], list[Contested]]],
) -> None:
    """One writer process: each round, contend for the next revision of one shared stream, then
    append one to three events to streams of its own."""
    acknowledged: list[str] = []
    contested: list[Contested] = []
    store = PostgresEventStore(url)
    try:
        for revision in range(rounds):
            event = new_event(revision)
            try:
                barrier.wait(DEADLINE_SECONDS)
                expected = StreamState.NO_STREAM if revision == 0 else revision - 1
                store.append("Case-contested", [event], expected)
            except ConcurrencyConflict:
                contested.append((revision, "conflict", event.event_id))
            except Exception as exc:  # sent to the parent, which fails the test
                contested.append((revision, f"error: {exc!r}", event.event_id))
            else:
                contested.append((revision, "won", event.event_id))
                acknowledged.append(event.event_id)
            events = new_events(1 + (revision + writer) % 3)
            store.append(f"Case-{writer}-{revision % 4}", events, StreamState.ANY)
            acknowledged.extend(e.event_id for e in events)
    finally:
        store.close()
        results.put((acknowledged, contested))


def test_writers_in_several_processes_and_a_reader_agree_on_every_position(
    postgres_url: str,
) -> None:
    processes, rounds = 4, 25
    PostgresEventStore(postgres_url).close()  # the tables, before the race starts
    reader = PostgresEventStore(postgres_url)
    following = Following(reader, idle=0.05, batch_size=7)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Queue[tuple[list[str], list[Contested]]] = context.Queue()
    workers = [
        context.Process(target=_writer_process, args=(postgres_url, w, rounds, barrier, results))
        for w in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        reports = [results.get(timeout=120) for _ in workers]
    except queue.Empty:
        pytest.fail("a writer process reported nothing")
    finally:
        for worker in workers:
            worker.join(DEADLINE_SECONDS)
            if worker.is_alive():
                worker.kill()
    acknowledged = [event_id for ids_, _ in reports for event_id in ids_]
    contested = [outcome for _, outcomes in reports for outcome in outcomes]
    try:
        assert [o for o in contested if o[1].startswith("error")] == []
        wait_until(lambda: len(following.received) >= len(acknowledged), "the reader to catch up")
        total = reader.last_position()
    finally:
        following.stop()
        reader.close()
    # The reader was handed every committed position exactly once, in order, and nothing else.
    assert total == len(acknowledged)
    assert positions(following.received) == list(range(1, total + 1))
    assert sorted(ids(following.received)) == sorted(acknowledged)
    tally = Counter((revision, kind) for revision, kind, _ in contested)
    for revision in range(rounds):
        assert tally[(revision, "won")] == 1
        assert tally[(revision, "conflict")] == processes - 1
    winners = {revision: event_id for revision, kind, event_id in contested if kind == "won"}
    contested_events = [e for e in following.received if e.stream == "Case-contested"]
    assert ids(contested_events) == [winners[r] for r in range(rounds)]
    assert verify_chain(contested_events) == rounds
