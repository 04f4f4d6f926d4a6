"""Test helpers: record domain events as the services would, with envelopes, and read views back.

`EventLog` files each event in its stream (`customer-<id>`, `case-<id>`, `feedback-<id>`) with
metadata naming its customer, an actor and an instant from a clock that steps one minute per event,
so tests read like a story and never depend on the wall clock. `BatchLog` tells the same story
without a store, as the batch a view store applies.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crm.envelope import GENESIS_HASH, EventMetadata, NewEvent, RecordedEvent
from crm.eventstore.port import AppendResult, EventStore, StreamState
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from projections.case_view import CaseView
from projections.catalogue import TIMELINE
from projections.store.port import ViewStore
from projections.store.queries import MAX_PAGE_SIZE, TimelineQuery
from projections.timeline import TimelineEntry
from services.bootstrap import CODEC
from services.case import events as case_events
from services.case.events import (
    CaseOpened,
    CaseResolved,
    CaseTransferred,
    Category,
    ContactHandedOver,
    ContactOutcome,
    ContactRecorded,
)
from services.customer import events as customer_events
from services.customer.events import (
    ContactPoint,
    CustomerMerged,
    CustomerMergeUndone,
    CustomerRegistered,
    DuplicateAbsorbed,
    DuplicateReleased,
    PurchaseRecorded,
    Segment,
    Tier,
)
from services.events import DomainEvent
from services.feedback import events as feedback_events
from services.feedback.events import SurveySubmitted

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "a-17")
SYSTEM = Actor(ActorKind.SYSTEM, "crm")


def stream_of(event: DomainEvent) -> str:
    """The stream a service appends the event to."""
    if isinstance(event, case_events.EVENT_TYPES):
        return f"case-{event.case_id}"
    if isinstance(event, feedback_events.EVENT_TYPES):
        return f"feedback-{event.feedback_id}"
    if isinstance(event, customer_events.EVENT_TYPES):
        return f"customer-{event.customer_id}"
    raise TypeError(f"not a domain event: {event!r}")


def owner_of(event: DomainEvent) -> str:
    """The customer an event names itself, "" for case events after CaseOpened."""
    if isinstance(event, CaseOpened):
        return event.customer_id
    if isinstance(event, (customer_events.EVENT_TYPES, feedback_events.EVENT_TYPES)):
        return event.customer_id
    return ""


def new_event(
    event: DomainEvent, customer_id: str, at: datetime = T0, actor: Actor = AGENT
) -> NewEvent:
    """The event as a service would append it, with a fresh id and a full envelope."""
    type_name, data = CODEC.encode(event)
    request_id = str(uuid.uuid4())
    return NewEvent(
        event_id=str(uuid.uuid4()),
        type=type_name,
        data=data,
        metadata=EventMetadata(
            customer_id=customer_id,
            occurred_at=at,
            actor=actor,
            correlation_id=request_id,
            causation_id=request_id,
            request_id=request_id,
        ),
    )


def recorded(
    event: DomainEvent,
    position: int,
    customer_id: str = "",
    at: datetime = T0,
    actor: Actor = AGENT,
) -> RecordedEvent:
    """A recorded event without a store, for pure projection tests."""
    owner = customer_id or owner_of(event)
    new = new_event(event, owner, at, actor)
    return RecordedEvent(
        stream=stream_of(event),
        revision=0,
        global_position=position,
        event_id=new.event_id,
        type=new.type,
        data=new.data,
        metadata=new.metadata,
        recorded_at=at,
        previous_hash=GENESIS_HASH,
        content_hash="",
    )


class Positioned(Protocol):
    """Anything that says where an event landed in the global order."""

    @property
    def global_position(self) -> int: ...


class Recorder(Protocol):
    """Records a story's events one by one: `EventLog` into a store, `BatchLog` into a batch."""

    def record(
        self, event: DomainEvent, *, actor: Actor = AGENT, at: datetime | None = None
    ) -> Positioned: ...


