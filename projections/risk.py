"""Customer risk: a customer is at risk while any of their cases is escalated or their latest
feedback is negative (pure: what each event says about it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from crm.envelope import RecordedEvent
from projections.case_view import escalated_since
from projections.catalogue import Batch
from services.case.escalation import CaseEscalationChanged
from services.events import DomainEvent
from services.feedback import domain as feedback_domain
from services.feedback.events import EVENT_TYPES as FEEDBACK_EVENT_TYPES


@dataclass(frozen=True)
class FeedbackSignal:
    """One piece of feedback and what it says: a negative reason, or "" when it is not negative."""

    feedback_id: str
    customer_id: str
    case_id: str
    reason: str
    position: int


@dataclass(frozen=True)
class CaseEscalation:
    """How escalated one of the customer's cases is now, and since when (None at level 0), as of
    the global position of the case's last escalation change."""

    case_id: str
    customer_id: str
    level: int
    since: datetime | None
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


@dataclass
class RiskChanges:
    """What a batch changes in the customer risk projection."""

    cases: dict[str, CaseEscalation] = field(default_factory=dict)
    signals: list[FeedbackSignal] = field(default_factory=list)


def risk_changes(news: Batch, load: Callable[[str], CaseEscalation | None]) -> RiskChanges:
    """The customer risk projection's apply: escalation changes of cases, and feedback signals.

    `load` returns a case's stored escalation; a case's customer is the one its stream records.
    """
    changes = RiskChanges()
    for recorded, event in news:
        if isinstance(event, CaseEscalationChanged):
            previous = changes.cases.get(event.case_id) or load(event.case_id)
            if previous is not None and recorded.global_position <= previous.position:
                continue  # redelivered, from whatever source: applied already
            since = escalated_since(
                None if previous is None else previous.since,
                event,
                recorded.metadata.occurred_at,
            )
            changes.cases[event.case_id] = CaseEscalation(
                event.case_id,
                recorded.metadata.customer_id,
                event.to_level,
                since,
                recorded.global_position,
            )
        signal = feedback_signal(recorded, event)
        if signal is not None:
            changes.signals.append(signal)
    return changes


def feedback_signal(recorded: RecordedEvent, event: DomainEvent) -> FeedbackSignal | None:
    """What a piece of feedback says; the feedback service decides whether it is negative."""
    if not isinstance(event, FEEDBACK_EVENT_TYPES):
        return None
    reason = feedback_domain.negativity(event)
    return FeedbackSignal(
        event.feedback_id,
        event.customer_id,
        event.case_id,
        "" if reason is None else reason.value,
        recorded.global_position,
    )
