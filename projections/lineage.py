"""Merged customers: which profiles currently show on whose timeline (pure).

Entries stay filed under the customer whose stream, case or feedback they belong to; a merge only
records a link duplicate -> survivor, and queries resolve links when they read. Links are set by
the duplicate's own events (CustomerMerged / CustomerMergeUndone), which share one stream and hence
one order everywhere, so the result never depends on how different customers' events interleave.

`merge_chain` is the one rule for following links: the timeline's members and the KPI report's
survivors both derive from it, and the view store's indexed SQL form is proven equal to it by the
view-store conformance suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def merged_into(links: Iterable[MergeLink]) -> dict[str, str]:
    """Each profile that is merged now -> the profile it was merged into."""
    return {link.duplicate_id: link.survivor_id for link in links if link.active}


def merge_chain(customer_id: str, merged: Mapping[str, str]) -> list[str]:
    """The customer, the profile it is merged into, that one's survivor, and so on; a cycle of
    links ends the chain before its first repeat."""
    chain = [customer_id]
    while (survivor := merged.get(chain[-1])) is not None and survivor not in chain:
        chain.append(survivor)
    return chain


def survivor_of(customer_id: str, merged: Mapping[str, str]) -> str:
    """The profile that finally absorbed this one (itself if it is not merged)."""
    return merge_chain(customer_id, merged)[-1]


def timeline_members(customer_id: str, merged: Mapping[str, str]) -> frozenset[str]:
    """The customer and every profile currently merged into it, through chains A -> B -> C."""
    candidates = {customer_id, *merged}
    return frozenset(c for c in candidates if customer_id in merge_chain(c, merged))
