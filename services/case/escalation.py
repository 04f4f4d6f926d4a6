"""Escalation of a case: why it needs attention, and how much (pure).

A case is escalated for reasons; its level is derived from them. Every change of reasons is an
event on the case stream (CaseEscalationChanged) carrying the reasons added and removed and the
full active set, so the level at any instant can be replayed and explained. Triggers that only
need the case's own history (transfers, reopenings, repeat contacts, a VIP complaint) are decided
with the command that causes them; triggers from elsewhere (SLA timers, feedback) arrive as
commands from the supervision process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import ClassVar

from crm.errors import InvariantViolated
from crm.validation import MAX_SHORT_TEXT, require_id, require_range, require_text

REPEAT_CONTACTS = 3
REPEAT_WINDOW = timedelta(days=7)
BOUNCED_TRANSFERS = 2
REOPENED_TIMES = 2
CRITICAL_DEPARTMENTS = frozenset({"development", "management"})


class EscalationReason(Enum):
    """Why a case is escalated; each reason carries the level it alone justifies."""

    SLA_AT_RISK = "sla_at_risk"
    SLA_BREACHED = "sla_breached"
    NEGATIVE_FEEDBACK = "negative_feedback"
    NEGATIVE_SENTIMENT = "negative_sentiment"
    REPEAT_CONTACT = "repeat_contact"
    BOUNCED = "bounced"
    REOPENED = "reopened"
    VIP_COMPLAINT = "vip_complaint"
    CRITICAL_DEPARTMENT = "critical_department"
    REQUESTED_WATCH = "requested_watch"
    REQUESTED_ESCALATION = "requested_escalation"
    REQUESTED_CRITICAL = "requested_critical"


LEVEL_OF_REASON = {
    EscalationReason.SLA_AT_RISK: 1,
    EscalationReason.NEGATIVE_SENTIMENT: 1,
    EscalationReason.REPEAT_CONTACT: 1,
    EscalationReason.BOUNCED: 1,
    EscalationReason.REQUESTED_WATCH: 1,
    EscalationReason.SLA_BREACHED: 2,
    EscalationReason.NEGATIVE_FEEDBACK: 2,
    EscalationReason.REOPENED: 2,
    EscalationReason.VIP_COMPLAINT: 2,
    EscalationReason.REQUESTED_ESCALATION: 2,
    EscalationReason.CRITICAL_DEPARTMENT: 3,
    EscalationReason.REQUESTED_CRITICAL: 3,
}
REQUESTED = {
    1: EscalationReason.REQUESTED_WATCH,
    2: EscalationReason.REQUESTED_ESCALATION,
    3: EscalationReason.REQUESTED_CRITICAL,
}


def level_of(reasons: Iterable[EscalationReason]) -> int:
    """0 normal, 1 watch, 2 escalated, 3 critical; two separate warning signals make 2."""
    levels = sorted((LEVEL_OF_REASON[r] for r in set(reasons)), reverse=True)
    if not levels:
        return 0
    if levels[0] == 1 and len(levels) >= 2:
        return 2
    return levels[0]


@dataclass(frozen=True)
class CaseEscalationChanged:
    TYPE: ClassVar[str] = "crm.case.CaseEscalationChanged.v1"
    case_id: str
    from_level: int
    to_level: int
    added: tuple[EscalationReason, ...]
    removed: tuple[EscalationReason, ...]
    reasons: tuple[EscalationReason, ...]
    note: str


@dataclass(frozen=True)
class EscalateCase:
    """An agent, supervisor or the customer asks for attention at a level."""

    case_id: str
    level: int
    note: str


@dataclass(frozen=True)
class DeEscalateCase:
    """A supervisor has dealt with the case: every active reason is cleared."""

    case_id: str
    note: str


@dataclass(frozen=True)
class RaiseEscalation:
    """A trigger seen outside the case (SLA timer, feedback) adds a reason."""

    case_id: str
    reason: EscalationReason
    note: str = ""


def change(
    case_id: str,
    active: tuple[EscalationReason, ...],
    add: Iterable[EscalationReason] = (),
    remove: Iterable[EscalationReason] = (),
    note: str = "",
) -> list[CaseEscalationChanged]:
    """The event for adding and removing reasons; none when nothing changes."""
    added = tuple(r for r in dict.fromkeys(add) if r not in active)
    removed = tuple(r for r in dict.fromkeys(remove) if r in active and r not in added)
    if not added and not removed:
        return []
    after = tuple(r for r in active if r not in removed) + added
    return [
        CaseEscalationChanged(
            case_id, level_of(active), level_of(after), added, removed, after, note
        )
    ]


def decide_escalate(
    command: EscalateCase, active: tuple[EscalationReason, ...]
) -> list[CaseEscalationChanged]:
    require_range("level", command.level, 1, 3)
    note = require_text("note", command.note, MAX_SHORT_TEXT)
    events = change(command.case_id, active, [REQUESTED[command.level]], note=note)
    if not events:
        raise InvariantViolated(f"case {command.case_id} is already escalated at that request")
    return events


def decide_de_escalate(
    command: DeEscalateCase, active: tuple[EscalationReason, ...]
) -> list[CaseEscalationChanged]:
    note = require_text("note", command.note, MAX_SHORT_TEXT)
    if not active:
        raise InvariantViolated(f"case {command.case_id} is not escalated")
    return change(command.case_id, active, remove=active, note=note)


def decide_raise(
    command: RaiseEscalation, active: tuple[EscalationReason, ...]
) -> list[CaseEscalationChanged]:
    require_id("case_id", command.case_id)
    events = change(command.case_id, active, [command.reason], note=command.note)
    if not events:
        raise InvariantViolated(
            f"case {command.case_id} is already escalated for {command.reason.value}"
        )
    return events


def repeat_contact(inbound_starts: tuple[datetime, ...]) -> bool:
    """Three or more inbound contacts within seven days."""
    starts = sorted(inbound_starts)
    return any(
        later - starts[i] <= REPEAT_WINDOW for i, later in enumerate(starts[REPEAT_CONTACTS - 1 :])
    )
