"""A made-up earlier version of a real event, as an older release would have stored it, and its
upcaster: proves upcasting through the real fold, projections and Kafka messages of
ContactRecorded without changing the product (no product event has a second version yet).

Version 0 named the handler in one field, `handled_by: "agent:agent-7"` (an Actor's text form);
version 1, the current class, splits it into `handler_kind` and `handler_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from crm.eventcodec import EventCodec
from crm.upcasting import Upcaster
from crm.vocabulary import Channel, Direction
from services.case.events import ContactOutcome, ContactRecorded
from services.events import EVENT_TYPES, UPCASTERS


@dataclass(frozen=True)
class ContactRecordedV0:
    """ContactRecorded as the older release defined it."""

    TYPE: ClassVar[str] = "crm.case.ContactRecorded.v0"
    case_id: str
    contact_id: str
    channel: Channel
    direction: Direction
    handled_by: str
    outcome: ContactOutcome
    started_at: datetime
    talk_seconds: int
    hold_seconds: int
    after_work_seconds: int


def handler_split(plain: dict[str, Any]) -> dict[str, Any]:
    """v0 -> v1: `handled_by` "kind:id" becomes `handler_kind` and `handler_id`."""
    kind, colon, handler_id = plain.pop("handled_by").partition(":")
    if not colon:
        raise ValueError("handled_by names no kind")
    return {**plain, "handler_kind": kind, "handler_id": handler_id}


CONTACT_V0_TO_V1 = Upcaster(ContactRecordedV0.TYPE, ContactRecorded.TYPE, handler_split)

OLD_RELEASE = EventCodec(ContactRecordedV0 if c is ContactRecorded else c for c in EVENT_TYPES)
"""What the older release wrote with: version 0 of ContactRecorded, no version 1."""

CURRENT = EventCodec(EVENT_TYPES, (*UPCASTERS, CONTACT_V0_TO_V1))
"""The release after it: version 1 and the upcaster from version 0."""


def as_old_release(event: Any) -> Any:
    """The event as the older release recorded it (only ContactRecorded differs)."""
    if not isinstance(event, ContactRecorded):
        return event
    return ContactRecordedV0(
        case_id=event.case_id,
        contact_id=event.contact_id,
        channel=event.channel,
        direction=event.direction,
        handled_by=f"{event.handler_kind.value}:{event.handler_id}",
        outcome=event.outcome,
        started_at=event.started_at,
        talk_seconds=event.talk_seconds,
        hold_seconds=event.hold_seconds,
        after_work_seconds=event.after_work_seconds,
    )
