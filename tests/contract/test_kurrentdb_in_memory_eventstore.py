"""The KurrentDB adapter against the shared event store contract, on an in-memory server.

No KurrentDB server can run here, so this runs the adapter's own logic (request index bindings,
idempotent retries, the hash chain, positions, following) against tests/kurrentdb_fake.py, which
behaves as the server is documented to. It proves the adapter right on those assumptions; the
run against a real server (test_kurrentdb_eventstore.py) is what proves the assumptions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm.envelope import verify_chain
from crm.errors import ConcurrencyConflict, IntegrityError, InvalidInput, OperationalError
from crm.eventstore import kurrentdb_watch
from crm.eventstore.kurrentdb import KurrentDBEventStore
from crm.eventstore.port import EventStore, Snapshot, StreamState
from tests.contract.eventstore_contract import (
    EventStoreContract,
    Following,
    ids,
    new_events,
    request_events,
    wait_until,
)
from tests.kurrentdb_fake import FIRST_POSITION, FakeKurrentDB


class TestKurrentDBAdapterInMemory(EventStoreContract):
    dense_positions = False  # commit positions of the server's log: increasing, with gaps

    def make_store(self) -> EventStore:
        return KurrentDBEventStore(FakeKurrentDB())


@pytest.fixture
def server() -> FakeKurrentDB:
    return FakeKurrentDB()


@pytest.fixture
def store(server: FakeKurrentDB) -> Iterator[KurrentDBEventStore]:
    store = KurrentDBEventStore(server)
    try:
        yield store
    finally:
        store.close()


def test_an_append_cut_off_after_binding_is_completed_by_its_retry(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    store.append("Case-1", request_events("req-0", "d-0"), StreamState.NO_STREAM)
    events = request_events("req-a", "d-a", count=2)
    server.unavailable_for.add(store.names.server("Case-1"))
    with pytest.raises(OperationalError):
        store.append("Case-1", events, 0)
    # The binding is written, the events are not: the index must not report them.
    assert store.find_request("req-a") == []
    # Until the retry, the pending binding holds its ids for that stream and revision.
    server.unavailable_for.clear()
    with pytest.raises(ConcurrencyConflict, match="pending"):
        store.append("Case-2", events, StreamState.ANY)
    result = store.append("Case-1", events, 0)
    assert result.revision == 2
    (record,) = store.find_request("req-a")
    assert record.event_ids == tuple(e.event_id for e in events)
    assert (record.revision, record.global_position) == (2, result.global_position)
    assert store.append("Case-1", events, 0) == result
    assert ids(store.read_stream("Case-1"))[1:] == [e.event_id for e in events]


def test_a_pending_binding_is_void_once_another_append_takes_its_revision(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    events = request_events("req-a", "d-a")
    server.unavailable_for.add(store.names.server("Case-1"))
    with pytest.raises(OperationalError):
        store.append("Case-1", events, StreamState.NO_STREAM)
    server.unavailable_for.clear()
    store.append("Case-1", request_events("req-b", "d-b"), StreamState.NO_STREAM)
    # req-a's binding named revision 0, which req-b's event holds now: it can never land, so
    # its request id and event ids are free again.
    assert store.find_request("req-a") == []
    result = store.append("Case-2", events, StreamState.NO_STREAM)
    assert [(r.stream, r.global_position) for r in store.find_request("req-a")] == [
        ("Case-2", result.global_position)
    ]
    store.append("Case-3", request_events("req-a", "d-a"), StreamState.NO_STREAM)


def test_an_append_the_server_refuses_frees_its_request_id_for_another_command(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    store.append("Case-1", request_events("req-0", "d-0"), StreamState.NO_STREAM)
    # Another writer appends between this store's check of the revision and its append.
    server.before_append[store.names.server("Case-1")] = lambda: store.append(
        "Case-1", request_events("req-x", "d-x"), 0
    )
    with pytest.raises(ConcurrencyConflict, match="another writer"):
        store.append("Case-1", request_events("req-b", "d-b"), 0)
    assert store.find_request("req-b") == []
    # Released, not pending: a binding left behind would hold req-b for d-b.
    store.append("Case-2", request_events("req-b", "d-other"), StreamState.NO_STREAM)
    assert [r.command_digest for r in store.find_request("req-b")] == ["d-other"]


def test_an_append_with_any_lands_after_a_writer_that_got_there_first(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    store.append("Case-1", new_events(1), StreamState.NO_STREAM)
    server.before_append[store.names.server("Case-1")] = lambda: store.append(
        "Case-1", new_events(1, start=1), 0
    )
    result = store.append("Case-1", new_events(1, start=2), StreamState.ANY)
    assert result.revision == 2
    assert verify_chain(store.read_stream("Case-1")) == 3


def test_positions_follow_the_servers_commit_positions(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    first = store.append("Case-1", new_events(2), StreamState.NO_STREAM)
    store.save_snapshot(Snapshot("Case-1", 1, "e", 1, b"{}"))  # a stream of the store's own
    second = store.append("Case-2", new_events(1), StreamState.NO_STREAM)
    recorded = store.read_all()
    assert [e.global_position for e in recorded] == [
        e.commit_position + 1
        for e in server.read_all(
            filter_include=(store.names.events_filter(),), filter_by_stream_name=True
        )
    ]
    assert recorded[0].global_position > FIRST_POSITION
    assert (first.global_position, second.global_position) == (
        recorded[1].global_position,
        recorded[2].global_position,
    )
    assert store.read_all(after=recorded[0].global_position) == recorded[1:]


def test_index_and_snapshot_streams_stay_out_of_the_global_order(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    events = request_events("req-a", "d-a", count=2)
    store.append("Case-1", events, StreamState.NO_STREAM)
    store.save_snapshot(Snapshot("Case-1", 1, events[1].event_id, 1, b"state"))
    assert ids(store.read_all()) == [e.event_id for e in events]
    assert store.last_position() == store.read_all()[-1].global_position
    everything = {e.stream_name for e in server.read_all()}
    assert everything == {
        "Case-1",
        store.names.request("req-a"),
        store.names.snapshot("Case-1"),
        "$$" + store.names.snapshot("Case-1"),
    }


def test_a_snapshot_stream_keeps_one_snapshot(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    for revision in range(3):
        store.save_snapshot(Snapshot("Case-1", revision, f"e{revision}", 1, b"s"))
    assert len(server.get_stream(store.names.snapshot("Case-1"))) == 1
    assert store.read_snapshot("Case-1") == Snapshot("Case-1", 2, "e2", 1, b"s")


def test_stores_in_two_namespaces_of_one_server_see_only_their_own_events(
    server: FakeKurrentDB,
) -> None:
    left = KurrentDBEventStore(server, namespace="left_")
    right = KurrentDBEventStore(server, namespace="right_")
    try:
        left.append("Case-1", new_events(2), StreamState.NO_STREAM)
        right.append("Case-1", new_events(1), StreamState.NO_STREAM)
        assert [len(left.read_all()), len(right.read_all())] == [2, 1]
        assert [e.stream for e in right.read_all()] == ["Case-1"]
        assert len(left.read_stream("Case-1")) == 2
    finally:
        left.close()
        right.close()


@pytest.mark.parametrize("refused", [0, 2])
def test_following_wakes_for_appends_made_through_another_store(
    server: FakeKurrentDB, monkeypatch: pytest.MonkeyPatch, refused: int
) -> None:
    # A subscription refused at first is taken again after a pause (shortened here).
    monkeypatch.setattr(kurrentdb_watch, "RETRY_SECONDS", 0.05)
    server.refused_subscriptions = refused
    follower = KurrentDBEventStore(server)
    wait_until(lambda: server.refused_subscriptions == 0, "the refusals to be used up")
    writer = KurrentDBEventStore(server, watch=False)
    following = Following(follower, idle=60.0)  # only the subscription can wake it in time
    try:
        wait_until(lambda: following.idle_calls >= 1, "the follower to wait")
        events = new_events(2)
        writer.append("Case-1", events, StreamState.NO_STREAM)
        wait_until(lambda: len(following.received) == 2, "the other store's events", 5.0)
        assert ids(following.received) == [e.event_id for e in events]
    finally:
        following.stop()
        follower.close()
        writer.close()


@pytest.mark.parametrize("stream", ["$all", "crm-request-x", "crm-snapshot-Case-1", ""])
def test_names_of_the_server_and_of_the_store_are_refused(
    store: KurrentDBEventStore, stream: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.append(stream, new_events(1), StreamState.ANY)
    assert caught.value.field == "stream"
    assert store.last_position() == 0


def test_a_server_giving_one_append_one_position_is_refused_when_read() -> None:
    """Followers page by position: events sharing one would be skipped after a page boundary."""
    store = KurrentDBEventStore(FakeKurrentDB(one_position_per_append=True), watch=False)
    try:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        with pytest.raises(IntegrityError, match="one commit position"):
            store.read_all()
        # Paged one by one, the second event shows up beside the first when reading on.
        (first,) = store.read_all(limit=1)
        with pytest.raises(IntegrityError, match="one commit position"):
            store.read_all(after=first.global_position, limit=1)
    finally:
        store.close()
