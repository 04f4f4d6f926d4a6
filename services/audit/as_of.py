"""Views as they were at a past point, folded from the events up to it with the live code (pure).

The case view is folded by the case view projection's `case_view_changes` (from kept views:
services/audit/case_checkpoints.py), the customer by the customer aggregate's `evolve`, the
timeline by the timeline projection's `timeline_changes` and merge rule (projections/lineage.py):
the same functions the live path runs, so a view as of a point equals the view the live path held
once it had applied every event up to that point.

A point is a global position or a recorded instant, both inclusive. Each stream is cut to its
longest prefix within the point, and the prefix's hash chain is checked before it is folded: a
view is never folded from a history that no longer verifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from crm.envelope import GENESIS_HASH, RecordedEvent, verify_links
from crm.errors import HistoryBroken, IntegrityError, InvalidInput
from crm.eventcodec import EventCodec
from crm.instants import sortable_instant
from projections.lineage import merged_into, timeline_members
from projections.timeline import TimelineEntry, timeline_changes
from services.customer.domain import Customer, evolve
from services.customer.events import CustomerEvent
from services.events import DomainEvent


@dataclass(frozen=True)
class AsOf:
    """A past point: every event at or before `position`, or recorded at or before `recorded_at`
    (exactly one of the two is given)."""

    position: int | None = None
    recorded_at: datetime | None = None

    def __post_init__(self) -> None:
        if (self.position is None) == (self.recorded_at is None):
            raise InvalidInput("as_of", "give exactly one of recorded_at and global_position")
        if self.position is not None and self.position < 1:
            raise InvalidInput("as_of.global_position", "must be at least 1 (the first event)")

    def includes(self, event: RecordedEvent) -> bool:
        """Whether the event lies at or before the point."""
        if self.position is not None:
            return event.global_position <= self.position
        assert self.recorded_at is not None
        return sortable_instant(event.recorded_at) <= sortable_instant(self.recorded_at)

    def prefix(self, stream: Sequence[RecordedEvent]) -> list[RecordedEvent]:
        """The stream's events (in revision order) up to its first event beyond the point.

        By position this is every event of the stream within the point; by recorded time too, as
        a stream's events are recorded in order (one is appended only after the one before)."""
        cut = 0
        while cut < len(stream) and self.includes(stream[cut]):
            cut += 1
        return list(stream[:cut])


def checked(stream: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    """A stream's prefix from revision 0, after checking its hash chain (HistoryBroken if not)."""
    verify_links(stream, GENESIS_HASH, 0)
    return list(stream)


def decoded(codec: EventCodec, record: RecordedEvent) -> tuple[RecordedEvent, DomainEvent]:
    """The stored event as the projections receive it (`EventCodec.decode_recorded`: one stored
    as an older version comes upcast, under its current type name) and its domain event; one that
    no longer decodes is a broken history, not a crash. Its chain is checked before, on the
    stored bytes."""
    try:
        recorded, event = codec.decode_recorded(record)
    except (IntegrityError, ValueError, TypeError, KeyError) as exc:
        raise HistoryBroken(record, f"it no longer decodes ({type(exc).__name__})") from None
    return recorded, cast(DomainEvent, event)


def customer_as_of(
    stream: Sequence[RecordedEvent], point: AsOf, codec: EventCodec
) -> tuple[Customer, RecordedEvent] | None:
    """The customer after its stream's events within the point, and the last event folded
    (None: not registered yet)."""
    records = checked(point.prefix(stream))
    state: Customer | None = None
    for record in records:
        event = cast(CustomerEvent, decoded(codec, record)[1])
        state = evolve(state, event, record.metadata.occurred_at)
    if state is None:
        return None
    return state, records[-1]


def timeline_as_of(
    customer_id: str,
    streams: Mapping[str, Sequence[RecordedEvent]],
    point: AsOf,
    codec: EventCodec,
) -> list[TimelineEntry]:
    """The customer's timeline entries within the point, of the customer and every profile
    merged into it at that point, in global order.

    `streams` holds every stream the customer's history may take in (services/audit/history.py),
    each from revision 0; events of profiles not merged in at the point are left out, as the live
    timeline leaves them out.
    """
    batch = sorted(
        (
            decoded(codec, record)
            for records in streams.values()
            for record in checked(point.prefix(records))
        ),
        key=lambda item: item[0].global_position,
    )
    changes = timeline_changes(batch)
    members = timeline_members(customer_id, merged_into(changes.merge_links.values()))
    return [entry for entry in changes.entries if entry.customer_id in members]
