"""Merged customers: which profiles currently show on whose timeline (pure).

Entries stay filed under the customer whose stream, case or feedback they belong to; a merge only
records a link duplicate -> survivor, and queries resolve links when they read. Links are set by
the duplicate's own events (CustomerMerged / CustomerMergeUndone), which share one stream and hence
one order everywhere, so the result never depends on how different customers' events interleave.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crm.envelope import RecordedEvent
from services.customer.events import CustomerMerged, CustomerMergeUndone
from services.events import DomainEvent


@dataclass(frozen=True)
class MergeLink:
    """The latest merge fact about one duplicate profile; `active` is False once undone."""

    duplicate_id: str
    survivor_id: str
    merge_id: str
    active: bool
    position: int


def merge_link(recorded: RecordedEvent, event: DomainEvent) -> MergeLink | None:
    """The link an event sets, or None if the event says nothing about merges."""
    if isinstance(event, CustomerMerged):
        return MergeLink(
            event.customer_id,
            event.into_customer_id,
            event.merge_id,
            True,
            recorded.global_position,
        )
    if isinstance(event, CustomerMergeUndone):
        return MergeLink(
            event.customer_id,
            event.from_customer_id,
            event.merge_id,
            False,
            recorded.global_position,
        )
    return None


def newer_link(current: MergeLink | None, candidate: MergeLink) -> MergeLink:
    """Keep whichever link was recorded later, so redelivery of an old fact changes nothing."""
    if current is None or candidate.position > current.position:
        return candidate
    return current


def timeline_members(customer_id: str, links: Mapping[str, MergeLink]) -> frozenset[str]:
    """The customer and every profile currently merged into it, through chains A -> B -> C."""
    members = {customer_id}
    frontier = [customer_id]
    while frontier:
        survivor = frontier.pop()
        for link in links.values():
            if link.active and link.survivor_id == survivor and link.duplicate_id not in members:
                members.add(link.duplicate_id)
                frontier.append(link.duplicate_id)
    return frozenset(members)