class _Teller:
    """What both logs share: a clock that steps per event, and which customer owns each case."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now = start
        self.step = step
        self._case_owner: dict[str, str] = {}

    def _envelope(self, event: DomainEvent, at: datetime | None) -> tuple[str, datetime]:
        """The customer the event is filed under and when it happened; moves the clock on."""
        if isinstance(event, CaseOpened):
            self._case_owner[event.case_id] = event.customer_id
        owner = owner_of(event)
        if not owner and isinstance(event, case_events.EVENT_TYPES):
            owner = self._case_owner[event.case_id]
        when = at or self.now
        self.now = when + self.step
        return owner, when


class EventLog(_Teller):
    """Appends domain events to a store in the order a story tells them."""

    def __init__(
        self, store: EventStore, start: datetime = T0, step: timedelta = timedelta(minutes=1)
    ) -> None:
        super().__init__(start, step)
        self.store = store

    def record(
        self, event: DomainEvent, *, actor: Actor = AGENT, at: datetime | None = None
    ) -> AppendResult:
        """Append one event to its stream; returns where it landed."""
        owner, when = self._envelope(event, at)
        return self.store.append(
            stream_of(event), [new_event(event, owner, when, actor)], StreamState.ANY
        )

    def record_all(self, *events: DomainEvent, actor: Actor = AGENT) -> int:
        """Append events one by one; returns the global position of the last."""
        position = 0
        for event in events:
            position = self.record(event, actor=actor).global_position
        return position


class BatchLog(_Teller):
    """Records a story as the store would hand it out, positions 1, 2, ..., without a store:
    the batch a view store applies, for tests of projections and view stores."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(minutes=1)) -> None:
        super().__init__(start, step)
        self.batch: list[tuple[RecordedEvent, DomainEvent]] = []

    def record(
        self, event: DomainEvent, *, actor: Actor = AGENT, at: datetime | None = None
    ) -> RecordedEvent:
        """Record one event at the next global position; returns it as recorded."""
        owner, when = self._envelope(event, at)
        position = len(self.batch) + 1
        recorded_event = recorded(event, position, owner, when, actor)
        self.batch.append((recorded_event, event))
        return recorded_event

    def record_all(self, *events: DomainEvent, actor: Actor = AGENT) -> int:
        """Record events one by one; returns the global position of the last."""
        position = 0
        for event in events:
            position = self.record(event, actor=actor).global_position
        return position


# ---------------------------------------------------------------- sample events


def registered(customer_id: str, name: str = "Hanako Yamada") -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        name=name,
        contact_points=(ContactPoint(Channel.EMAIL, "hanako@example.com"),),
        language="ja",
        segment=Segment.B2C,
        company="",
        tier=Tier.STANDARD,
    )


def opened(
    case_id: str,
    customer_id: str,
    channel: Channel = Channel.PHONE,
    priority: Priority = Priority.HIGH,
) -> CaseOpened:
    return CaseOpened(
        case_id=case_id,
        customer_id=customer_id,
        channel=channel,
        category=Category.BILLING_PAYMENT,
        priority=priority,
        subject="My card was charged twice",
        description="The May invoice was debited twice from my card ending 4242.",
        department="billing",
    )


def contact(
    case_id: str,
    contact_id: str,
    channel: Channel = Channel.PHONE,
    direction: Direction = Direction.INBOUND,
    outcome: ContactOutcome = ContactOutcome.ANSWERED,
    handler: Actor = AGENT,
    started_at: datetime = T0,
) -> ContactRecorded:
    return ContactRecorded(
        case_id=case_id,
        contact_id=contact_id,
        channel=channel,
        direction=direction,
        handler_kind=handler.kind,
        handler_id=handler.id,
        outcome=outcome,
        started_at=started_at,
        talk_seconds=320,
        hold_seconds=0,
        after_work_seconds=30,
    )


