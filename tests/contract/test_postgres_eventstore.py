"""The PostgreSQL adapter against the shared event store contract, plus what only it can show.

Gap-free order under held transactions and writers in several processes, and a server that dies,
have tests of their own in tests/integration/test_postgres_event_order.py and
test_postgres_event_outage.py.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from crm.envelope import verify_chain
from crm.errors import (
    ConcurrencyConflict,
    IntegrityError,
    InvalidInput,
    OperationalError,
    PersistenceError,
)
from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore, Snapshot, StreamState
from crm.eventstore.postgres import PostgresEventStore
from crm.eventstore.postgres_schema import LAYOUT_VERSION
from tests.contract.eventstore_contract import (
    DEADLINE_SECONDS,
    EventStoreContract,
    Following,
    ids,
    new_event,
    new_events,
    wait_until,
)


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_store(self) -> EventStore:
        return PostgresEventStore(self.url)


def test_events_survive_close_and_reopen(postgres_url: str) -> None:
    events = new_events(3)
    store = PostgresEventStore(postgres_url)
    result = store.append("Case-1", events, StreamState.NO_STREAM)
    before = store.read_all()
    store.close()
    reopened = PostgresEventStore(postgres_url)
    try:
        assert reopened.read_all() == before
        assert reopened.last_position() == result.global_position
        assert reopened.append("Case-1", events, StreamState.NO_STREAM) == result
        assert reopened.append("Case-1", [new_event(3)], 2).revision == 3
        assert verify_chain(reopened.read_stream("Case-1")) == 4
    finally:
        reopened.close()


def test_positions_start_at_one_and_a_refused_append_leaves_no_hole(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url)
    try:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
        with pytest.raises(ConcurrencyConflict):
            store.append("Case-1", [new_event(2)], 0)
        store.append("Case-2", new_events(2), StreamState.NO_STREAM)
        assert [e.global_position for e in store.read_all()] == [1, 2, 3, 4]
    finally:
        store.close()


def test_binary_payload_round_trips(postgres_url: str) -> None:
    data = bytes(range(256)) * 64 + b"\x00"
    store = PostgresEventStore(postgres_url)
    try:
        store.append("Case-1", [new_event(data=data)], StreamState.NO_STREAM)
        assert store.read_stream("Case-1")[0].data == data
    finally:
        store.close()


def test_the_chain_verifies_whatever_the_sessions_time_zone(postgres_url: str) -> None:
    """recorded_at is hashed in its UTC form; a session in another zone must read the same form."""
    store = PostgresEventStore(postgres_url)
    try:
        store.append("Case-1", new_events(2), StreamState.NO_STREAM)
    finally:
        store.close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        database = raw.info.dbname
        raw.execute(f"ALTER DATABASE \"{database}\" SET timezone TO 'Asia/Tokyo'")
    reopened = PostgresEventStore(postgres_url)
    try:
        recorded = reopened.read_stream("Case-1")
        assert verify_chain(recorded) == 2
        assert recorded[0].recorded_at.isoformat().endswith("+00:00")
    finally:
        reopened.close()


def test_tampering_is_detected_by_the_hash_chain(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url)
    try:
        store.append("Case-1", new_events(3), StreamState.NO_STREAM)
        with psycopg.connect(postgres_url, autocommit=True) as raw:
            raw.execute("UPDATE events SET data = %s WHERE revision = 1", (b'{"n": 99}',))
        with pytest.raises(IntegrityError, match="Case-1 is broken at revision 1 "):
            verify_chain(store.read_stream("Case-1"))
    finally:
        store.close()


def test_a_follower_wakes_on_another_stores_append_through_notify(postgres_url: str) -> None:
    """Another store stands for another process: only the NOTIFY can wake this follower before
    its one-minute idle wait ends."""
    follower = PostgresEventStore(postgres_url)
    writer = PostgresEventStore(postgres_url)
    following = Following(follower, idle=60.0)
    try:
        wait_until(follower.listener.listening.is_set, "the listener to listen")
        wait_until(lambda: following.idle_calls >= 1, "the follower to catch up and wait")
        events = new_events(2)
        writer.append("Case-1", events, StreamState.NO_STREAM)
        wait_until(lambda: len(following.received) == 2, "events written through the other store")
        assert ids(following.received) == [e.event_id for e in events]
    finally:
        following.stop()
        follower.close()
        writer.close()
    assert not following.thread.is_alive()


def test_closed_store_raises_operational_error(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url)
    store.close()
    with pytest.raises(OperationalError):
        store.read_all()
    with pytest.raises(OperationalError):
        store.append("Case-1", [new_event()], StreamState.NO_STREAM)


@pytest.mark.parametrize("where", ["stream", "event_id", "request_id"])
def test_a_nul_character_is_invalid_input_and_writes_nothing(postgres_url: str, where: str) -> None:
    event = new_event(request_id="req\x00" if where == "request_id" else "req-1")
    if where == "event_id":
        event = new_event()
        event = type(event)("id\x00", event.type, event.data, event.metadata)
    store = PostgresEventStore(postgres_url)
    try:
        with pytest.raises(InvalidInput) as caught:
            store.append("Case\x00" if where == "stream" else "Case-1", [event], StreamState.ANY)
        assert caught.value.field == where
        assert store.last_position() == 0
    finally:
        store.close()


def test_factory_opens_both_url_spellings(postgres_url: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = open_event_store(url)
        try:
            assert isinstance(store, PostgresEventStore)
            store.append("Case-1", [new_event()], StreamState.ANY)
        finally:
            store.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://crm@127.0.0.1:notaport/crm", "malformed"),
        ("postgresql://crm@127.0.0.1:1/crm", "cannot connect"),
        ("postgres://crm@127.0.0.1:5432/", "names no database"),
    ],
)
def test_factory_refuses_a_bad_postgres_url_naming_the_setting(url: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as caught:
        open_event_store(url)
    assert caught.value.field == "event_store_url"


def test_an_unsupported_url_names_both_forms() -> None:
    with pytest.raises(InvalidInput, match=r"sqlite:///<path>, postgresql://") as caught:
        open_event_store("mysql://localhost/crm")
    assert caught.value.field == "event_store_url"


def test_opening_records_the_layout_and_refuses_a_newer_one(postgres_url: str) -> None:
    PostgresEventStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        assert raw.execute("SELECT version FROM event_store_layout").fetchall() == [
            (LAYOUT_VERSION,)
        ]
        raw.execute("UPDATE event_store_layout SET version = %s", (LAYOUT_VERSION + 1,))
    with pytest.raises(OperationalError, match="newer version"):
        PostgresEventStore(postgres_url)


def test_stores_opened_together_create_the_tables_once(postgres_url: str) -> None:
    stores: list[PostgresEventStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=DEADLINE_SECONDS)

    def open_one() -> None:
        try:
            barrier.wait()
            stores.append(PostgresEventStore(postgres_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS * 3)
    try:
        assert errors == []
        assert len(stores) == 4
        stores[0].append("Case-1", [new_event()], StreamState.NO_STREAM)
        assert [len(s.read_all()) for s in stores] == [1, 1, 1, 1]
    finally:
        for store in stores:
            store.close()


def test_appends_waiting_for_the_lock_share_one_transaction(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url)
    blocker = psycopg.connect(postgres_url)
    blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")  # another process appends right now
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
        blocker.commit()
        blocker.close()
    for thread in [first, *others]:
        thread.join(DEADLINE_SECONDS)
    try:
        assert errors == []
        assert store.commits.transactions - before == 2  # the first alone, then the seven
        assert [e.global_position for e in store.read_all()] == list(range(1, 9))
    finally:
        store.close()


def test_a_snapshot_survives_reopening(postgres_url: str) -> None:
    store = PostgresEventStore(postgres_url)
    events = new_events(2)
    store.append("Case-1", events, StreamState.NO_STREAM)
    snapshot = Snapshot("Case-1", 1, events[1].event_id, 3, b"\x00{}")
    store.save_snapshot(snapshot)
    store.close()
    reopened = PostgresEventStore(postgres_url)
    try:
        assert reopened.read_snapshot("Case-1") == snapshot
    finally:
        reopened.close()


def test_an_append_the_database_refuses_fails_alone_in_its_group(postgres_url: str) -> None:
    """A statement error inside one append's savepoint (a trigger refusing its stream, as a
    constraint might) rolls back that append only; the others of its transaction commit."""
    store = PostgresEventStore(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'poisoned stream'; END $$;"
            " CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW"
            " WHEN (NEW.stream = 'Case-poison') EXECUTE FUNCTION refuse_poison();"
        )
    blocker = psycopg.connect(postgres_url)
    blocker.execute("LOCK TABLE events IN EXCLUSIVE MODE")
    outcomes: dict[str, BaseException | int] = {}

    def append(stream: str) -> None:
        try:
            outcomes[stream] = store.append(stream, new_events(2), StreamState.ANY).revision
        except BaseException as exc:  # compared below
            outcomes[stream] = exc

    streams = ["Case-first", "Case-a", "Case-poison", "Case-b"]
    threads = [threading.Thread(target=append, args=(s,), daemon=True) for s in streams]
    try:
        threads[0].start()
        wait_until(lambda: store.commits.writing, "the first append to wait as the writer")
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: store.commits.queued == 3, "three queued appends")
    finally:
        blocker.commit()
        blocker.close()
    for thread in threads:
        thread.join(DEADLINE_SECONDS)
    try:
        poisoned = outcomes.pop("Case-poison")
        assert isinstance(poisoned, PersistenceError) and "poisoned stream" in str(poisoned)
        assert outcomes == {"Case-first": 1, "Case-a": 1, "Case-b": 1}
        assert store.read_stream("Case-poison") == []
        assert [e.global_position for e in store.read_all()] == list(range(1, 7))
        assert store.append("Case-c", [new_event()], StreamState.NO_STREAM).global_position == 7
    finally:
        store.close()
