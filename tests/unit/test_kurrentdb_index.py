"""The KurrentDB request index's pure parts: which index streams an append binds, how bindings
are read back, and what a binding's stream says about it."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import kurrentdbclient as kdb
import pytest

from crm.envelope import EventMetadata, NewEvent, RecordedEvent
from crm.errors import ConcurrencyConflict
from crm.eventstore import kurrentdb_index as index
from crm.eventstore.kurrentdb_mapping import StreamNames
from crm.vocabulary import Actor, ActorKind

NAMES = StreamNames("ns_")


def new(request_id: str, digest: str = "d") -> NewEvent:
    metadata = EventMetadata(
        "cust", datetime(2024, 1, 1, tzinfo=UTC), Actor(ActorKind.AGENT, "a"), "c", "c", request_id
    )
    return NewEvent(str(uuid.uuid4()), "t", b"{}", replace(metadata, command_digest=digest))


def stored(entries: list[kdb.NewEvent]) -> list[kdb.RecordedEvent]:
    """Index entries as the server returns them, at revisions 0, 1, ..."""
    return [
        kdb.RecordedEvent(
            type=e.type,
            data=e.data,
            metadata=e.metadata,
            content_type=e.content_type,
            id=e.id,
            stream_name="ns_crm-request-r",
            stream_position=revision,
            commit_position=100 + revision,
            prepare_position=100 + revision,
        )
        for revision, e in enumerate(entries)
    ]


def recorded(events: list[NewEvent], first_revision: int) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            "Case-1",
            first_revision + i,
            50 + i,
            e.event_id,
            e.type,
            e.data,
            e.metadata,
            datetime.now(UTC),
            "p",
            "h",
        )
        for i, e in enumerate(events)
    ]


def test_an_append_binds_once_per_request_and_once_per_event_without_one() -> None:
    a1, a2, b, loose = new("a"), new("a"), new("b"), new("")
    keys = index.keys(NAMES, [a1, a2, b, loose])
    assert keys == {
        "ns_crm-request-a": "a",
        "ns_crm-request-b": "b",
        f"ns_crm-event-{loose.event_id}": "",
    }


def test_bindings_read_back_without_the_released_ones() -> None:
    entries = [
        index.bound_event("Case-1", "r", "d", ["e1", "e2"], 0),
        index.bound_event("Case-1", "r", "d", ["e3"], 2),
        index.released_event(1),
        index.bound_event("Case-2", "r", "d", ["e4"], 0),
    ]
    found = index.bindings("ns_crm-request-r", stored(entries))
    assert [(b.entry, b.stream, b.event_ids, b.first_revision) for b in found] == [
        (0, "Case-1", ("e1", "e2"), 0),
        (3, "Case-2", ("e4",), 0),
    ]
    assert {b.index_stream for b in found} == {"ns_crm-request-r"}


def test_a_binding_is_recorded_void_or_pending_as_its_stream_says() -> None:
    events = [new("r"), new("r")]
    binding = index.Binding("k", 0, "Case-1", "r", "d", tuple(e.event_id for e in events), 3)
    there = recorded(events, 3)
    assert index.resolve(binding, lambda s, f, n: there).state is index.State.RECORDED
    others = recorded([new("x")], 3)
    assert index.resolve(binding, lambda s, f, n: others).state is index.State.VOID
    assert index.resolve(binding, lambda s, f, n: []).state is index.State.PENDING


def test_one_append_naming_two_commands_for_one_request_is_refused() -> None:
    with pytest.raises(ConcurrencyConflict, match="two commands"):
        index.check("Case-1", [new("r", "d1"), new("r", "d2")], 0, [], lambda s, f, n: [])
