"""Whole-store verification speed: events per second checked against a seal, beside reading the
same rows back undecoded (read_chain) and decoded (read_all), in one run on one SQLite store.
"""

from __future__ import annotations

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
    """Events per second: verify against a seal, and the two ways of reading them back."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteEventStore(Path(tmp) / "events.db")
        try:
            fill(store, count)
            key = SealKey.generate()
            sealer = Sealer(store, key, lambda: datetime.now(UTC), every_events=1, every_seconds=0)
            while sealer.seal_once() is not None:
                pass
            total = store.last_position()
            undecoded = rate(total, lambda: _read_chain(store))
            decoded = rate(total, lambda: _read_all(store))
            verifier = StoreVerifier(store, key.public)
            verified = rate(total, lambda: _checked(verifier, total))
        finally:
            store.close()
    return {"events": total, "read_chain": undecoded, "read_all": decoded, "verify": verified}


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
