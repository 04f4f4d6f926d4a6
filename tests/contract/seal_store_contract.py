"""The seal part of the event store contract: seals kept in order, never forked, entries intact,
and the undecoded rows a verifier rehashes equal to the events `read_all` returns.

Mixed into EventStoreContract, so every adapter's test class runs it.
"""

from __future__ import annotations

import json
import uuid

import pytest

from crm.envelope import EventMetadata, NewEvent
from crm.errors import ConcurrencyConflict
from crm.eventstore.port import EventStore, StreamState
from crm.seals import Seal, SealEntry, SealKey, chain_head
from crm.vocabulary import ActorKind

KEY = SealKey.generate()


def _event(n: int) -> NewEvent:
    return NewEvent(
        event_id=str(uuid.uuid4()),
        type="crm.test.SomethingHappened.v1",
        data=json.dumps({"n": n}).encode(),
        metadata=EventMetadata.from_dict(
            {
                "customer_id": "cust-seal",
                "occurred_at": "2024-05-01T09:30:15.123456+00:00",
                "actor_kind": ActorKind.AGENT.value,
                "actor_id": "agent-7",
                "correlation_id": "corr",
                "causation_id": "cause",
                "request_id": f"seal-req-{n}",
                "command_digest": "d",
            }
        ),
    )


def _seal(entries: list[SealEntry], previous: Seal | None) -> Seal:
    start = previous.head if previous else "0" * 64
    return KEY.sign(
        Seal(
            position=entries[-1].global_position,
            count=(previous.count if previous else 0) + len(entries),
            head=chain_head(entries, start),
            previous_position=previous.position if previous else 0,
            sealed_at="2026-11-26T20:00:00+00:00",
            key_id=KEY.key_id,
        )
    )


def _entries(store: EventStore, after: int = 0) -> list[SealEntry]:
    return [
        SealEntry(e.global_position, e.stream, e.revision, e.content_hash)
        for e in store.read_all(after)
    ]


class SealStoreContract:
    """What every adapter keeps of seals; `store` comes from the contract class it is mixed in."""

    def test_no_seal_kept_at_first(self, store: EventStore) -> None:
        assert store.latest_seal() is None
        assert store.read_seals() == []
        assert store.seal_entries(1) == []

    def test_seals_are_kept_in_order_with_their_entries(self, store: EventStore) -> None:
        store.append("seal-a", [_event(0), _event(1)], StreamState.NO_STREAM)
        first_entries = _entries(store)
        first = _seal(first_entries, None)
        store.save_seal(first, first_entries)
        store.append("seal-b", [_event(2)], StreamState.NO_STREAM)
        second_entries = _entries(store, first.position)
        second = _seal(second_entries, first)
        store.save_seal(second, second_entries)

        assert store.read_seals() == [first, second]
        assert store.read_seals(after=first.position) == [second]
        assert store.read_seals(limit=1) == [first]
        assert store.latest_seal() == second
        assert store.seal_entries(first.position) == first_entries
        assert store.seal_entries(second.position) == second_entries
        assert KEY.public.problem(store.latest_seal() or first) == ""

    def test_a_seal_that_does_not_continue_the_newest_is_refused(self, store: EventStore) -> None:
        store.append("seal-a", [_event(0)], StreamState.NO_STREAM)
        base = _entries(store)
        first = _seal(base, None)
        store.save_seal(first, base)
        store.append("seal-a", [_event(1)], 0)
        store.append("seal-a", [_event(2)], 1)
        newer = _entries(store, first.position)
        winner = _seal(newer[:1], first)  # two sealers raced from the same seal
        loser = _seal(newer, first)
        store.save_seal(winner, newer[:1])
        with pytest.raises(ConcurrencyConflict):
            store.save_seal(loser, newer)
        with pytest.raises(ConcurrencyConflict):
            store.save_seal(_seal(base, None), base)  # a second first seal
        assert store.read_seals() == [first, winner]

    def test_seals_are_not_events(self, store: EventStore) -> None:
        store.append("seal-a", [_event(0)], StreamState.NO_STREAM)
        entries = _entries(store)
        last = store.last_position()
        store.save_seal(_seal(entries, None), entries)
        assert store.last_position() == last
        assert [e.stream for e in store.read_all()] == ["seal-a"]

    def test_chain_rows_are_the_stored_events_undecoded(self, store: EventStore) -> None:
        store.append("seal-a", [_event(0), _event(1)], StreamState.NO_STREAM)
        store.append("seal-b", [_event(2)], StreamState.NO_STREAM)
        events = store.read_all()
        rows = store.read_chain(0, 10)
        assert [row[0] for row in rows] == [e.global_position for e in events]
        for row, e in zip(rows, events, strict=True):
            position, stream, revision, event_id, type_, data, meta, at, previous, content = row
            assert (position, stream, revision, event_id, type_) == (
                e.global_position,
                e.stream,
                e.revision,
                e.event_id,
                e.type,
            )
            assert (bytes(data), previous, content) == (e.data, e.previous_hash, e.content_hash)
            assert json.loads(meta) == e.metadata.to_dict()
            assert at == e.recorded_at.isoformat()
        assert store.read_chain(events[0].global_position, 1)[0][0] == events[1].global_position
