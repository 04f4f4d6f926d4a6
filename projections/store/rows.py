"""How views become column values and back, one copy for every view store adapter.

The SQLite and PostgreSQL adapters store the same values in the same columns (instants as ISO
text, a case view as sorted JSON), so both read back exactly what the pure projections made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from crm.eventcodec import from_plain, to_plain
from crm.instants import sortable_instant
from projections.case_view import CaseView
from projections.timeline import EntryKind, TimelineEntry

ENTRY_COLUMNS = (
    "event_id, global_position, customer_id, case_id, kind, event_type, channel, direction,"
    " actor, occurred_at, summary"
)
"""A timeline entry's columns, in the order `entry_row` gives and `entry_from_row` takes them."""


def entry_row(entry: TimelineEntry) -> tuple[Any, ...]:
    """The values of ENTRY_COLUMNS for an entry."""
    return (
        entry.event_id,
        entry.global_position,
        entry.customer_id,
        entry.case_id,
        entry.kind.value,
        entry.event_type,
        entry.channel,
        entry.direction,
        entry.actor,
        entry.occurred_at.isoformat(),
        entry.summary,
    )


def entry_from_row(row: Sequence[Any]) -> TimelineEntry:
    """The entry a row of ENTRY_COLUMNS holds."""
    event_id, position, customer_id, case_id, kind, event_type = row[:6]
    channel, direction, actor, occurred_at, summary = row[6:]
    return TimelineEntry(
        event_id=event_id,
        global_position=position,
        customer_id=customer_id,
        case_id=case_id,
        kind=EntryKind(kind),
        event_type=event_type,
        channel=channel,
        direction=direction,
        actor=actor,
        occurred_at=datetime.fromisoformat(occurred_at),
        summary=summary,
    )


def encode_view(view: CaseView) -> str:
    """A case view as JSON text (keys sorted: the same view always gives the same text)."""
    return json.dumps(to_plain(view), sort_keys=True)


def decode_view(text: str) -> CaseView:
    """The case view `encode_view` wrote."""
    view: CaseView = from_plain(CaseView, json.loads(text))
    return view


def case_row(view: CaseView) -> tuple[Any, ...]:
    """A `case_views` row: the columns lists filter and order by, then the view as JSON."""
    next_due = view.next_due_at
    return (
        view.case_id,
        view.customer_id,
        view.status.value,
        view.team,
        view.escalation_level,
        None if view.escalated_since is None else sortable_instant(view.escalated_since),
        None if next_due is None else sortable_instant(next_due),
        view.settled_position,
        encode_view(view),
    )
