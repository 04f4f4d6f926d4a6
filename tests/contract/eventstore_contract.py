"""The event store conformance suite: written once, subclassed by every adapter's test module.

A subclass named `Test<Adapter>` provides `make_store()` returning a fresh, empty store.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm.envelope import GENESIS_HASH, EventMetadata, NewEvent, RecordedEvent, verify_chain
from crm.errors import ConcurrencyConflict, InvalidInput
from crm.eventstore.port import AppendResult, EventStore, RequestRecord, Snapshot, StreamState
from crm.follow import Follower
from crm.vocabulary import Actor, ActorKind
from tests.contract.seal_store_contract import SealStoreContract

DEADLINE_SECONDS = 10.0


def new_event(
    n: int = 0,
    *,
    customer_id: str = "cust-1",
    data: bytes | None = None,
    occurred_at: datetime | None = None,
    request_id: str = "req-1",
    command_digest: str = "digest-1",
) -> NewEvent:
    """A distinct event; the payload records `n` so tests can tell events apart."""
    return NewEvent(
        event_id=str(uuid.uuid4()),
        type="crm.test.SomethingHappened.v1",
        data=json.dumps({"n": n}).encode() if data is None else data,
        metadata=EventMetadata(
            customer_id=customer_id,
            occurred_at=occurred_at or datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=UTC),
            actor=Actor(ActorKind.AGENT, "agent-7"),
            correlation_id="corr-1",
            causation_id="cause-1",
            request_id=request_id,
            command_digest=command_digest,
        ),
    )


def request_events(request_id: str, digest: str, count: int = 1) -> list[NewEvent]:
    """Events one command appends: its request id and digest on each."""
    return [new_event(i, request_id=request_id, command_digest=digest) for i in range(count)]


def new_events(count: int, start: int = 0) -> list[NewEvent]:
    return [new_event(start + i) for i in range(count)]


def read_everything(store: EventStore, page: int = 1000) -> list[RecordedEvent]:
    """Every event of the store, following global positions page by page."""
    events: list[RecordedEvent] = []
    after = 0
    while batch := store.read_all(after=after, limit=page):
        events.extend(batch)
        after = batch[-1].global_position
    return events


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS) -> None:
    """Poll with a deadline rather than sleeping for a guessed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def ids(events: list[RecordedEvent]) -> list[str]:
    return [event.event_id for event in events]


def positions(events: list[RecordedEvent]) -> list[int]:
    return [event.global_position for event in events]


def assert_strictly_increasing(values: list[int]) -> None:
    assert all(a < b for a, b in itertools.pairwise(values)), values


