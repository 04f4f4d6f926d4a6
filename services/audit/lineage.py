"""Which profiles a customer's audit history takes in, and up to where (pure).

The timeline shows the profiles merged into a customer *now*; an audit must also show what a
profile contributed while it was merged and was released since. The rule: a profile that was ever
merged into the customer belongs to its history up to the end of its last membership (the global
position of the undo that released it), or without end while it is still merged. Membership is
read from the duplicate's own stream (CustomerMerged / CustomerMergeUndone), where merge links are
decided, so the answer does not depend on any view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crm.envelope import RecordedEvent
from services.customer.events import CustomerMerged, CustomerMergeUndone
from services.events import DomainEvent

MERGE_TYPES = frozenset({CustomerMerged.TYPE, CustomerMergeUndone.TYPE})
"""Event types the membership rule reads; others need not be decoded."""


@dataclass(frozen=True)
class Membership:
    """A profile's share of a customer's history: its events up to `until` (None: all of them)."""

    customer_id: str
    until: int | None


def membership_end(
    duplicate_events: Iterable[tuple[RecordedEvent, DomainEvent]], survivor_id: str
) -> tuple[bool, int | None]:
    """(ever merged into `survivor_id`, the position that ended its last membership or None
    while it lasts), from the duplicate's own stream in order."""
    ever, until = False, None
    for recorded, event in duplicate_events:
        if isinstance(event, CustomerMerged) and event.into_customer_id == survivor_id:
            ever, until = True, None
        elif isinstance(event, CustomerMergeUndone) and event.from_customer_id == survivor_id:
            until = recorded.global_position
    return ever, until


def narrower(outer: int | None, inner: int | None) -> int | None:
    """The end of a membership within a membership: the earlier of the two ends."""
    if outer is None:
        return inner
    if inner is None:
        return outer
    return min(outer, inner)


def within(position: int, until: int | None) -> bool:
    """Whether an event at `position` lies within a membership ending at `until`."""
    return until is None or position <= until
