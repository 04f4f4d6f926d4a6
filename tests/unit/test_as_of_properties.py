"""As of any point, a view equals the view the live path held once it had applied every event up
to that point: a property over generated histories.

A history interleaves a case worked by generated commands (tests/case_strategies.py), its
customer's tier changes and purchases, a second profile merged into the customer and released
again, and a stranger's events. The live side applies each event, one at a time, to a real SQLite
view store (the projections the in-process projector runs) and folds the customer aggregate, and
captures the case view, the customer and the timeline after each event. The as-of side folds the
stored streams (hash chained, recorded times with ties) as of random global positions and recorded
instants, and must find exactly what was captured at that moment.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.envelope import GENESIS_HASH, RecordedEvent, chain_hash
from crm.errors import HistoryBroken, InvalidInput
from projections.case_view import CaseView
from projections.store.memory_timeline import timeline_page
from projections.store.queries import MAX_PAGE_SIZE, TimelineQuery
from projections.store.sqlite import SqliteViewStore
from projections.timeline import TimelineEntry
from services.audit.as_of import AsOf, customer_as_of, timeline_as_of
from services.audit.case_checkpoints import KeptView, KeptViews, case_as_of_from
from services.bootstrap import CODEC
from services.case.commands import CaseCommand, OpenCase
from services.case.domain import Case, decide
from services.case.domain import evolve as evolve_case
from services.case.events import CaseEvent
from services.customer.domain import Customer
from services.customer.domain import evolve as evolve_customer
from services.customer.events import CustomerEvent, PurchaseRecorded, Tier, TierChanged
from services.events import DomainEvent
from tests.case_strategies import REFUSALS, T0, commands_before_closing, valid_openings
from tests.support import merged, new_event, registered, unmerged, whole_timeline

CUSTOMER, DUPLICATE, STRANGER = "cust-1", "cust-2", "cust-3"
RECORDED_FROM = T0 + timedelta(days=1)
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


def case_events(opening: OpenCase, commands: list[CaseCommand]) -> list[CaseEvent]:
    """What the case aggregate accepts of the commands, in order."""
    state: Case | None = None
    accepted: list[CaseEvent] = []
    for command in [opening, *commands]:
        try:
            decided = decide(command, state)
        except REFUSALS:
            continue
        for event in decided:
            state = evolve_case(state, event, T0 + timedelta(seconds=len(accepted)))
            accepted.append(event)
    return accepted


MOVES = st.sampled_from(["case", "case", "case", "tier", "purchase", "merge", "other", "stranger"])


@dataclass
class History:
    """The store's events in global order, each stream hash chained, recorded times with ties."""

    ticks: list[bool]
    occurred: list[int]
    records: list[RecordedEvent] = field(default_factory=list)
    heads: dict[str, str] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    recorded_at: datetime = RECORDED_FROM

    def record(self, stream: str, owner: str, event: DomainEvent) -> None:
        index = len(self.records)
        if self.ticks[index % len(self.ticks)]:
            self.recorded_at += timedelta(seconds=1)  # else: recorded in the same instant
        # Occurred times out of global order: the timeline sorts on them, the point does not.
        occurred = T0 + timedelta(minutes=self.occurred[index % len(self.occurred)])
        new = new_event(event, owner, occurred)
        revision = self.revisions.get(stream, -1) + 1
        previous = self.heads.get(stream, GENESIS_HASH)
        content = chain_hash(previous, stream, revision, new, self.recorded_at)
        self.records.append(
            RecordedEvent(
                stream=stream,
                revision=revision,
                global_position=index + 1,
                event_id=new.event_id,
                type=new.type,
                data=new.data,
                metadata=new.metadata,
                recorded_at=self.recorded_at,
                previous_hash=previous,
                content_hash=content,
            )
        )
        self.heads[stream], self.revisions[stream] = content, revision

    def stream(self, name: str) -> list[RecordedEvent]:
        return [record for record in self.records if record.stream == name]

    def streams(self) -> dict[str, list[RecordedEvent]]:
        return {name: self.stream(name) for name in self.revisions}


def write_history(
    case: list[CaseEvent], moves: list[str], ticks: list[bool], occurred: list[int]
) -> History:
    history = History(ticks, occurred)
    own, other = f"customer-{CUSTOMER}", f"customer-{DUPLICATE}"
    history.record(f"customer-{STRANGER}", STRANGER, registered(STRANGER))
    history.record(other, DUPLICATE, registered(DUPLICATE))
    history.record(own, CUSTOMER, registered(CUSTOMER))
    pending, tier, is_merged, merges = list(case), Tier.STANDARD, False, 0
    for move in [*moves, *["case"] * len(case)]:
        if move == "case" and pending:
            history.record(f"case-{pending[0].case_id}", CUSTOMER, pending.pop(0))
        elif move == "tier":
            to = Tier.VIP if tier is not Tier.VIP else Tier.LOYAL
            history.record(own, CUSTOMER, TierChanged(CUSTOMER, tier, to, "spent a lot"))
            tier = to
        elif move == "purchase":
            bought = PurchaseRecorded(CUSTOMER, f"o-{len(history.records)}", "Gold", 100, "JPY")
            history.record(own, CUSTOMER, bought)
        elif move == "merge":
            merges += not is_merged
            sides = (unmerged if is_merged else merged)(DUPLICATE, CUSTOMER, f"m-{merges}")
            history.record(other, DUPLICATE, sides[0])
            history.record(own, CUSTOMER, sides[1])
            is_merged = not is_merged
        elif move == "other":
            history.record(other, DUPLICATE, TierChanged(DUPLICATE, Tier.STANDARD, Tier.VIP, ""))
        elif move == "stranger":
            bought = PurchaseRecorded(STRANGER, f"s-{len(history.records)}", "Tea", 5, "JPY")
            history.record(f"customer-{STRANGER}", STRANGER, bought)
    return history