class EventStoreContract(SealStoreContract, ABC):
    """What every event store adapter must do; subclasses only say how to make a store."""

    # Whether positions are dense (1, 2, 3 ... in commit order). The port promises only strictly
    # increasing ones; a store whose order comes from the server's log (KurrentDB's commit
    # positions) has gaps, and says so here.
    dense_positions = True

    @abstractmethod
    def make_store(self) -> EventStore:
        """A fresh, empty store for one test."""

    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    # --- appending and expected revisions ---------------------------------------------------

    def test_empty_store(self, store: EventStore) -> None:
        assert store.last_position() == 0
        assert store.read_all() == []

    def test_append_to_new_stream_with_no_stream(self, store: EventStore) -> None:
        events = new_events(2)
        result = store.append("Case-1", events, StreamState.NO_STREAM)
        recorded = store.read_stream("Case-1")
        assert ids(recorded) == [e.event_id for e in events]
        assert [e.revision for e in recorded] == [0, 1]
        assert [e.stream for e in recorded] == ["Case-1", "Case-1"]
        assert [e.data for e in recorded] == [e.data for e in events]
        assert [e.type for e in recorded] == [e.type for e in events]
        assert result == AppendResult("Case-1", 1, recorded[-1].global_position)
        assert recorded[0].global_position > 0

    def test_append_at_exact_expected_revision(self, store: EventStore) -> None:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        result = store.append("Case-1", [new_event(2)], 1)
        assert result.revision == 2
        result = store.append("Case-1", new_events(2, start=3), 2)
        assert result.revision == 4
        assert [e.revision for e in store.read_stream("Case-1")] == [0, 1, 2, 3, 4]

    @pytest.mark.parametrize("stale", [0, 2, 5])
    def test_wrong_expected_revision_conflicts_and_writes_nothing(
        self, store: EventStore, stale: int
    ) -> None:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        before, position = store.read_stream("Case-1"), store.last_position()
        with pytest.raises(ConcurrencyConflict, match="Case-1"):
            store.append("Case-1", new_events(2, start=2), stale)
        assert store.read_stream("Case-1") == before
        assert store.last_position() == position

    def test_expected_revision_on_missing_stream_conflicts(self, store: EventStore) -> None:
        with pytest.raises(ConcurrencyConflict):
            store.append("Case-1", [new_event()], 0)
        assert store.read_stream("Case-1") == []
        assert store.last_position() == 0

    def test_no_stream_on_existing_stream_conflicts(self, store: EventStore) -> None:
        store.append("Case-1", [new_event()], StreamState.NO_STREAM)
        with pytest.raises(ConcurrencyConflict):
            store.append("Case-1", [new_event(1)], StreamState.NO_STREAM)
        assert len(store.read_stream("Case-1")) == 1

    def test_any_appends_to_new_and_existing_streams(self, store: EventStore) -> None:
        assert store.append("Case-1", [new_event(0)], StreamState.ANY).revision == 0
        assert store.append("Case-1", new_events(2, start=1), StreamState.ANY).revision == 2
        assert [e.revision for e in store.read_stream("Case-1")] == [0, 1, 2]

    def test_empty_append_is_invalid_input(self, store: EventStore) -> None:
        with pytest.raises(InvalidInput) as caught:
            store.append("Case-1", [], StreamState.ANY)
        assert caught.value.field == "events"
        assert store.last_position() == 0

    def test_revisions_per_stream_and_positions_in_commit_order(self, store: EventStore) -> None:
        appended: list[NewEvent] = []
        results: list[tuple[AppendResult, NewEvent]] = []
        revisions = {"Case-a": -1, "Case-b": -1}
        for round_ in range(3):
            for stream in ("Case-a", "Case-b"):
                batch = new_events(round_ + 1, start=len(appended))
                result = store.append(stream, batch, StreamState.ANY)
                results.append((result, batch[-1]))
                appended.extend(batch)
                revisions[stream] += len(batch)
                assert result == AppendResult(stream, revisions[stream], result.global_position)
        assert_strictly_increasing([r.global_position for r, _ in results])
        everything = read_everything(store)
        assert ids(everything) == [e.event_id for e in appended]
        assert_strictly_increasing(positions(everything))
        for stream in ("Case-a", "Case-b"):
            recorded = store.read_stream(stream)
            assert [e.revision for e in recorded] == list(range(len(recorded)))
            assert_strictly_increasing(positions(recorded))
        # Each result points at the last event of its batch.
        by_position = {e.global_position: e.event_id for e in everything}
        assert [by_position[r.global_position] for r, _ in results] == [
            last.event_id for _, last in results
        ]

    # --- reading ------------------------------------------------------------------------------

    def test_read_stream_from_revision_and_limit(self, store: EventStore) -> None:
        events = new_events(6)
        store.append("Case-1", events, StreamState.NO_STREAM)
        store.append("Case-2", new_events(2), StreamState.NO_STREAM)
        assert ids(store.read_stream("Case-1", from_revision=4)) == [e.event_id for e in events[4:]]
        assert ids(store.read_stream("Case-1", 1, limit=3)) == [e.event_id for e in events[1:4]]
        assert ids(store.read_stream("Case-1", 5, limit=10)) == [events[5].event_id]
        assert store.read_stream("Case-1", from_revision=6) == []

    def test_unknown_stream_reads_empty(self, store: EventStore) -> None:
        store.append("Case-1", [new_event()], StreamState.NO_STREAM)
        assert store.read_stream("Case-unknown") == []

    def test_read_all_pages_cover_everything_exactly_once(self, store: EventStore) -> None:
        appended: list[str] = []
        for i in range(7):
            batch = new_events(3, start=3 * i)
            store.append(f"Case-{i % 3}", batch, StreamState.ANY)
            appended.extend(e.event_id for e in batch)
        for page in (1, 4, 21, 100):
            assert ids(read_everything(store, page=page)) == appended
        first_page = store.read_all(after=0, limit=5)
        assert len(first_page) == 5
        rest = store.read_all(after=first_page[-1].global_position, limit=1000)
        assert ids(first_page + rest) == appended
        assert store.read_all(after=store.last_position()) == []

    def test_last_position(self, store: EventStore) -> None:
        assert store.last_position() == 0
        first = store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        assert store.last_position() == first.global_position
        second = store.append("Case-2", [new_event(2)], StreamState.NO_STREAM)
        assert store.last_position() == second.global_position > first.global_position
        assert store.last_position() == read_everything(store)[-1].global_position

    # --- idempotent retries -------------------------------------------------------------------

    def test_reappend_same_events_returns_original_result(self, store: EventStore) -> None:
        batch = new_events(2)
        original = store.append("Case-1", batch, StreamState.NO_STREAM)
        store.append("Case-1", [new_event(2)], 1)
        store.append("Case-2", [new_event(3)], StreamState.NO_STREAM)
        before, position = read_everything(store), store.last_position()
        # The retry carries the expected revision of the first attempt, stale by now.
        assert store.append("Case-1", batch, StreamState.NO_STREAM) == original
        assert store.append("Case-1", batch, 5) == original
        assert store.append("Case-1", batch, StreamState.ANY) == original
        assert read_everything(store) == before
        assert store.last_position() == position

    def test_reappend_single_event_returns_original_result(self, store: EventStore) -> None:
        store.append("Case-1", [new_event(0)], StreamState.NO_STREAM)
        event = new_event(1)
        original = store.append("Case-1", [event], 0)
        store.append("Case-1", [new_event(2)], 1)
        assert store.append("Case-1", [event], 0) == original
        assert len(store.read_stream("Case-1")) == 3

    @pytest.mark.parametrize("variant", ["new_tail", "new_head", "reordered", "other_stream"])
    def test_partial_overlap_conflicts_and_writes_nothing(
        self, store: EventStore, variant: str
    ) -> None:
        a, b = new_event(0), new_event(1)
        store.append("Case-1", [a, b], StreamState.NO_STREAM)
        before, position = read_everything(store), store.last_position()
        stream, retry = {
            "new_tail": ("Case-1", [a, b, new_event(2)]),
            "new_head": ("Case-1", [new_event(2), a]),
            "reordered": ("Case-1", [b, a]),
            "other_stream": ("Case-2", [a, b]),
        }[variant]
        with pytest.raises(ConcurrencyConflict):
            store.append(stream, retry, StreamState.ANY)
        assert read_everything(store) == before
        assert store.last_position() == position

    # --- payloads, metadata and the hash chain ------------------------------------------------

    def test_large_payload_round_trips_byte_exact(self, store: EventStore) -> None:
        blob = base64.b64encode(os.urandom(1536 * 1024)).decode()
        data = json.dumps({"blob": blob, "text": "é€😀 \u0000 ñ"}, ensure_ascii=False).encode()
        assert len(data) > 2 * 1024 * 1024
        store.append("Case-1", [new_event(data=data)], StreamState.NO_STREAM)
        (recorded,) = store.read_stream("Case-1")
        assert recorded.data == data
        assert read_everything(store)[0].data == data

    def test_metadata_round_trips(self, store: EventStore) -> None:
        occurred = datetime(2023, 12, 31, 23, 59, 59, 987654, tzinfo=timezone(timedelta(hours=-5)))
        event = new_event(customer_id="cust-42", occurred_at=occurred)
        store.append("Case-1", [event], StreamState.NO_STREAM)
        (recorded,) = store.read_stream("Case-1")
        assert recorded.metadata == event.metadata
        assert recorded.metadata.occurred_at.utcoffset() == timedelta(hours=-5)
        assert recorded.metadata.occurred_at.isoformat() == occurred.isoformat()
        assert recorded.recorded_at.tzinfo is not None
        assert abs(datetime.now(UTC) - recorded.recorded_at) < timedelta(minutes=5)

    def test_hash_chain_links_events_and_verifies(self, store: EventStore) -> None:
        store.append("Case-1", new_events(3), StreamState.NO_STREAM)
        store.append("Case-2", new_events(2), StreamState.NO_STREAM)
        store.append("Case-1", new_events(2, start=3), 2)
        recorded = store.read_stream("Case-1")
        assert verify_chain(recorded) == 5
        assert verify_chain(store.read_stream("Case-2")) == 2
        assert recorded[0].previous_hash == GENESIS_HASH
        for earlier, later in itertools.pairwise(recorded):
            assert later.previous_hash == earlier.content_hash
        assert len({e.content_hash for e in recorded}) == 5

    # --- concurrency --------------------------------------------------------------------------

    def test_concurrent_writers_get_one_winner_per_revision(self, store: EventStore) -> None:
        writers, rounds = 8, 12
        barrier = threading.Barrier(writers, timeout=DEADLINE_SECONDS)
        lock = threading.Lock()
        winners: dict[int, list[str]] = defaultdict(list)
        conflicts: Counter[int] = Counter()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for revision in range(rounds):
                    barrier.wait()
                    event = new_event(revision)
                    expected = StreamState.NO_STREAM if revision == 0 else revision - 1
                    try:
                        result = store.append("Case-race", [event], expected)
                    except ConcurrencyConflict:
                        with lock:
                            conflicts[revision] += 1
                    else:
                        with lock:
                            winners[result.revision].append(event.event_id)
            except BaseException as exc:  # reported below, so a failing thread fails the test
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=write, daemon=True) for _ in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_SECONDS)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        assert {r: len(w) for r, w in winners.items()} == dict.fromkeys(range(rounds), 1)
        assert conflicts == Counter(dict.fromkeys(range(rounds), writers - 1))
        recorded = store.read_stream("Case-race")
        assert ids(recorded) == [winners[r][0] for r in range(rounds)]
        assert verify_chain(recorded) == rounds

    def test_reader_sees_every_event_while_writers_append(self, store: EventStore) -> None:
        writers, per_writer = 4, 20
        done = threading.Event()
        seen: list[RecordedEvent] = []
        errors: list[BaseException] = []

        def write(w: int) -> None:
            try:
                for i in range(per_writer):
                    store.append(f"Case-{w % 2}", [new_event(i)], StreamState.ANY)
            except BaseException as exc:  # reported below
                errors.append(exc)

        def read() -> None:
            try:
                after = 0
                while True:
                    finished = done.is_set()  # read before the page, so the last pass drains all
                    page = store.read_all(after=after, limit=7)
                    assert_strictly_increasing([after, *positions(page)])
                    seen.extend(page)
                    after = page[-1].global_position if page else after
                    if not page and finished:
                        return
                    if not page:
                        store.appended.wait(0.05)
            except BaseException as exc:  # reported below
                errors.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_SECONDS)
        done.set()
        reader.join(DEADLINE_SECONDS)
        assert not reader.is_alive()
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        everything = read_everything(store)
        assert len(everything) == writers * per_writer
        assert positions(seen) == positions(everything)
        assert ids(seen) == ids(everything)
        for stream in ("Case-0", "Case-1"):
            revisions = [e.revision for e in store.read_stream(stream)]
            assert revisions == list(range(2 * per_writer))

    # --- group commit: appends that arrive together -------------------------------------------

    def test_concurrent_appends_to_many_streams_commit_and_one_conflict_fails_alone(
        self, store: EventStore
    ) -> None:
        streams = 12
        for n in range(streams):
            store.append(f"Case-{n}", [new_event(n)], StreamState.NO_STREAM)
        before = store.last_position()
        barrier = threading.Barrier(streams, timeout=DEADLINE_SECONDS)
        lock = threading.Lock()
        results: dict[int, AppendResult | BaseException] = {}
        batches = {n: new_events(2, start=10 * n) for n in range(streams)}
        stale = 5  # stream 5 is appended with a revision it never had

        def write(n: int) -> None:
            outcome: AppendResult | BaseException
            try:
                barrier.wait()
                outcome = store.append(f"Case-{n}", batches[n], 7 if n == stale else 0)
            except BaseException as exc:  # compared below
                outcome = exc
            with lock:
                results[n] = outcome

        threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_SECONDS)
        assert not any(thread.is_alive() for thread in threads)
        assert isinstance(results.pop(stale), ConcurrencyConflict)
        assert len(store.read_stream(f"Case-{stale}")) == 1
        assert all(isinstance(r, AppendResult) and r.revision == 2 for r in results.values())
        for n in results:
            assert ids(store.read_stream(f"Case-{n}")[1:]) == [e.event_id for e in batches[n]]
        # Positions: commit order, no gap where the conflicting append was turned away.
        after = store.read_all(after=before)
        assert len(after) == 2 * (streams - 1)
        if self.dense_positions:
            assert positions(after) == list(range(before + 1, before + 1 + 2 * (streams - 1)))
        else:
            assert_strictly_increasing([before, *positions(after)])
        last_of = {r.global_position for r in results.values() if isinstance(r, AppendResult)}
        assert last_of == {e.global_position for e in after if e.revision == 2}

    # --- the request index ---------------------------------------------------------------------

    def test_an_unknown_request_has_no_record(self, store: EventStore) -> None:
        store.append("Case-1", request_events("req-a", "d-a"), StreamState.NO_STREAM)
        assert store.find_request("req-unknown") == []

    def test_an_append_records_its_request(self, store: EventStore) -> None:
        store.append("Case-1", request_events("req-0", "d-0"), StreamState.NO_STREAM)
        events = request_events("req-a", "d-a", count=2)
        result = store.append("Case-1", events, 0)
        assert store.find_request("req-a") == [
            RequestRecord(
                "req-a",
                "d-a",
                "Case-1",
                tuple(e.event_id for e in events),
                2,
                result.global_position,
            )
        ]

    def test_one_request_may_append_to_several_streams_with_one_digest(
        self, store: EventStore
    ) -> None:
        # A merge: the duplicate's stream first, then the survivor's.
        first = store.append("Customer-dup", request_events("merge", "d-m"), StreamState.ANY)
        store.append("Other", request_events("other", "d-o"), StreamState.ANY)
        second = store.append("Customer-survivor", request_events("merge", "d-m"), StreamState.ANY)
        records = store.find_request("merge")
        assert [(r.stream, r.command_digest) for r in records] == [
            ("Customer-dup", "d-m"),
            ("Customer-survivor", "d-m"),
        ]
        assert [r.global_position for r in records] == [
            first.global_position,
            second.global_position,
        ]

    @pytest.mark.parametrize("stream", ["Case-1", "Case-2"])
    def test_a_request_id_bound_to_another_command_is_refused_and_writes_nothing(
        self, store: EventStore, stream: str
    ) -> None:
        store.append("Case-1", request_events("req-a", "d-open"), StreamState.ANY)
        before, position = read_everything(store), store.last_position()
        with pytest.raises(ConcurrencyConflict, match="req-a"):
            store.append(stream, request_events("req-a", "d-note"), StreamState.ANY)
        assert read_everything(store) == before
        assert store.last_position() == position
        assert [r.command_digest for r in store.find_request("req-a")] == ["d-open"]

    def test_a_refused_append_leaves_no_request_record(self, store: EventStore) -> None:
        store.append("Case-1", request_events("req-a", "d-a"), StreamState.NO_STREAM)
        with pytest.raises(ConcurrencyConflict):
            store.append("Case-1", request_events("req-b", "d-b"), 5)
        assert store.find_request("req-b") == []
        # The id is still free: the same command succeeds once the revision is right.
        store.append("Case-1", request_events("req-b", "d-b"), 0)
        assert len(store.find_request("req-b")) == 1

    def test_a_replayed_append_leaves_its_request_record_unchanged(self, store: EventStore) -> None:
        events = request_events("req-a", "d-a", count=2)
        store.append("Case-1", events, StreamState.NO_STREAM)
        recorded = store.find_request("req-a")
        store.append("Case-1", events, StreamState.NO_STREAM)
        assert store.find_request("req-a") == recorded

    def test_events_without_a_request_id_are_not_indexed(self, store: EventStore) -> None:
        store.append("Case-1", request_events("", ""), StreamState.NO_STREAM)
        assert store.find_request("") == []

    # --- snapshots ----------------------------------------------------------------------------

    def test_a_stream_without_snapshot_reads_none(self, store: EventStore) -> None:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        assert store.read_snapshot("Case-1") is None

    def test_a_snapshot_round_trips_and_is_no_event(self, store: EventStore) -> None:
        events = new_events(3)
        store.append("Case-1", events, StreamState.NO_STREAM)
        before, position = read_everything(store), store.last_position()
        snapshot = Snapshot("Case-1", 2, events[2].event_id, 1, '{"state": "é"}'.encode())
        store.save_snapshot(snapshot)
        assert store.read_snapshot("Case-1") == snapshot
        assert read_everything(store) == before
        assert store.last_position() == position
        assert verify_chain(store.read_stream("Case-1")) == 3

    def test_a_saved_snapshot_replaces_the_one_kept_before(self, store: EventStore) -> None:
        events = new_events(4)
        store.append("Case-1", events, StreamState.NO_STREAM)
        at_3 = Snapshot("Case-1", 3, events[3].event_id, 1, b"three")
        store.save_snapshot(Snapshot("Case-1", 1, events[1].event_id, 1, b"one"))
        store.save_snapshot(at_3)
        assert store.read_snapshot("Case-1") == at_3
        newer_code = Snapshot("Case-1", 1, events[1].event_id, 2, b"refolded")
        store.save_snapshot(newer_code)
        assert store.read_snapshot("Case-1") == newer_code
        assert store.read_snapshot("Case-2") is None

    def test_a_snapshot_is_read_only_if_newer_than_the_readers_state(
        self, store: EventStore
    ) -> None:
        events = new_events(4)
        store.append("Case-1", events, StreamState.NO_STREAM)
        at_2 = Snapshot("Case-1", 2, events[2].event_id, 1, b"two")
        store.save_snapshot(at_2)
        assert store.read_snapshot("Case-1", after_revision=1) == at_2
        assert store.read_snapshot("Case-1", after_revision=2) is None
        assert store.read_snapshot("Case-1", after_revision=3) is None

    # --- following the global order (crm.follow, the loop every consumer runs) ---------------

    def test_following_catches_up_then_follows(self, store: EventStore) -> None:
        existing = new_events(3)
        store.append("Case-1", existing, StreamState.NO_STREAM)
        k = store.read_stream("Case-1")[0].global_position
        following = Following(store, after=k, idle=0.05)
        try:
            wait_until(lambda: len(following.received) >= 2, "the existing events")
            assert ids(following.received) == [e.event_id for e in existing[1:]]
            later = new_events(2, start=3)
            appender = threading.Thread(
                target=store.append, args=("Case-2", later, StreamState.NO_STREAM), daemon=True
            )
            appender.start()
            appender.join(DEADLINE_SECONDS)
            last = new_event(5)
            store.append("Case-1", [last], 2)
            wait_until(lambda: len(following.received) >= 5, "the events appended later")
            expected = [e.event_id for e in [*existing[1:], *later, last]]
            assert ids(following.received) == expected
            assert_strictly_increasing(positions(following.received))
            assert following.position == store.last_position()
        finally:
            following.stop()
        assert not following.thread.is_alive()
        assert len(following.received) == 5

    def test_following_wakes_on_an_append_without_waiting_out_the_idle_timeout(
        self, store: EventStore
    ) -> None:
        following = Following(store, idle=60.0)
        try:
            wait_until(lambda: following.idle_calls >= 1, "the follower to catch up and wait")
            started = time.monotonic()
            store.append("Case-1", new_events(1), StreamState.NO_STREAM)
            wait_until(lambda: len(following.received) == 1, "the append", timeout=5.0)
            assert time.monotonic() - started < 5.0
        finally:
            following.stop()

    def test_following_stops_promptly(self, store: EventStore) -> None:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        following = Following(store, idle=60.0)
        wait_until(lambda: len(following.received) == 2, "the existing events")
        wait_until(lambda: following.idle_calls >= 1, "the follower to wait for appends")
        started = time.monotonic()
        following.stop()
        assert not following.thread.is_alive()
        assert time.monotonic() - started < 2.0
        assert len(following.received) == 2


class Following:
    """A follow loop in a thread that collects what it is handed; its checkpoint is in memory."""

    def __init__(self, store: EventStore, *, after: int = 0, idle: float, batch_size: int = 500):
        self.received: list[RecordedEvent] = []
        self.position = after
        self.idle_calls = 0
        self.follower = Follower(
            store,
            "test follower",
            checkpoint=lambda: self.position,
            handle=self._handle,
            idle=self._idle(idle),
            batch_size=batch_size,
        )
        self.thread = threading.Thread(target=self.follower.run, daemon=True)
        self.thread.start()

    def _handle(self, batch: list[RecordedEvent]) -> None:
        self.received.extend(batch)
        self.position = batch[-1].global_position

    def _idle(self, seconds: float) -> Callable[[], float]:
        def idle() -> float:
            self.idle_calls += 1
            return seconds

        return idle

    def stop(self) -> None:
        self.follower.stop()
        self.thread.join(DEADLINE_SECONDS)
