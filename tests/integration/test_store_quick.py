"""The quick pass of whole-store verification, on real SQLite and PostgreSQL stores: it proves an
untouched store by itself (unicode streams and metadata, older rows, several seals), finds what
the exact walk finds, and gives way to the exact walk whenever anything differs."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crm.eventstore.port import EventStore, StreamState
from crm.eventstore.postgres import PostgresEventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.sealer import Sealer
from crm.seals import SealKey
from crm.vocabulary import Actor, ActorKind
from services.audit.store_quick import Clean, quick_pass
from services.audit.store_verify import StoreVerification, StoreVerifier
from tests.contract.eventstore_contract import new_event

KEY = SealKey.generate()
NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
STREAMS = ["case-1", 'case-"é"\\', "caso-ñ-\u2028", "case-4"]


@dataclass
class Store:
    store: EventStore
    execute: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    seals_table: str

    def quick(self) -> Clean | None:
        return quick_pass(self.store, KEY.public, self.store.latest_seal(), 3)

    def verify(self) -> StoreVerification:
        return StoreVerifier(self.store, KEY.public, batch=3).verify()


def _record(store: EventStore) -> None:
    sealer = Sealer(store, KEY, lambda: NOW, every_events=4, every_seconds=0, max_entries=4)
    for n in range(14):
        stream = STREAMS[n % len(STREAMS)]
        event = new_event(n, customer_id=f'cust "{n}" \\ é', request_id=f"r{n}")
        if n % 3 == 0:  # acting for someone: the metadata carries `via` too
            event = replace(event, metadata=replace(event.metadata, via=Actor(ActorKind.BOT, "b")))
        expected = n // len(STREAMS) - 1
        store.append(stream, [event], expected if expected >= 0 else StreamState.NO_STREAM)
        if sealer.due():
            assert sealer.seal_once() is not None
    store.append("case-1", [new_event(99, request_id="r99")], 3)  # after the newest seal


@pytest.fixture(params=["sqlite", "postgres"])
def recorded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "events.db"
        store: EventStore = SqliteEventStore(path)
        raw = sqlite3.connect(path, isolation_level=None)
        _record(store)
        try:
            yield Store(store, lambda sql, p: raw.execute(sql, p).fetchall(), "seals")
        finally:
            raw.close()
            store.close()
        return
    url = request.getfixturevalue("postgres_url")
    store = PostgresEventStore(url)
    conn = psycopg.connect(url, autocommit=True)

    def execute(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor = conn.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []

    _record(store)
    try:
        yield Store(store, execute, "event_seals")
    finally:
        conn.close()
        store.close()


def _exact(recorded: Store, monkeypatch: pytest.MonkeyPatch) -> StoreVerification:
    """What the exact walk alone finds."""
    with monkeypatch.context() as patched:
        patched.setattr("services.audit.store_verify.quick_pass", lambda *_: None)
        return recorded.verify()


def test_an_untouched_store_is_proven_by_the_quick_pass(
    recorded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert recorded.quick() == Clean(events_checked=15, streams_checked=4, sealed_events=12)
    found = recorded.verify()
    assert found.ok and found.exact and found.events_after_seal == 3
    assert found == _exact(recorded, monkeypatch)


def test_metadata_stored_in_the_older_spelling_still_verifies(
    recorded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for position, text in recorded.execute("SELECT global_position, metadata FROM events", ()):
        older = json.dumps(json.loads(text))  # spaces, keys as they come: not canonical
        recorded.execute(
            "UPDATE events SET metadata = ? WHERE global_position = ?", (older, position)
        )
    assert recorded.quick() == Clean(events_checked=15, streams_checked=4, sealed_events=12)
    assert recorded.verify() == _exact(recorded, monkeypatch)
    assert recorded.verify().ok


def test_entries_in_another_spelling_leave_the_proof_to_the_exact_walk(
    recorded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seal = recorded.store.latest_seal()
    assert seal is not None
    entries = [list(e) for e in recorded.store.seal_entries(seal.position)]
    recorded.execute(
        f"UPDATE {recorded.seals_table} SET entries = ? WHERE position = ?",
        (json.dumps(entries, indent=1).encode(), seal.position),
    )
    assert recorded.quick() is None
    found = recorded.verify()
    assert found.ok and found.exact
    assert found == _exact(recorded, monkeypatch)


def test_altered_entries_alone_are_reported_as_before(
    recorded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    seal = recorded.store.latest_seal()
    assert seal is not None
    entries = [list(e) for e in recorded.store.seal_entries(seal.position)]
    entries[0][3] = "0" * 64
    recorded.execute(
        f"UPDATE {recorded.seals_table} SET entries = ? WHERE position = ?",
        (json.dumps(entries).encode(), seal.position),
    )
    assert recorded.quick() is None
    found = recorded.verify()
    assert [b.problem for b in found.breaks] == [
        f"the store's seal at {seal.position} cannot be used: its entries do not chain to its head"
    ]
    assert found == _exact(recorded, monkeypatch)


def test_altered_metadata_text_is_named_by_the_exact_walk(
    recorded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((position, text),) = recorded.execute(
        "SELECT global_position, metadata FROM events WHERE global_position = 6", ()
    )
    recorded.execute(
        "UPDATE events SET metadata = ? WHERE global_position = ?",
        (text.replace("agent-7", "agent-8"), position),
    )
    assert recorded.quick() is None
    found = recorded.verify()
    assert (found.breaks[0].global_position, found.breaks[0].problem) == (
        6,
        "its content was altered after it was recorded",
    )
    assert found == _exact(recorded, monkeypatch)