def survey(
    feedback_id: str,
    customer_id: str,
    case_id: str = "",
    csat: int | None = 2,
    channel: Channel = Channel.EMAIL,
) -> SurveySubmitted:
    return SurveySubmitted(
        feedback_id=feedback_id,
        customer_id=customer_id,
        case_id=case_id,
        channel=channel,
        csat=csat,
        nps=None,
        ces=None,
        comment="The agent was rude and I waited forever",
    )


def merged(duplicate: str, survivor: str, merge_id: str = "m-1") -> list[DomainEvent]:
    """Both sides of a merge, as the customer service appends them."""
    return [
        CustomerMerged(duplicate, survivor, merge_id, "same person, two sign-ups"),
        DuplicateAbsorbed(survivor, duplicate, merge_id, "same person, two sign-ups"),
    ]


def unmerged(duplicate: str, survivor: str, merge_id: str = "m-1") -> list[DomainEvent]:
    """Both sides of an undone merge."""
    return [
        CustomerMergeUndone(duplicate, survivor, merge_id, "different people after all"),
        DuplicateReleased(survivor, duplicate, merge_id, "different people after all"),
    ]


BOT = Actor(ActorKind.BOT, "bot-1")


def two_customer_story(log: Recorder) -> dict[str, list[int]]:
    """Two customers with cases, contacts and feedback, interleaved; positions per customer."""
    mine: dict[str, list[int]] = {"c-1": [], "c-2": []}

    def rec(customer_id: str, event: DomainEvent) -> None:
        mine[customer_id].append(log.record(event).global_position)

    rec("c-1", registered("c-1"))
    rec("c-2", registered("c-2", "Taro Suzuki"))
    rec("c-1", opened("case-1", "c-1"))
    rec("c-1", contact("case-1", "ct-1", handler=BOT, channel=Channel.CHATBOT))
    rec("c-2", opened("case-9", "c-2", channel=Channel.EMAIL))
    rec("c-1", ContactHandedOver("case-1", "ct-1", "bot-1", "a-17", "tier1"))
    rec("c-1", contact("case-1", "ct-2", started_at=T0 + timedelta(minutes=30)))
    rec("c-2", contact("case-9", "ct-9", channel=Channel.EMAIL, direction=Direction.OUTBOUND))
    rec("c-1", CaseTransferred("case-1", "billing", "technical", "card dispute"))
    rec("c-1", opened("case-2", "c-1", channel=Channel.CHAT, priority=Priority.LOW))
    rec("c-1", survey("f-1", "c-1", "case-1", csat=2))
    rec("c-2", survey("f-9", "c-2", "case-9", csat=5, channel=Channel.PHONE))
    rec("c-1", CaseResolved("case-1", "refunded", ""))
    rec("c-1", PurchaseRecorded("c-1", "o-1", "Gold", 1000, "JPY"))
    rec("c-1", contact("case-2", "ct-3", channel=Channel.CHAT))
    return mine


# ---------------------------------------------------------------- reading views back


def whole_timeline(views: ViewStore, customer_id: str, **filters: Any) -> list[TimelineEntry]:
    """A customer's whole timeline in one page (it must fit), with the given filters."""
    page = views.timeline(TimelineQuery(customer_id, page_size=MAX_PAGE_SIZE, **filters))
    assert page.next_page_token == ""
    return page.entries


def positions(entries: list[TimelineEntry]) -> list[int]:
    return [entry.global_position for entry in entries]


def snapshot(
    views: ViewStore, customer_ids: list[str], case_ids: list[str]
) -> tuple[int, dict[str, list[TimelineEntry]], dict[str, CaseView | None]]:
    """The timeline's checkpoint, the customers' timelines and the cases' views, to compare."""
    return (
        views.checkpoint(TIMELINE.name),
        {cid: whole_timeline(views, cid) for cid in customer_ids},
        {case_id: views.case_view(case_id) for case_id in case_ids},
    )


class FakeClock:
    """Time that moves only when a test moves it; pass it wherever a Clock is expected."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
