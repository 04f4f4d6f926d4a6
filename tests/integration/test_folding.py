"""Loading from a cached state or a snapshot plus the tail equals folding the whole stream.

Properties run every aggregate's generated histories through a real SQLite store: a snapshot at a
random revision plus the events after it gives the state of the full fold, and a snapshot written
by another fold version is ignored. The examples below them show what each part of loading reads.
"""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.envelope import EventMetadata, NewEvent, RecordedEvent, chain_hash
from crm.errors import HistoryBroken
from crm.eventstore.port import Snapshot, StreamState
from crm.eventstore.sqlite import SqliteEventStore
from crm.folding import Fold, StateLoader, encode_state
from crm.vocabulary import Actor, ActorKind, Channel
from services.bootstrap import CODEC
from services.case import domain as case_domain
from services.case.application import CASE_FOLD
from services.case.events import CaseNoteAdded
from services.customer import domain as customer_domain
from services.customer.application import CUSTOMER_FOLD
from services.customer.commands import RegisterCustomer
from services.customer.events import (
    CustomerMerged,
    CustomerMergeUndone,
    DuplicateAbsorbed,
    DuplicateReleased,
    Segment,
)
from services.feedback import domain as feedback_domain
from services.feedback.application import FEEDBACK_FOLD
from services.feedback.commands import RecordVoiceOfCustomer, SubmitReview, SubmitSurvey
from services.feedback.events import Sentiment, SentimentLabel
from tests.case_strategies import (
    REFUSALS,
    closings,
    commands_before_closing,
    instant,
    valid_open,
    valid_openings,
)
from tests.unit.test_domain_properties import customer_commands