@dataclass(frozen=True)
class Moment:
    """What the live path showed once it had applied the events up to `position`."""

    position: int
    case: CaseView | None
    customer: Customer | None
    customer_position: int
    timeline: list[TimelineEntry]


def live(history: History, case_id: str, directory: Path) -> list[Moment]:
    """Apply each event to a real view store, as the projector does, and capture the views."""
    views = SqliteViewStore(directory / "views.db")
    customer: Customer | None = None
    customer_position = 0
    moments = [Moment(0, None, None, 0, [])]
    try:
        for record in history.records:
            event = CODEC.decode(record.type, record.data)
            views.apply([(record, event)], projections=("timeline", "case_views"))
            if record.stream == f"customer-{CUSTOMER}":
                event = cast(CustomerEvent, event)
                customer = evolve_customer(customer, event, record.metadata.occurred_at)
                customer_position = record.global_position
            timeline = whole_timeline(views, CUSTOMER) if customer is not None else []
            moments.append(
                Moment(
                    record.global_position,
                    views.case_view(case_id),
                    customer,
                    customer_position,
                    timeline,
                )
            )
    finally:
        views.close()
    return moments


def from_kept(history: History, stream: str, point: AsOf, kept: KeptViews) -> CaseView | None:
    """The case as AsOfReader folds it: from the nearest kept view (one every 3 events here)."""
    start = kept.nearest(stream, point)
    records = history.stream(stream)[0 if start is None else start.revision :]
    view, more = case_as_of_from(start, records, point, CODEC, every=3)
    kept.keep(stream, more)
    return view


def check(history: History, point: AsOf, then: Moment, case_id: str, kept: KeptViews) -> None:
    """The as-of views at `point` are the views of the moment `then`."""
    case, _ = case_as_of_from(None, history.stream(f"case-{case_id}"), point, CODEC)
    assert case == then.case, point  # folded whole, as the first question about a case is
    assert from_kept(history, f"case-{case_id}", point, kept) == then.case, point
    found = customer_as_of(history.stream(f"customer-{CUSTOMER}"), point, CODEC)
    if then.customer is None:
        assert found is None, point
        return
    assert found is not None, point
    assert found[0] == then.customer and found[1].global_position == then.customer_position
    entries = timeline_as_of(CUSTOMER, history.streams(), point, CODEC)
    query = TimelineQuery(CUSTOMER, page_size=MAX_PAGE_SIZE)
    assert timeline_page(entries, query).entries == then.timeline, point


@PROPERTY_SETTINGS
@given(
    valid_openings,
    st.lists(commands_before_closing, min_size=5, max_size=30),
    st.lists(MOVES, min_size=5, max_size=40),
    st.lists(st.booleans(), min_size=1, max_size=10),
    st.lists(st.integers(0, 600), min_size=1, max_size=10),
    st.data(),
)
def test_the_view_as_of_any_point_is_the_view_captured_live_then(
    opening: OpenCase,
    commands: list[CaseCommand],
    moves: list[str],
    ticks: list[bool],
    occurred: list[int],
    data: st.DataObject,
) -> None:
    history = write_history(case_events(opening, commands), moves, ticks, occurred)
    with tempfile.TemporaryDirectory() as directory:
        moments = live(history, opening.case_id, Path(directory))
    head = len(history.records)
    kept = KeptViews()  # shared by every point of the history, as the server shares it
    for position in data.draw(st.lists(st.integers(1, head), min_size=1, max_size=8)):
        check(history, AsOf(position=position), moments[position], opening.case_id, kept)
    for index in data.draw(st.lists(st.integers(0, head - 1), min_size=1, max_size=4)):
        # An instant takes in every event recorded at it (ties included), none recorded later.
        at = history.records[index].recorded_at
        last = max(r.global_position for r in history.records if r.recorded_at <= at)
        check(history, AsOf(recorded_at=at), moments[last], opening.case_id, kept)
        before = AsOf(recorded_at=at - timedelta(microseconds=1))
        last = max((r.global_position for r in history.records if r.recorded_at < at), default=0)
        check(history, before, moments[last], opening.case_id, kept)


def test_a_point_is_one_of_position_or_instant_and_positions_start_at_1() -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        AsOf()
    with pytest.raises(InvalidInput, match="exactly one"):
        AsOf(3, RECORDED_FROM)
    with pytest.raises(InvalidInput, match=r"as_of\.global_position"):
        AsOf(position=0)


def test_a_kept_view_whose_event_the_stream_no_longer_holds_unchanged_is_refused() -> None:
    history = write_history([], ["tier"] * 7, [True], [0])
    stream = f"customer-{CUSTOMER}"  # any stream serves: only the chain and the start are read
    records = history.stream(stream)
    _, kept = case_as_of_from(None, [], AsOf(position=1), CODEC)
    assert kept == []
    view = CaseView.__new__(CaseView)  # never folded on: the start is refused first
    start = KeptView(stream, 2, records[2].event_id, records[2].content_hash, 0, T0, view)
    moved = replace(start, event_id="another")
    with pytest.raises(HistoryBroken, match="no longer holds"):
        case_as_of_from(moved, records[2:], AsOf(position=99), CODEC)
    changed = replace(start, content_hash="0" * 64)
    with pytest.raises(HistoryBroken, match="changed since"):
        case_as_of_from(changed, records[2:], AsOf(position=99), CODEC)
