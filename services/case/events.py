"""The case's vocabulary of facts: statuses, categories and the events of its stream (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import ClassVar

from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case.compensation import COMPENSATION_EVENT_TYPES, CompensationEvent
from services.case.escalation import CaseEscalationChanged
from services.case.sla_facts import SLA_EVENT_TYPES, SlaEvent

DEFAULT_DEPARTMENT = "support"


class CaseStatus(Enum):
    OPEN = "open"
    PENDING_CUSTOMER = "pending_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Category(Enum):
    USAGE_QUESTION = "usage_question"
    BILLING_PAYMENT = "billing_payment"
    SHIPPING_FEES = "shipping_fees"
    RETURNS_CANCELLATION = "returns_cancellation"
    CONTRACT = "contract"
    ACCOUNT_MANAGEMENT = "account_management"
    TECHNICAL_TROUBLE = "technical_trouble"
    COMPLAINT = "complaint"
    PRODUCT_FEEDBACK = "product_feedback"
    PRE_PURCHASE_INQUIRY = "pre_purchase_inquiry"


class ContactOutcome(Enum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    VOICEMAIL = "voicemail"
    BOT_RESOLVED = "bot_resolved"
    HANDED_TO_HUMAN = "handed_to_human"


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class CaseOpened:
    TYPE: ClassVar[str] = "crm.case.CaseOpened.v1"
    case_id: str
    customer_id: str
    channel: Channel
    category: Category
    priority: Priority
    subject: str
    description: str
    department: str


@dataclass(frozen=True)
class ContactRecorded:
    TYPE: ClassVar[str] = "crm.case.ContactRecorded.v1"
    case_id: str
    contact_id: str
    channel: Channel
    direction: Direction
    handler_kind: ActorKind
    handler_id: str
    outcome: ContactOutcome
    started_at: datetime
    talk_seconds: int
    hold_seconds: int
    after_work_seconds: int


@dataclass(frozen=True)
class ContactHandedOver:
    """A bot or self-service contact passed to a human: a fact of its own on the timeline."""

    TYPE: ClassVar[str] = "crm.case.ContactHandedOver.v1"
    case_id: str
    contact_id: str
    from_bot_id: str
    to_agent_id: str
    to_team: str


@dataclass(frozen=True)
class CaseAssigned:
    TYPE: ClassVar[str] = "crm.case.CaseAssigned.v1"
    case_id: str
    agent_id: str
    team: str
    previous_agent_id: str
    previous_team: str


@dataclass(frozen=True)
class CaseTransferred:
    TYPE: ClassVar[str] = "crm.case.CaseTransferred.v1"
    case_id: str
    from_department: str
    to_department: str
    reason: str


@dataclass(frozen=True)
class CasePriorityChanged:
    TYPE: ClassVar[str] = "crm.case.CasePriorityChanged.v1"
    case_id: str
    from_priority: Priority
    to_priority: Priority
    reason: str


@dataclass(frozen=True)
class CaseNoteAdded:
    TYPE: ClassVar[str] = "crm.case.CaseNoteAdded.v1"
    case_id: str
    note_id: str
    text: str


@dataclass(frozen=True)
class CasePendingOnCustomer:
    TYPE: ClassVar[str] = "crm.case.CasePendingOnCustomer.v1"
    case_id: str
    reason: str


@dataclass(frozen=True)
class CaseResumed:
    """Pending on the customer ended: the customer answered or an agent took it up again."""

    TYPE: ClassVar[str] = "crm.case.CaseResumed.v1"
    case_id: str
    reason: str


@dataclass(frozen=True)
class CaseResolved:
    TYPE: ClassVar[str] = "crm.case.CaseResolved.v1"
    case_id: str
    resolution_code: str
    note: str


@dataclass(frozen=True)
class CaseReopened:
    TYPE: ClassVar[str] = "crm.case.CaseReopened.v1"
    case_id: str
    reason: str


@dataclass(frozen=True)
class CaseClosed:
    TYPE: ClassVar[str] = "crm.case.CaseClosed.v1"
    case_id: str
    reason: str


CaseEvent = (
    CaseOpened
    | ContactRecorded
    | ContactHandedOver
    | CaseAssigned
    | CaseTransferred
    | CasePriorityChanged
    | CaseNoteAdded
    | CasePendingOnCustomer
    | CaseResumed
    | CaseResolved
    | CaseReopened
    | CaseClosed
    | CaseEscalationChanged
    | SlaEvent
    | CompensationEvent
)
EVENT_TYPES: tuple[type[CaseEvent], ...] = (
    CaseOpened,
    ContactRecorded,
    ContactHandedOver,
    CaseAssigned,
    CaseTransferred,
    CasePriorityChanged,
    CaseNoteAdded,
    CasePendingOnCustomer,
    CaseResumed,
    CaseResolved,
    CaseReopened,
    CaseClosed,
    CaseEscalationChanged,
    *SLA_EVENT_TYPES,
    *COMPENSATION_EVENT_TYPES,
)
