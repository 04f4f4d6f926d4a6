"""What can be asked of a case: the commands its `decide` answers (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case.compensation import CompensationCommand
from services.case.escalation import DeEscalateCase, EscalateCase, RaiseEscalation
from services.case.events import DEFAULT_DEPARTMENT, Category, ContactOutcome
from services.case.sla_facts import RecordSlaFact


@dataclass(frozen=True)
class OpenCase:
    case_id: str
    customer_id: str
    channel: Channel
    category: Category
    priority: Priority
    subject: str
    description: str
    department: str = DEFAULT_DEPARTMENT
    vip: bool = False  # the customer's tier when the case is opened, looked up by the application


@dataclass(frozen=True)
class RecordContact:
    case_id: str
    contact_id: str
    channel: Channel
    direction: Direction
    handler_kind: ActorKind
    handler_id: str
    outcome: ContactOutcome
    started_at: datetime
    talk_seconds: int = 0
    hold_seconds: int = 0
    after_work_seconds: int = 0
    handover_to_agent_id: str = ""
    handover_to_team: str = ""


@dataclass(frozen=True)
class AssignCase:
    case_id: str
    agent_id: str
    team: str


@dataclass(frozen=True)
class TransferCase:
    case_id: str
    to_department: str
    reason: str


@dataclass(frozen=True)
class ChangePriority:
    case_id: str
    priority: Priority
    reason: str = ""


@dataclass(frozen=True)
class AddNote:
    case_id: str
    note_id: str
    text: str


@dataclass(frozen=True)
class SetPendingOnCustomer:
    case_id: str
    reason: str


@dataclass(frozen=True)
class ResumeCase:
    case_id: str
    reason: str = ""


@dataclass(frozen=True)
class ResolveCase:
    case_id: str
    resolution_code: str
    note: str = ""


@dataclass(frozen=True)
class ReopenCase:
    case_id: str
    reason: str


@dataclass(frozen=True)
class CloseCase:
    case_id: str
    reason: str = ""


CaseCommand = (
    OpenCase
    | RecordContact
    | AssignCase
    | TransferCase
    | ChangePriority
    | AddNote
    | SetPendingOnCustomer
    | ResumeCase
    | ResolveCase
    | ReopenCase
    | CloseCase
    | EscalateCase
    | DeEscalateCase
    | RaiseEscalation
    | RecordSlaFact
    | CompensationCommand
)
