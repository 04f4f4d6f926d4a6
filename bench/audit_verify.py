"""Whole-store verification speed: events per second checked against a seal, beside reading the
same rows back undecoded (read_chain) and decoded (read_all), in one run on one SQLite store.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench.storage import AGENT, T0, rate
from crm.envelope import EventMetadata, NewEvent
from crm.eventstore.port import StreamState
from crm.eventstore.sqlite import SqliteEventStore
from crm.sealer import Sealer
from crm.seals import SealKey
from services.audit.store_verify import StoreVerifier
from services.bootstrap import CODEC
from services.case.events import CaseNoteAdded

PER_APPEND = 20  # events per append: the history is written fast, read the same either way
STREAMS = 500
REPEATS = 3


def fill(store: SqliteEventStore, count: int) -> None:
    """`count` note events over STREAMS case streams, interleaved, with realistic metadata."""
    payload = CODEC.encode(CaseNoteAdded("case-1", "n-1", "called back about the refund"))[1]
    revisions: dict[str, int] = {}
    for start in range(0, count, PER_APPEND):
        stream = f"case-{(start // PER_APPEND) % STREAMS}"
        request = str(uuid.uuid4())
        metadata = EventMetadata("cust-1", T0, AGENT, request, request, request, "digest")
        events = [
            NewEvent(str(uuid.uuid4()), "crm.case.CaseNoteAdded.v1", payload, metadata)
            for _ in range(min(PER_APPEND, count - start))
        ]
        last = revisions.get(stream)
        store.append(stream, events, StreamState.NO_STREAM if last is None else last)
        revisions[stream] = (last if last is not None else -1) + len(events)


def measure_verify(count: int) -> dict[str, float]:
    """Events per second: verify against a seal, and the two ways of reading them back; then
    verify again once the metadata is rewritten as stores wrote it before it was canonical.
    Each is the best of REPEATS runs, interleaved, as other work shares the machine."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        store = SqliteEventStore(path)
        try:
            fill(store, count)
            key = SealKey.generate()
            sealer = Sealer(store, key, lambda: datetime.now(UTC), every_events=1, every_seconds=0)
            while sealer.seal_once() is not None:
                pass
            total = store.last_position()
            verifier = StoreVerifier(store, key.public)
            found: dict[str, float] = {"read_chain": 0.0, "read_all": 0.0, "verify": 0.0}
            for _ in range(REPEATS):
                found["read_chain"] = max(
                    found["read_chain"], rate(total, lambda: _read_chain(store))
                )
                found["read_all"] = max(found["read_all"], rate(total, lambda: _read_all(store)))
                found["verify"] = max(
                    found["verify"], rate(total, lambda: _checked(verifier, total))
                )
            _older_metadata(path)
            found["verify_older"] = max(
                rate(total, lambda: _checked(verifier, total)) for _ in range(REPEATS)
            )
        finally:
            store.close()
    return {"events": total, **found}


def _older_metadata(path: Path) -> None:
    """Rewrite every event's metadata as json.dumps wrote it before (spaces, insertion order):
    the same content, which verification must decode to rehash."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        rows = conn.execute("SELECT global_position, metadata FROM events").fetchall()
        conn.execute("BEGIN")
        conn.executemany(
            "UPDATE events SET metadata = ? WHERE global_position = ?",
            [(json.dumps(_insertion_order(json.loads(text))), p) for p, text in rows],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _insertion_order(metadata: dict[str, str]) -> dict[str, str]:
    """The keys in the order EventMetadata.to_dict gives them."""
    return EventMetadata.from_dict(metadata).to_dict()


def _checked(verifier: StoreVerifier, total: int) -> None:
    found = verifier.verify()
    if not found.ok or found.sealed_events != total:
        raise AssertionError(f"the benchmark's store does not verify: {found.breaks[:1]}")


def _read_chain(store: SqliteEventStore) -> None:
    position = 0
    while batch := store.read_chain(position, 5000):
        position = batch[-1][0]


def _read_all(store: SqliteEventStore) -> None:
    position = 0
    while batch := store.read_all(position, 5000):
        position = batch[-1].global_position
