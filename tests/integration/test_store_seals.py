"""Seals over the global order, on real SQLite and PostgreSQL stores: every way of tampering with
the stored rows behind the store's back is pinpointed by whole-store verification against a seal
(stream, revision, global position and what is wrong).

The global order of the story: A0 B0 A1 C0 B1 A2 C1 B2 A3 (positions 1-9), sealed in two seals
(after 5 and after 9); then A4 B3 (10, 11), recorded after the newest seal.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crm.envelope import GENESIS_HASH, stored_content_hash
from crm.eventstore.port import EventStore, StreamState
from crm.eventstore.postgres import PostgresEventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.sealer import Sealer, load_seal_key
from crm.seals import Seal, SealEntry, SealKey, chain_head
from services.audit.store_verify import StoreVerification, StoreVerifier
from tests.contract.eventstore_contract import new_event

ORDER = ["A", "B", "A", "C", "B", "A", "C", "B", "A"]
KEY = SealKey.generate()
NOW = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


@dataclass
class Tampering:
    """A store with the story recorded and sealed, and raw SQL on its rows."""

    store: EventStore
    execute: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
    seals: list[Seal]

    def verify(self, given: Seal | None = None) -> StoreVerification:
        return StoreVerifier(self.store, KEY.public, batch=4).verify(given)

    def row(self, stream: str, revision: int) -> tuple[Any, ...]:
        return self.execute(
            "SELECT global_position, event_id, type, data, metadata, recorded_at, previous_hash,"
            " content_hash FROM events WHERE stream = ? AND revision = ?",
            (stream, revision),
        )[0]

    def move(self, position: int, to: int) -> None:
        self.execute(
            "UPDATE events SET global_position = ? WHERE global_position = ?", (to, position)
        )


def _record(store: EventStore) -> list[Seal]:
    revisions: dict[str, int] = {}
    sealer = Sealer(store, KEY, lambda: NOW, every_events=5, every_seconds=0, max_entries=5)
    seals = []
    for n, stream in enumerate(ORDER):
        revision = revisions.get(stream, -1)
        store.append(
            stream,
            [new_event(n, request_id=f"r{n}")],
            revision if revision >= 0 else StreamState.NO_STREAM,
        )
        revisions[stream] = revision + 1
        if sealer.due():
            seal = sealer.seal_once()
            assert seal is not None
            seals.append(seal)
    last = sealer.seal_once()
    assert last is not None
    seals.append(last)
    store.append("A", [new_event(9, request_id="r9")], 3)
    store.append("B", [new_event(10, request_id="r10")], 2)
    return seals


@pytest.fixture(params=["sqlite", "postgres"])
def tampering(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tampering]:
    if request.param == "sqlite":
        path = tmp_path / "events.db"
        store: EventStore = SqliteEventStore(path)
        raw = sqlite3.connect(path, isolation_level=None)

        def execute(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            return raw.execute(sql, params).fetchall()

        try:
            yield Tampering(store, execute, _record(store))
        finally:
            raw.close()
            store.close()
        return
    url = request.getfixturevalue("postgres_url")
    store = PostgresEventStore(url)
    conn = psycopg.connect(url, autocommit=True)

    def execute_pg(sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor = conn.execute(sql.replace("?", "%s"), params)
        rows = cursor.fetchall() if cursor.description else []
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

    try:
        yield Tampering(store, execute_pg, _record(store))
    finally:
        conn.close()
        store.close()


def _first(found: StoreVerification) -> tuple[str, int, int, str]:
    assert not found.ok
    first = found.breaks[0]
    return first.stream, first.revision, first.global_position, first.problem


def test_an_untouched_store_verifies_against_its_newest_seal(tampering: Tampering) -> None:
    found = tampering.verify()
    assert found.ok, found.breaks
    assert found.seal == tampering.seals[-1] and found.exact
    assert (found.events_checked, found.sealed_events, found.events_after_seal) == (11, 9, 2)
    assert found.streams_checked == 3
    assert found.head == tampering.seals[-1].head
    assert [s.position for s in tampering.seals] == [5, 9]


def test_an_altered_event_is_named(tampering: Tampering) -> None:
    tampering.execute(
        "UPDATE events SET data = ? WHERE stream = 'A' AND revision = 1", (b'{"n": 99}',)
    )
    assert _first(tampering.verify()) == (
        "A",
        1,
        3,
        "its content was altered after it was recorded",
    )


def test_a_deleted_tail_of_a_stream_is_named(tampering: Tampering) -> None:
    tampering.execute("DELETE FROM events WHERE stream = 'A' AND revision >= 3", ())
    stream, revision, position, problem = _first(tampering.verify())
    assert (stream, revision, position) == ("A", 3, 9)
    assert problem.startswith("missing")


def test_a_deleted_stream_is_named(tampering: Tampering) -> None:
    tampering.execute("DELETE FROM events WHERE stream = 'C'", ())
    stream, revision, position, problem = _first(tampering.verify())
    assert (stream, revision, position) == ("C", 0, 4)
    assert problem.startswith("missing")


def test_an_inserted_event_is_named(tampering: Tampering) -> None:
    # A forger makes room at position 6 and inserts a well-formed event of a new stream there.
    tampering.execute(
        "UPDATE events SET global_position = global_position + 1000 WHERE global_position >= 6", ()
    )
    tampering.execute(
        "UPDATE events SET global_position = global_position - 999 WHERE global_position > 1000", ()
    )
    _, _, type_, data, metadata, recorded_at, _, _ = tampering.row("A", 0)
    at = recorded_at if isinstance(recorded_at, str) else recorded_at.astimezone(UTC).isoformat()
    forged = stored_content_hash(
        GENESIS_HASH, "D", 0, "forged", type_, data, json.loads(metadata), at
    )
    tampering.execute(
        "INSERT INTO events (global_position, stream, revision, event_id, type, data, metadata,"
        " customer_id, recorded_at, previous_hash, content_hash)"
        " VALUES (6, 'D', 0, 'forged', ?, ?, ?, 'cust-1', ?, ?, ?)",
        (type_, data, metadata, recorded_at, GENESIS_HASH, forged),
    )
    stream, revision, position, problem = _first(tampering.verify())
    assert (stream, revision, position) == ("D", 0, 6)
    assert "the seal has A revision 2" in problem


def test_two_swapped_events_are_named(tampering: Tampering) -> None:
    # A1 (position 3) and B1 (position 5) trade places: each stream's own order still holds.
    tampering.move(3, 1000)
    tampering.move(5, 3)
    tampering.move(1000, 5)
    stream, revision, position, problem = _first(tampering.verify())
    assert (stream, revision, position) == ("B", 1, 3)
    assert "the seal has A revision 1" in problem


def test_a_link_rewritten_to_skip_an_event_is_named(tampering: Tampering) -> None:
    # B1 goes; B2 is renumbered and relinked to B0 and rehashed: B's chain is whole again.
    b0_hash = tampering.row("B", 0)[7]
    tampering.execute("DELETE FROM events WHERE stream = 'B' AND revision = 1", ())
    position, event_id, type_, data, metadata, recorded_at, _, _ = tampering.row("B", 2)
    at = recorded_at if isinstance(recorded_at, str) else recorded_at.astimezone(UTC).isoformat()
    rehashed = stored_content_hash(b0_hash, "B", 1, event_id, type_, data, json.loads(metadata), at)
    tampering.execute(
        "UPDATE events SET revision = 1, previous_hash = ?, content_hash = ?"
        " WHERE global_position = ?",
        (b0_hash, rehashed, position),
    )
    b3 = tampering.row("B", 3)
    at3 = b3[5] if isinstance(b3[5], str) else b3[5].astimezone(UTC).isoformat()
    rehashed3 = stored_content_hash(rehashed, "B", 2, b3[1], b3[2], b3[3], json.loads(b3[4]), at3)
    tampering.execute(
        "UPDATE events SET revision = 2, previous_hash = ?, content_hash = ?"
        " WHERE global_position = ?",
        (rehashed, rehashed3, b3[0]),
    )
    found = tampering.verify()
    stream, revision, position, problem = _first(found)
    assert (stream, revision, position) == ("B", 1, 5)
    assert problem.startswith("missing")
    assert all(b.stream != "B" or b.global_position == 5 for b in found.breaks)  # B chains


def test_a_link_rewritten_without_rehashing_breaks_the_stream_chain(tampering: Tampering) -> None:
    tampering.execute(
        "UPDATE events SET previous_hash = ? WHERE stream = 'B' AND revision = 2",
        (tampering.row("B", 0)[7],),
    )
    assert _first(tampering.verify()) == ("B", 2, 8, "its link to the previous event is broken")


def test_after_the_seal_only_the_stream_chains_vouch(tampering: Tampering) -> None:
    tampering.execute("UPDATE events SET data = ? WHERE stream = 'A' AND revision = 4", (b"{}",))
    found = tampering.verify()
    assert _first(found) == ("A", 4, 10, "its content was altered after it was recorded")
    assert found.events_after_seal == 2


def test_a_kept_seal_catches_what_the_stores_own_seals_no_longer_show(
    tampering: Tampering,
) -> None:
    kept = tampering.seals[-1]  # the auditor's copy
    tampering.execute("DELETE FROM events WHERE stream = 'C'", ())
    tampering.execute("DELETE FROM " + _seals_table(tampering) + " WHERE position > 0", ())
    assert tampering.verify().ok  # nothing left to compare with inside the store
    found = tampering.verify(kept)
    assert not found.exact
    problems = [b.problem for b in found.breaks]
    assert any("keeps no seal at 9" in p for p in problems)
    assert any(
        "no longer chains to the seal's head (7 events found, 9 sealed)" in p for p in problems
    )


def test_a_forged_seal_is_refused(tampering: Tampering) -> None:
    kept = tampering.seals[-1]
    forged = Seal(**{**kept.to_dict(), "head": "f" * 64})
    problems = [b.problem for b in tampering.verify(forged).breaks]
    assert any("signature does not match" in p for p in problems)
    assert any("differs from the one given" in p for p in problems)


def test_altered_seal_entries_fall_back_to_the_interval(tampering: Tampering) -> None:
    # The forger also rewrites the entries kept with the seal at 9 to hide a deleted event:
    # they no longer chain to the signed head, so the break is placed between seals 5 and 9.
    kept = tampering.store.seal_entries(9)
    hidden = [[e.global_position, e.stream, e.revision, e.content_hash] for e in kept[:-1]]
    table = _seals_table(tampering)
    tampering.execute(
        f"UPDATE {table} SET entries = ?, count = count - 1 WHERE position = 9",
        (json.dumps(hidden).encode(),),
    )
    tampering.execute("DELETE FROM events WHERE stream = 'A' AND revision >= 3", ())
    found = tampering.verify()
    assert not found.exact
    problems = [(b.global_position, b.problem) for b in found.breaks]
    assert problems[0][0] == 9
    assert any("seal at 9 cannot be used" in p for _, p in problems)
    assert any("after global position 5, the last seal that matches" in p for _, p in problems)


def _seals_table(tampering: Tampering) -> str:
    return "event_seals" if isinstance(tampering.store, PostgresEventStore) else "seals"


def test_the_global_chain_is_the_documented_formula() -> None:
    entries = [SealEntry(1, "A", 0, "a" * 64), SealEntry(2, "B", 0, "b" * 64)]
    head = GENESIS_HASH
    for e in entries:
        head = hashlib.sha256(
            json.dumps(
                [head, e.global_position, e.stream, e.revision, e.content_hash],
                separators=(",", ":"),
            ).encode()
        ).hexdigest()
    assert chain_head(entries) == head


def _sqlite_store(tmp_path: Path) -> SqliteEventStore:
    return SqliteEventStore(tmp_path / "events.db")


def test_a_seal_is_due_after_its_events_or_its_time(tmp_path: Path) -> None:
    store = _sqlite_store(tmp_path)
    now = [NOW]
    by_count = Sealer(store, KEY, lambda: now[0], every_events=3, every_seconds=0)
    by_time = Sealer(store, KEY, lambda: now[0], every_events=0, every_seconds=60)
    try:
        assert not by_count.due() and not by_time.due()  # nothing to seal
        store.append(
            "A",
            [new_event(0, request_id="a0"), new_event(1, request_id="a1")],
            StreamState.NO_STREAM,
        )
        assert not by_count.due()
        assert by_time.due()  # the first seal: any event will do
        store.append("A", [new_event(2, request_id="a2")], 1)
        assert by_count.due()
        first = by_count.seal_once()
        assert first is not None and (first.position, first.count) == (3, 3)
        store.append("A", [new_event(3, request_id="a3")], 2)
        assert not by_time.due()
        now[0] = now[0].replace(minute=1)
        assert by_time.due()
        second = by_time.seal_once()
        assert second is not None and (second.previous_position, second.count) == (3, 4)
        assert second.head == chain_head(store.seal_entries(4), first.head)
    finally:
        store.close()


def test_of_two_sealers_racing_from_one_seal_only_the_first_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = _sqlite_store(tmp_path), _sqlite_store(tmp_path)  # two processes, one file
    try:
        one.append("A", [new_event(0, request_id="a0")], StreamState.NO_STREAM)
        first = Sealer(one, KEY, lambda: NOW, every_events=1, every_seconds=0).seal_once()
        assert first is not None
        monkeypatch.setattr(other, "latest_seal", lambda: None)  # it read before the first kept
        late = Sealer(other, KEY, lambda: NOW, every_events=1, every_seconds=0)
        assert late.seal_once() is None
        assert other.read_seals() == [first]
    finally:
        one.close()
        other.close()


def test_a_long_backlog_is_sealed_in_several_seals(tmp_path: Path) -> None:
    store = _sqlite_store(tmp_path)
    try:
        for n in range(7):
            store.append(
                "A", [new_event(n, request_id=f"a{n}")], n - 1 if n else StreamState.NO_STREAM
            )
        sealer = Sealer(store, KEY, lambda: NOW, every_events=1, every_seconds=0, max_entries=3)
        sealed = []
        while (seal := sealer.seal_once()) is not None:
            sealed.append((seal.position, seal.count))
        assert sealed == [(3, 3), (6, 6), (7, 7)]
        assert StoreVerifier(store, KEY.public).verify().ok
    finally:
        store.close()


def test_a_missing_seal_key_is_created_once_and_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "seal.pem"
    first = load_seal_key(path)
    assert load_seal_key(path).key_id == first.key_id
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["seal.pem"]  # no file left behind
    (tmp_path / "other.pem").write_bytes(b"not a key")
    with pytest.raises(ValueError):
        load_seal_key(tmp_path / "other.pem")
