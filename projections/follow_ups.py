"""The supervisor's follow-up list: resolved cases that got negative feedback afterwards (pure).

Post-contact surveys often arrive after the case was resolved, when they escalate nothing. The
feedback stays linked to its case here, and the case is listed for a supervisor until it is
reopened (the deadline process then escalates it, services/sla/planner.py). The rule compares
global positions, not arrival order, so the views do not depend on how the case and feedback
topics interleave on the way to a projection worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from projections.case_view import CaseView
from projections.catalogue import Batch
from services.case.events import CaseStatus
from services.feedback.domain import Negativity, negativity
from services.feedback.events import EVENT_TYPES as FEEDBACK_EVENT_TYPES


@dataclass(frozen=True)
class NegativeFeedback:
    """Negative feedback on a case (CSAT <= 2, NPS detractor, poor review, negative sentiment),
    as the feedback service's rule judges it."""

    feedback_id: str
    negativity: Negativity
    at: datetime
    global_position: int


@dataclass(frozen=True)
class FollowUp:
    """A case on the list, since when, and the negative feedback that put it there."""

    case: CaseView
    since: datetime
    feedback: tuple[NegativeFeedback, ...]


def negative_feedback(news: Batch) -> list[tuple[str, NegativeFeedback]]:
    """(case id, feedback) of every negative feedback in the batch linked to a case."""
    found = []
    for recorded, event in news:
        if isinstance(event, FEEDBACK_EVENT_TYPES) and event.case_id:
            negative = negativity(event)
            if negative is not None:
                at, position = recorded.metadata.occurred_at, recorded.global_position
                found.append(
                    (event.case_id, NegativeFeedback(event.feedback_id, negative, at, position))
                )
    return found


def follow_up(view: CaseView, feedback: Iterable[NegativeFeedback]) -> FollowUp | None:
    """The case's place on the list: resolved or closed, with negative feedback recorded after
    it was settled; None otherwise (a reopening settles nothing, so it takes the case off)."""
    if view.status not in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
        return None
    after = sorted(
        (f for f in feedback if f.global_position > view.settled_position),
        key=lambda f: f.global_position,
    )
    if not after:
        return None
    return FollowUp(view, max(f.at for f in after), tuple(after))
