"""Escalation triggers that need only the case's own history (pure): transfers, reopenings,
repeat contacts, a VIP complaint, SLA facts, and resolution clearing it all. They are decided with
the command that causes them, in the same append.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm.vocabulary import Direction
from services.case import escalation
from services.case.commands import CaseCommand, OpenCase
from services.case.escalation import DeEscalateCase, EscalateCase, EscalationReason, RaiseEscalation
from services.case.events import (
    CaseClosed,
    CaseEvent,
    CaseOpened,
    CaseReopened,
    CaseResolved,
    CaseStatus,
    CaseTransferred,
    Category,
    ContactRecorded,
)
from services.case.sla_facts import SlaAtRisk, SlaBreached, SlaFulfilled

if TYPE_CHECKING:
    from services.case.domain import Case


def escalation_triggered(
    command: CaseCommand, state: Case | None, events: list[CaseEvent]
) -> list[CaseEvent]:
    """Reasons the case's own history adds or clears; none for explicit escalation commands."""
    if isinstance(command, EscalateCase | DeEscalateCase | RaiseEscalation):
        return []
    add: list[EscalationReason] = []
    remove: list[EscalationReason] = []
    active = state.escalation if state else ()
    for event in events:
        match event:
            case CaseOpened() if command_is_vip_complaint(command):
                add.append(EscalationReason.VIP_COMPLAINT)
            case CaseTransferred() if state is not None:
                if state.transfer_count + 1 >= escalation.BOUNCED_TRANSFERS:
                    add.append(EscalationReason.BOUNCED)
                if event.to_department in escalation.CRITICAL_DEPARTMENTS:
                    add.append(EscalationReason.CRITICAL_DEPARTMENT)
            case CaseReopened() if state is not None:
                if state.reopen_count + 1 >= escalation.REOPENED_TIMES:
                    add.append(EscalationReason.REOPENED)
            case ContactRecorded() if is_active(state) and event.direction is Direction.INBOUND:
                assert state is not None
                if escalation.repeat_contact((*state.inbound_contacts, event.started_at)):
                    add.append(EscalationReason.REPEAT_CONTACT)
            case SlaAtRisk():
                add.append(EscalationReason.SLA_AT_RISK)
            case SlaBreached():
                add.append(EscalationReason.SLA_BREACHED)
            case SlaFulfilled() if state is not None and state.sla.at_risk <= {event.target}:
                remove.append(EscalationReason.SLA_AT_RISK)
            case CaseResolved() | CaseClosed():
                # Resolving clears the escalation; whatever made it is history now.
                add.clear()
                remove.extend(active)
    case_id = command.case_id
    return list(escalation.change(case_id, active, add, remove, note=trigger_note(events)))


def is_active(state: Case | None) -> bool:
    return state is not None and state.status in (CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)


def command_is_vip_complaint(command: CaseCommand) -> bool:
    return isinstance(command, OpenCase) and command.vip and command.category is Category.COMPLAINT


def trigger_note(events: list[CaseEvent]) -> str:
    return f"triggered by {type(events[0]).__name__}" if events else ""
