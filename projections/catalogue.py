"""The named projections: each turns events into views of its own, with its own checkpoint and
schema version, so one can be rebuilt, added or moved to another worker alone.

The in-process projector and the Kafka workers run this same list; each projection is its own
consumer group on Kafka. A projection writes only its own tables; a query may read several
(the timeline's merge links tell every query whose history a customer's includes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput
from services.events import DomainEvent

Batch = Sequence[tuple[RecordedEvent, DomainEvent]]
"""Recorded events paired with their decoded domain events, as every projection receives them."""


@dataclass(frozen=True)
class Projection:
    """A projection's identity: its name (checkpoints, consumer group) and its schema version.

    Raising `schema_version` makes the view store drop this projection's tables and checkpoints
    and rebuild it from event 0, while the other projections keep serving.
    """

    name: str
    schema_version: int
    maintains: str


TIMELINE = Projection("timeline", 1, "each customer's timeline entries and the merge links")
CASE_VIEWS = Projection("case_views", 3, "one view per case, and the escalation list")
CUSTOMER_RISK = Projection("customer_risk", 1, "each customer's escalated cases and feedback")
KPI_FACTS = Projection("kpi_facts", 2, "the facts the KPI report adds up")

PROJECTIONS: tuple[Projection, ...] = (TIMELINE, CASE_VIEWS, CUSTOMER_RISK, KPI_FACTS)
PROJECTION_NAMES: tuple[str, ...] = tuple(p.name for p in PROJECTIONS)


def projection_named(name: str) -> Projection:
    """The projection called `name`; InvalidInput for a name no projection has."""
    for projection in PROJECTIONS:
        if projection.name == name:
            return projection
    raise InvalidInput("projection", f"unknown projection {name!r}; known: {PROJECTION_NAMES}")


def news(batch: Batch, checkpoint: int) -> list[tuple[RecordedEvent, DomainEvent]]:
    """The events of `batch` a projection at `checkpoint` has not applied yet, in global order."""
    return sorted(
        (item for item in batch if item[0].global_position > checkpoint),
        key=lambda item: item[0].global_position,
    )
