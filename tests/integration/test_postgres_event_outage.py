"""A PostgreSQL server killed under the event store: appends fail as unavailable, none that was
acknowledged is lost, and the same store works again once the server is back.

The test starts a server of its own (the session's one stays up for the other tests) and SIGKILLs
it while two threads append, as a crash would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from crm.envelope import verify_chain
from crm.errors import OperationalError
from crm.eventstore.port import StreamState
from crm.eventstore.postgres import PostgresEventStore
from tests.contract.eventstore_contract import new_event, new_events, positions, wait_until
from tests.postgres_server import PostgresServer, load_local_postgres

RECOVERY_SECONDS = 60.0  # the pool retries connecting with a backoff of up to ten seconds or so


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server: PostgresServer = load_local_postgres().LocalPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Appending:
    """Threads that append until stopped, keeping what was acknowledged and what failed."""

    def __init__(self, store: PostgresEventStore, threads: int) -> None:
        self.store = store
        self.acknowledged: list[str] = []
        self.failures: list[BaseException] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, n: int) -> None:
        count = 0
        while not self._stopped.is_set():
            events = new_events(2, start=count)
            count += 1
            try:
                self.store.append(f"Case-{n}-{count % 3}", events, StreamState.ANY)
            except BaseException as exc:  # kept, and checked by the test
                with self._lock:
                    self.failures.append(exc)
            else:
                with self._lock:
                    self.acknowledged.extend(e.event_id for e in events)

    def count(self) -> tuple[int, int]:
        with self._lock:
            return len(self.acknowledged), len(self.failures)

    def stop(self) -> None:
        self._stopped.set()
        for thread in self.threads:
            thread.join(RECOVERY_SECONDS)


def test_a_killed_server_fails_appends_and_loses_no_acknowledged_event(
    own_server: PostgresServer,
) -> None:
    store = PostgresEventStore(own_server.url)
    appending = Appending(store, threads=2)
    try:
        wait_until(lambda: appending.count()[0] >= 40, "appends before the crash")
        own_server.kill()
        wait_until(lambda: appending.count()[1] >= 2, "appends to fail", timeout=RECOVERY_SECONDS)
        with pytest.raises(OperationalError):
            store.append("Case-down", [new_event()], StreamState.ANY)
        acknowledged_while_down = appending.count()[0]
        own_server.start()

        def works_again() -> bool:
            try:
                store.append("Case-after", [new_event()], StreamState.ANY)
            except OperationalError:
                return False
            return True

        wait_until(works_again, "an append to succeed after the restart", RECOVERY_SECONDS)
        wait_until(
            lambda: appending.count()[0] > acknowledged_while_down + 10,
            "the writers to go on after the restart",
            RECOVERY_SECONDS,
        )
        wait_until(store.listener.listening.is_set, "the listener to reconnect", RECOVERY_SECONDS)
    finally:
        appending.stop()
    try:
        # Every failure was the store saying "unavailable", never anything else.
        assert {type(exc) for exc in appending.failures} == {OperationalError}
        recorded = store.read_all(limit=100_000)
        recorded_ids = {e.event_id for e in recorded}
        assert set(appending.acknowledged) <= recorded_ids
        assert positions(recorded) == list(range(1, len(recorded) + 1))
        for stream in {e.stream for e in recorded}:
            assert verify_chain(store.read_stream(stream)) > 0
    finally:
        store.close()
