"""The envelope's hash chain: what an auditor can prove from a stream's events, without a store.

The chain must guarantee that the hash of a stream's last event commits to every event before it:
whoever rewrites an earlier event, and reseals it, has to reseal every later one too, and the head
hash an auditor kept no longer matches. Hashes are also a stored format: an event hashed by an
earlier release must still verify.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.envelope import (
    GENESIS_HASH,
    EventMetadata,
    NewEvent,
    RecordedEvent,
    StoredAt,
    canonical_json,
    chain_hash,
    stored_metadata,
    verify_chain,
    verify_links,
)
from crm.errors import HistoryBroken, IntegrityError
from crm.vocabulary import Actor, ActorKind

STREAM = "case-1"
RECORDED_AT = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)
METADATA = EventMetadata(
    customer_id="cust-1",
    occurred_at=datetime(2026, 3, 2, 18, 0, tzinfo=timezone(timedelta(hours=9))),
    actor=Actor(ActorKind.AGENT, "a-17"),
    correlation_id="corr-1",
    causation_id="cause-1",
    request_id="req-1",
    command_digest="digest-1",
)


def new_event(n: int, data: bytes | None = None) -> NewEvent:
    payload = data if data is not None else f'{{"note": "note {n}"}}'.encode()
    return NewEvent(f"ev-{n}", "crm.case.NoteAdded.v1", payload, METADATA)


def seal(events: list[NewEvent], stream: str = STREAM) -> list[RecordedEvent]:
    """Record events the way the store does: each hashed with the hash of the one before."""
    recorded, previous = [], GENESIS_HASH
    for revision, event in enumerate(events):
        at = RECORDED_AT + revision * timedelta(seconds=1)
        content_hash = chain_hash(previous, stream, revision, event, at)
        recorded.append(
            RecordedEvent(
                stream,
                revision,
                revision + 1,
                event.event_id,
                event.type,
                event.data,
                event.metadata,
                at,
                previous,
                content_hash,
            )
        )
        previous = content_hash
    return recorded


def reseal(event: RecordedEvent, **changes: Any) -> RecordedEvent:
    """Change an event and give it a content hash that matches its new content."""
    changed = replace(event, **changes)
    as_new = NewEvent(changed.event_id, changed.type, changed.data, changed.metadata)
    content_hash = chain_hash(
        changed.previous_hash, changed.stream, changed.revision, as_new, changed.recorded_at
    )
    return replace(changed, content_hash=content_hash)


# ---------------------------------------------------------------- an intact chain


def test_an_intact_chain_verifies_and_counts_its_events() -> None:
    chain = seal([new_event(n) for n in range(4)])

    assert verify_chain(chain) == 4
    assert verify_chain([]) == 0
    assert chain[0].previous_hash == GENESIS_HASH == "0" * 64
    assert [later.previous_hash for later in chain[1:]] == [e.content_hash for e in chain[:-1]]


def test_a_hash_is_the_same_today_as_when_the_event_was_stored() -> None:
    # Stored events keep the hash they were recorded with: a change to what is hashed, or how,
    # would make every existing store fail its audit. The value below was computed when the
    # format was fixed; it may only change together with a migration of stored hashes.
    content_hash = chain_hash("ab" * 32, "case-7", 3, new_event(1), RECORDED_AT)

    assert content_hash == "e2bd74caea93b184767b14fbd86706d9dddbd0186a373854123786b7c46924c7"


def test_canonical_json_is_one_byte_form_whatever_the_key_order() -> None:
    assert canonical_json({"b": [1, 2], "a": "é"}) == '{"a":"é","b":[1,2]}'.encode()
    assert canonical_json({"a": "é", "b": [1, 2]}) == canonical_json({"b": [1, 2], "a": "é"})


# ---------------------------------------------------------------- what the chain proves


def test_an_earlier_event_rewritten_and_resealed_breaks_the_link_to_the_next() -> None:
    # given a stream of three events
    chain = seal([new_event(n) for n in range(3)])
    # when the first is rewritten and resealed, and the second is made to point at it
    forged = reseal(chain[0], data=b'{"note": "nothing happened"}')
    relinked = replace(chain[1], previous_hash=forged.content_hash)
    # then the second event's own hash gives the forgery away: it covers the link it was sealed with
    with pytest.raises(
        IntegrityError, match=r"case-1 is broken at revision 1 .*: its content was altered"
    ):
        verify_chain([forged, relinked, chain[2]])


def test_an_event_whose_link_is_changed_and_resealed_no_longer_fits_the_chain() -> None:
    chain = seal([new_event(n) for n in range(3)])
    cut_loose = reseal(chain[1], previous_hash="f" * 64)

    with pytest.raises(
        IntegrityError,
        match=r"case-1 is broken at revision 1 .*: its link to the previous",
    ):
        verify_chain([chain[0], cut_loose, chain[2]])


@settings(max_examples=50, deadline=None)
@given(length=st.integers(2, 6), data=st.data())
def test_the_last_hash_commits_to_every_earlier_event(length: int, data: st.DataObject) -> None:
    # given two histories that differ in one earlier event only
    altered = data.draw(st.integers(0, length - 2), label="altered")
    events = [new_event(n) for n in range(length)]
    other = list(events)
    other[altered] = new_event(altered, data=b'{"note": "something else"}')
    # when both are sealed, then the head hashes differ: an auditor who kept the head sees it
    assert seal(events)[-1].content_hash != seal(other)[-1].content_hash


def test_the_same_event_hashes_differently_after_a_different_predecessor() -> None:
    event = new_event(1)

    first = chain_hash(GENESIS_HASH, STREAM, 1, event, RECORDED_AT)
    second = chain_hash("1" * 64, STREAM, 1, event, RECORDED_AT)

    assert first != second


EVENT_CHANGES: dict[str, dict[str, Any]] = {
    "stream": {"stream": "case-2"},
    "event id": {"event_id": "ev-other"},
    "type": {"type": "crm.case.CaseClosed.v1"},
    "data": {"data": b'{"note": "note 1 "}'},
    "recorded at": {"recorded_at": RECORDED_AT + timedelta(microseconds=1)},
    "customer": {"metadata": replace(METADATA, customer_id="cust-2")},
    "occurred at": {"metadata": replace(METADATA, occurred_at=RECORDED_AT)},
    "actor kind": {"metadata": replace(METADATA, actor=Actor(ActorKind.SUPERVISOR, "a-17"))},
    "actor id": {"metadata": replace(METADATA, actor=Actor(ActorKind.AGENT, "a-18"))},
    "correlation": {"metadata": replace(METADATA, correlation_id="corr-2")},
    "causation": {"metadata": replace(METADATA, causation_id="cause-2")},
    "request": {"metadata": replace(METADATA, request_id="req-2")},
    "command digest": {"metadata": replace(METADATA, command_digest="digest-2")},
}


@pytest.mark.parametrize("changes", EVENT_CHANGES.values(), ids=EVENT_CHANGES.keys())
def test_any_part_of_a_recorded_event_altered_is_detected(changes: dict[str, Any]) -> None:
    chain = seal([new_event(n) for n in range(3)])
    altered = replace(chain[1], **changes)

    with pytest.raises(IntegrityError, match=r"at revision 1 \(.*\): its content was altered"):
        verify_chain([chain[0], altered, chain[2]])


def test_the_revision_is_hashed_too() -> None:
    event = new_event(1)

    assert chain_hash(GENESIS_HASH, STREAM, 1, event, RECORDED_AT) != chain_hash(
        GENESIS_HASH, STREAM, 2, event, RECORDED_AT
    )


# ---------------------------------------------------------------- order and completeness


def test_a_missing_event_is_named_by_the_revision_found_in_its_place() -> None:
    chain = seal([new_event(n) for n in range(3)])

    with pytest.raises(
        IntegrityError,
        match=r"case-1 is broken at revision 2 .*: found where revision 1 belongs$",
    ):
        verify_chain([chain[0], chain[2]])


def test_a_stream_that_does_not_start_at_the_genesis_hash_is_refused() -> None:
    chain = seal([new_event(n) for n in range(2)])

    with pytest.raises(
        IntegrityError,
        match=r"case-1 is broken at revision 1 .*: its link to the previous event",
    ):
        verify_chain([chain[0], replace(chain[1], previous_hash=GENESIS_HASH)])
    with pytest.raises(
        IntegrityError,
        match=r"case-1 is broken at revision 0 .*: its link to the previous event",
    ):
        verify_chain([reseal(chain[0], previous_hash="1" * 64)])


def test_an_altered_event_is_named_by_stream_and_revision() -> None:
    (only,) = seal([new_event(0)])

    with pytest.raises(
        IntegrityError,
        match=r"case-1 is broken at revision 0 .*: its content was altered",
    ):
        verify_chain([replace(only, data=b"{}")])


# ---------------------------------------------------------------- metadata and payload


def test_metadata_round_trips_through_its_dict_form() -> None:
    as_dict = METADATA.to_dict()

    assert as_dict == {
        "customer_id": "cust-1",
        "occurred_at": "2026-03-02T18:00:00+09:00",
        "actor_kind": "agent",
        "actor_id": "a-17",
        "correlation_id": "corr-1",
        "causation_id": "cause-1",
        "request_id": "req-1",
        "command_digest": "digest-1",
    }
    assert EventMetadata.from_dict(as_dict) == METADATA


def test_metadata_stored_before_command_digests_reads_with_an_empty_digest() -> None:
    older = METADATA.to_dict()
    del older["command_digest"]

    assert EventMetadata.from_dict(older) == replace(METADATA, command_digest="")


def test_the_payload_is_the_decoded_data() -> None:
    (only,) = seal([new_event(0, data='{"note": "é", "n": 2}'.encode())])

    assert only.payload() == {"note": "é", "n": 2}


def test_a_chain_can_be_checked_from_the_middle_on_its_known_head() -> None:
    chain = seal([new_event(n) for n in range(4)])
    assert verify_links(chain[2:], chain[1].content_hash, 2) == chain[3].content_hash
    assert verify_links([], chain[1].content_hash, 2) == chain[1].content_hash
    with pytest.raises(HistoryBroken, match=r"revision 2 .*: found where revision 3 belongs"):
        verify_links(chain[2:], chain[1].content_hash, 3)
    with pytest.raises(HistoryBroken, match=r"revision 2 .*: its link to the previous"):
        verify_links(chain[2:], chain[0].content_hash, 2)


def test_stored_metadata_that_no_longer_decodes_names_the_event() -> None:
    (event,) = seal([new_event(0)])
    where = StoredAt(event.stream, 0, 7)
    assert stored_metadata(where, json.dumps(event.metadata.to_dict())) == event.metadata
    for altered in ('{"actor_kind": "admin"}', "not json", "[1, 2]"):
        with pytest.raises(HistoryBroken) as broken:
            stored_metadata(where, altered)
        assert (broken.value.stream, broken.value.revision) == (event.stream, 0)
        assert str(broken.value).startswith(
            f"the history of {event.stream} is broken at revision 0 (global position 7)"
        )
        assert "its stored metadata no longer decodes (" in str(broken.value)
    with pytest.raises(HistoryBroken, match=r"no longer decodes \(JSONDecodeError: "):
        stored_metadata(where, "not json")
