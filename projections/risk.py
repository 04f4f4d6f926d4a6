"""Customer risk: a customer is at risk while any of their cases is escalated or their latest
feedback is negative (pure part: what each piece of feedback signals)."""

from __future__ import annotations

from dataclasses import dataclass

from crm.envelope import RecordedEvent
from services.events import DomainEvent
from services.feedback import domain as feedback_domain
from services.feedback.events import EVENT_TYPES


@dataclass(frozen=True)
class FeedbackSignal:
    """One piece of feedback and what it says: a negative reason, or "" when it is not negative."""

    feedback_id: str
    customer_id: str
    case_id: str
    reason: str
    position: int


@dataclass(frozen=True)
class CustomerRisk:
    """Why a customer needs care now; not at risk when both lists are empty."""

    customer_id: str
    escalated_cases: tuple[tuple[str, int], ...]  # (case id, level), most urgent first
    latest_feedback_reason: str  # "" unless the latest feedback is negative

    @property
    def at_risk(self) -> bool:
        return bool(self.escalated_cases or self.latest_feedback_reason)


def feedback_signal(recorded: RecordedEvent, event: DomainEvent) -> FeedbackSignal | None:
    if not isinstance(event, EVENT_TYPES):
        return None
    reason = feedback_domain.negativity(event)
    return FeedbackSignal(
        event.feedback_id,
        event.customer_id,
        event.case_id,
        "" if reason is None else reason.value,
        recorded.global_position,
    )
