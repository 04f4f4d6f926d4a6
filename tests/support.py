"""Test helpers: record domain events in an event store as the services would, with envelopes.

`EventLog` files each event in its stream (`customer-<id>`, `case-<id>`, `feedback-<id>`) with
metadata naming its customer, an actor and an instant from a clock that steps one minute per event,
so tests read like a story and never depend on the wall clock.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from crm.envelope import GENESIS_HASH, EventMetadata, NewEvent, RecordedEvent
from crm.eventstore.port import AppendResult, EventStore, StreamState
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from services.bootstrap import CODEC
from services.case import events as case_events
from services.case.events import CaseOpened, Category, ContactOutcome, ContactRecorded
from services.customer import events as customer_events
from services.customer.events import (
    ContactPoint,
    CustomerMerged,
    CustomerMergeUndone,
    CustomerRegistered,
    DuplicateAbsorbed,
    DuplicateReleased,
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


class EventLog:
    """Appends domain events to a store in the order a story tells them."""

    def __init__(
        self, store: EventStore, start: datetime = T0, step: timedelta = timedelta(minutes=1)
    ) -> None:
        self.store = store
        self.now = start
        self.step = step
        self._case_owner: dict[str, str] = {}

    def record(
        self, event: DomainEvent, *, actor: Actor = AGENT, at: datetime | None = None
    ) -> AppendResult:
        """Append one event to its stream; returns where it landed."""
        if isinstance(event, CaseOpened):
            self._case_owner[event.case_id] = event.customer_id
        owner = owner_of(event)
        if not owner and isinstance(event, case_events.EVENT_TYPES):
            owner = self._case_owner[event.case_id]
        when = at or self.now
        self.now = when + self.step
        return self.store.append(
            stream_of(event), [new_event(event, owner, when, actor)], StreamState.ANY
        )

    def record_all(self, *events: DomainEvent, actor: Actor = AGENT) -> int:
        """Append events one by one; returns the global position of the last."""
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


class FakeClock:
    """Time that moves only when a test moves it; pass it wherever a Clock is expected."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)