S = TypeVar("S")
AGENT = Actor(ActorKind.AGENT, "agent-1")
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class CountingStore(SqliteEventStore):
    """A real store that remembers which revisions each read of a stream started from."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: list[tuple[str, int, int]] = []  # (stream, from revision, events read)

    def read_stream(
        self, stream: str, from_revision: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        events = super().read_stream(stream, from_revision, limit)
        self.reads.append((stream, from_revision, len(events)))
        return events


@contextmanager
def fresh_store() -> Iterator[CountingStore]:
    with tempfile.TemporaryDirectory() as tmp:
        store = CountingStore(Path(tmp) / "events.db")
        try:
            yield store
        finally:
            store.close()


def history_of(
    decide: Callable[[Any, Any], Sequence[Any]],
    evolve: Callable[[Any, Any, datetime], Any],
    commands: Sequence[Any],
) -> list[Any]:
    """The events a sequence of commands records, refused commands left out; an event in the
    sequence (a merge's side, decided with another customer's state) is recorded as it is."""
    state: Any = None
    history: list[Any] = []
    for command in commands:
        try:
            decided = [command] if hasattr(command, "TYPE") else decide(command, state)
        except REFUSALS:
            continue
        for event in decided:
            state = evolve(state, event, instant(len(history)))
            history.append(event)
    return history


def fold(evolve: Callable[[Any, Any, datetime], S], events: Sequence[Any]) -> S | None:
    state = None
    for index, event in enumerate(events):
        state = evolve(state, event, instant(index))
    return state


def append_history(store: SqliteEventStore, stream: str, events: Sequence[Any]) -> list[str]:
    """Append the events as commands would have, each at its own instant; returns their ids."""
    new_events = []
    for index, event in enumerate(events):
        type_name, data = CODEC.encode(event)
        metadata = EventMetadata("cust-1", instant(index), AGENT, "corr", "", f"req-{index}")
        new_events.append(NewEvent(str(uuid.uuid4()), type_name, data, metadata))
    if new_events:
        store.append(stream, new_events, StreamState.NO_STREAM)
    return [e.event_id for e in new_events]


def check_snapshot_plus_tail(fold_of: Fold[Any, Any], events: list[Any], point: int) -> None:
    """The property, for one history and one snapshot point."""
    stream = "agg-1"
    expected = fold(fold_of.evolve, events)
    with fresh_store() as store:
        event_ids = append_history(store, stream, events)
        at_point = fold(fold_of.evolve, events[: point + 1])
        data = encode_state(fold_of, at_point)
        store.save_snapshot(Snapshot(stream, point, event_ids[point], fold_of.version, data))

        store.reads.clear()
        loader = StateLoader(store, CODEC, fold_of, snapshot_every=10_000)
        assert loader.load(stream) == (expected, len(events) - 1)
        assert store.reads == [(stream, point, len(events) - point)], "snapshot plus tail only"

        # A snapshot of another fold version is ignored, however plausible its content.
        other = Snapshot(stream, point, event_ids[point], fold_of.version + 1, data)
        store.save_snapshot(other)
        store.reads.clear()
        loader = StateLoader(store, CODEC, fold_of, snapshot_every=10_000)
        assert loader.load(stream) == (expected, len(events) - 1)
        assert store.reads == [(stream, 0, len(events))], "folded from the first event"


@PROPERTY_SETTINGS
@given(
    valid_openings,
    st.lists(commands_before_closing, min_size=20, max_size=80),
    st.lists(closings, max_size=1),
    st.data(),
)
def test_case_from_snapshot_and_tail_equals_the_full_fold(
    opening: Any, commands: list[Any], closing: list[Any], data: Any
) -> None:
    history = [opening, *commands, *closing]
    events = history_of(case_domain.decide, case_domain.evolve, history)
    point = data.draw(st.integers(0, len(events) - 1), label="snapshot revision")
    check_snapshot_plus_tail(CASE_FOLD, events, point)


REGISTERED = RegisterCustomer("cust-1", "Hana Sato", (), "ja", Segment.B2C)
others = st.sampled_from(["cust-2", "cust-3"])
merge_ids = st.sampled_from(["merge-1", "merge-2"])
merge_sides = st.one_of(
    st.builds(CustomerMerged, st.just("cust-1"), others, merge_ids, st.just("same phone")),
    st.builds(DuplicateAbsorbed, st.just("cust-1"), others, merge_ids, st.just("same phone")),
    st.builds(CustomerMergeUndone, st.just("cust-1"), others, merge_ids, st.just("not the same")),
    st.builds(DuplicateReleased, st.just("cust-1"), others, merge_ids, st.just("not the same")),
)


@PROPERTY_SETTINGS
@given(st.lists(st.one_of(customer_commands, merge_sides), min_size=5, max_size=40), st.data())
def test_customer_from_snapshot_and_tail_equals_the_full_fold(steps: list[Any], data: Any) -> None:
    events = history_of(customer_domain.decide, customer_domain.evolve, [REGISTERED, *steps])
    point = data.draw(st.integers(0, len(events) - 1), label="snapshot revision")
    check_snapshot_plus_tail(CUSTOMER_FOLD, events, point)


sentiments = st.builds(
    Sentiment,
    st.sampled_from(SentimentLabel),
    st.floats(-1.0, 1.0, allow_nan=False),
    st.sampled_from(["", "en", "ja"]),
    st.sampled_from(["", "vader-3.3.2"]),
)
feedback_commands = st.one_of(
    st.builds(
        SubmitSurvey,
        st.just("fb-1"),
        st.just("cust-1"),
        st.sampled_from(Channel),
        st.sampled_from(["", "case-1"]),
        st.one_of(st.none(), st.integers(1, 5)),
        st.one_of(st.none(), st.integers(0, 10)),
        st.one_of(st.none(), st.integers(1, 7)),
        st.sampled_from(["", "Quick and kind."]),
        sentiments,
    ),
    st.builds(
        SubmitReview,
        st.just("fb-1"),
        st.just("cust-1"),
        st.integers(1, 5),
        st.just("Slow replies."),
        st.just("app-store"),
        st.sampled_from(["", "case-1"]),
        sentiments,
    ),
    st.builds(
        RecordVoiceOfCustomer,
        st.just("fb-1"),
        st.just("cust-1"),
        st.sampled_from(Channel),
        st.just("The FAQ is hard to find."),
        st.sampled_from(["", "case-1"]),
        sentiments,
    ),
)


@PROPERTY_SETTINGS
@given(st.lists(feedback_commands, min_size=1, max_size=3))
def test_feedback_from_snapshot_and_tail_equals_the_full_fold(commands: list[Any]) -> None:
    events = history_of(feedback_domain.decide, feedback_domain.evolve, commands)
    if events:  # feedback is recorded once: its only snapshot point is its one event
        check_snapshot_plus_tail(FEEDBACK_FOLD, events, 0)


# ---------------------------------------------------------------- what loading reads

NOTES = 250


@pytest.fixture
def long_case(tmp_path: Path) -> Iterator[tuple[CountingStore, list[Any]]]:
    store = CountingStore(tmp_path / "events.db")
    opened = case_domain.decide(valid_open, None)
    notes = [CaseNoteAdded("case-1", f"note-{n}", "called") for n in range(NOTES)]
    events = [*opened, *notes]
    append_history(store, "case-case-1", events)
    try:
        yield store, events
    finally:
        store.close()


def loader(store: SqliteEventStore, **options: int) -> StateLoader[Any, Any]:
    return StateLoader(store, CODEC, CASE_FOLD, **options)


def test_a_cold_load_writes_a_snapshot_and_the_next_reads_from_it(
    long_case: tuple[CountingStore, list[Any]],
) -> None:
    store, events = long_case
    expected = fold(case_domain.evolve, events)
    assert loader(store, snapshot_every=100).load("case-case-1") == (expected, len(events) - 1)
    snapshot = store.read_snapshot("case-case-1")
    assert snapshot is not None and snapshot.revision == len(events) - 1
    store.reads.clear()
    assert loader(store, snapshot_every=100).load("case-case-1") == (expected, len(events) - 1)
    assert store.reads == [("case-case-1", len(events) - 1, 1)]


@pytest.mark.parametrize("flaw", ["event id", "revision past the end", "state unreadable"])
def test_a_snapshot_that_does_not_match_its_stream_is_ignored_and_replaced(
    long_case: tuple[CountingStore, list[Any]], flaw: str
) -> None:
    store, events = long_case
    expected = fold(case_domain.evolve, events)
    good = encode_state(CASE_FOLD, fold(case_domain.evolve, events[:10]))
    recorded = store.read_stream("case-case-1")
    snapshot = {
        "event id": Snapshot("case-case-1", 9, recorded[8].event_id, CASE_FOLD.version, good),
        "revision past the end": Snapshot(
            "case-case-1", len(events) + 5, recorded[-1].event_id, CASE_FOLD.version, good
        ),
        "state unreadable": Snapshot(
            "case-case-1", 9, recorded[9].event_id, CASE_FOLD.version, b'{"case_id": 1}'
        ),
    }[flaw]
    store.save_snapshot(snapshot)
    assert loader(store, snapshot_every=100).load("case-case-1") == (expected, len(events) - 1)
    replaced = store.read_snapshot("case-case-1")
    assert replaced is not None and replaced.revision == len(events) - 1
    assert replaced.event_id == recorded[-1].event_id


def test_a_warm_cache_reads_only_the_events_after_it(
    long_case: tuple[CountingStore, list[Any]],
) -> None:
    store, events = long_case
    states = loader(store, snapshot_every=10_000)
    states.load("case-case-1")
    more = [CaseNoteAdded("case-1", "note-late", "called again")]
    type_name, data = CODEC.encode(more[0])
    metadata = EventMetadata("cust-1", instant(len(events)), AGENT, "corr", "", "req-late")
    store.append(
        "case-case-1", [NewEvent(str(uuid.uuid4()), type_name, data, metadata)], len(events) - 1
    )
    store.reads.clear()
    state, revision = states.load("case-case-1")
    assert (state, revision) == (fold(case_domain.evolve, [*events, *more]), len(events))
    assert store.reads == [("case-case-1", len(events) - 1, 2)]


def test_a_cached_state_of_a_stream_that_no_longer_holds_its_event_is_not_used(
    tmp_path: Path,
) -> None:
    """E.g. a store restored from an older copy: the cache must not stand in for it."""
    first = CountingStore(tmp_path / "first.db")
    opened = case_domain.decide(valid_open, None)
    append_history(first, "case-case-1", opened)
    states = loader(first)
    states.load("case-case-1")
    first.close()

    other = CountingStore(tmp_path / "other.db")
    events = [*case_domain.decide(replace(valid_open, subject="Another"), None)]
    append_history(other, "case-case-1", events)
    restored = loader(other)
    restored.cache = states.cache  # what the process remembers of the stream before
    try:
        state, _ = restored.load("case-case-1")
        assert state == fold(case_domain.evolve, events)
        assert other.reads == [("case-case-1", 0, 1), ("case-case-1", 0, 1)]
    finally:
        other.close()


def test_the_cache_keeps_the_most_recently_used_streams_only(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "events.db")
    try:
        for n in range(5):
            opening = replace(valid_open, case_id=f"case-{n}")
            append_history(store, f"case-case-{n}", case_domain.decide(opening, None))
        states = loader(store, cache_size=3)
        for n in range(5):
            states.load(f"case-case-{n}")
        states.load("case-case-2")  # used again: kept when the next one comes in
        states.load("case-case-0")
        assert len(states.cache) == 3
        assert all(states.cache.get(s) for s in ("case-case-0", "case-case-2", "case-case-4"))
        assert states.cache.get("case-case-1") is None and states.cache.get("case-case-3") is None
    finally:
        store.close()


def _rewrite(path: Path, stream: str, revision: int) -> None:
    """Change a stored event's data behind the store's back, as an intruder with file access."""
    with sqlite3.connect(path) as raw:
        raw.execute(
            "UPDATE events SET data = ? WHERE stream = ? AND revision = ?",
            (b'{"case_id": "case-1", "note_id": "x", "text": "rewritten"}', stream, revision),
        )


@pytest.mark.parametrize("start", ["cold", "snapshot", "warm cache"])
def test_a_rewritten_event_in_what_a_load_reads_breaks_it_with_history_broken(
    long_case: tuple[CountingStore, list[Any]], start: str, tmp_path: Path
) -> None:
    store, events = long_case
    states = loader(store, snapshot_every=10 if start == "snapshot" else 10_000)
    if start != "cold":
        states.load("case-case-1")  # leaves a cached state (and a snapshot) at the end
        metadata = EventMetadata("cust-1", instant(len(events)), AGENT, "corr", "", "req-late")
        type_name, data = CODEC.encode(CaseNoteAdded("case-1", "note-late", "called again"))
        event = NewEvent(str(uuid.uuid4()), type_name, data, metadata)
        store.append("case-case-1", [event], len(events) - 1)
    if start == "snapshot":
        states = loader(store, snapshot_every=10)  # a new process: no cache, the snapshot
    _rewrite(tmp_path / "events.db", "case-case-1", len(events) if start != "cold" else 3)
    with pytest.raises(HistoryBroken, match="its content was altered") as broken:
        states.load("case-case-1")
    assert broken.value.stream == "case-case-1"
    assert broken.value.revision == (len(events) if start != "cold" else 3)


def test_a_cached_event_rewritten_in_place_breaks_the_next_load(
    long_case: tuple[CountingStore, list[Any]], tmp_path: Path
) -> None:
    store, events = long_case
    states = loader(store, snapshot_every=10_000)
    states.load("case-case-1")
    _rewrite(tmp_path / "events.db", "case-case-1", len(events) - 1)
    with pytest.raises(HistoryBroken, match="its content was altered"):
        states.load("case-case-1")


def test_a_cached_event_rewritten_and_resealed_breaks_the_next_load(
    long_case: tuple[CountingStore, list[Any]], tmp_path: Path
) -> None:
    store, _ = long_case
    states = loader(store, snapshot_every=10_000)
    states.load("case-case-1")
    last = store.read_stream("case-case-1")[-1]
    forged = NewEvent(last.event_id, last.type, b'{"text": "rewritten"}', last.metadata)
    resealed = chain_hash(last.previous_hash, last.stream, last.revision, forged, last.recorded_at)
    with sqlite3.connect(tmp_path / "events.db") as raw:
        raw.execute(
            "UPDATE events SET data = ?, content_hash = ? WHERE stream = ? AND revision = ?",
            (forged.data, resealed, last.stream, last.revision),
        )
    with pytest.raises(HistoryBroken, match="changed since it was last read"):
        states.load("case-case-1")
