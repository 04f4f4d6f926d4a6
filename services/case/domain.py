"""The case aggregate: state and the rules that connect commands to events (pure).

A case is opened for a customer on a channel and worked through contacts, assignments and transfers
until it is resolved, possibly reopened, and finally closed. Time never comes from a clock here:
`evolve` receives the instant each event occurred. The events and commands live in their own
modules (events.py, commands.py, and one module per concern: escalation, SLA facts, compensation).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated
from crm.validation import (
    MAX_LONG_TEXT,
    MAX_NAME,
    MAX_SECONDS,
    MAX_SHORT_TEXT,
    optional_id,
    optional_text,
    require_id,
    require_range,
    require_text,
)
from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case import escalation
from services.case.commands import (
    AddNote,
    AssignCase,
    CaseCommand,
    ChangePriority,
    CloseCase,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    ResumeCase,
    SetPendingOnCustomer,
    TransferCase,
)
from services.case.compensation import (
    COMPENSATION_EVENT_TYPES,
    Compensations,
    DecideCompensation,
    OfferCompensation,
    decide_compensation,
    evolve_compensations,
)
from services.case.escalation import (
    CaseEscalationChanged,
    DeEscalateCase,
    EscalateCase,
    EscalationReason,
    RaiseEscalation,
)
from services.case.events import (
    CaseAssigned,
    CaseClosed,
    CaseEvent,
    CaseNoteAdded,
    CaseOpened,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseStatus,
    CaseTransferred,
    Category,
    ContactHandedOver,
    ContactOutcome,
    ContactRecorded,
)
from services.case.sla_facts import (
    SLA_EVENT_TYPES,
    RecordSlaFact,
    SlaAtRisk,
    SlaBreached,
    SlaClock,
    decide_fact,
    evolve_clock,
)
from services.case.triggers import escalation_triggered

# ---------------------------------------------------------------- state

FOLD_VERSION = 2
"""The version of `evolve` and of `Case`: bump it whenever either changes, so snapshots folded by
the old code are ignored (crm.folding) instead of trusted."""


@dataclass(frozen=True)
class Case:
    """Everything the rules need to know about a case, folded from its events."""

    case_id: str
    customer_id: str
    status: CaseStatus
    channel: Channel
    category: Category
    priority: Priority
    subject: str
    description: str
    department: str
    opened_at: datetime
    assignee: str = ""
    team: str = ""  # of the latest assignment or hand-over, kept through transfers for reports
    working_team: str = ""  # whose agents work it now: none until assigned, nor after a transfer
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    resolution_code: str = ""
    contact_count: int = 0
    contact_ids: frozenset[str] = frozenset()
    transfer_count: int = 0
    reopen_count: int = 0
    note_count: int = 0
    inbound_contacts: tuple[datetime, ...] = ()
    escalation: tuple[EscalationReason, ...] = ()
    sla: SlaClock = field(default_factory=SlaClock)
    compensations: Compensations = field(default_factory=Compensations)

    @property
    def escalation_level(self) -> int:
        return escalation.level_of(self.escalation)


def evolve(state: Case | None, event: CaseEvent, at: datetime) -> Case:
    """Apply one event to the case; `at` is when the event occurred."""
    if isinstance(event, CaseOpened):
        return Case(
            case_id=event.case_id,
            customer_id=event.customer_id,
            status=CaseStatus.OPEN,
            channel=event.channel,
            category=event.category,
            priority=event.priority,
            subject=event.subject,
            description=event.description,
            department=event.department,
            opened_at=at,
        )
    if state is None:
        raise InvariantViolated(f"{event.TYPE} cannot precede CaseOpened")
    match event:
        case ContactRecorded():
            responded = is_response(event)
            inbound = event.direction is Direction.INBOUND
            return replace(
                state,
                inbound_contacts=state.inbound_contacts + ((event.started_at,) if inbound else ()),
                contact_count=state.contact_count + 1,
                contact_ids=state.contact_ids | {event.contact_id},
                first_response_at=state.first_response_at
                or (event.started_at if responded else None),
            )
        case ContactHandedOver():
            return replace(
                state,
                assignee=event.to_agent_id or state.assignee,
                team=event.to_team or state.team,
                working_team=event.to_team or state.working_team,
            )
        case CaseAssigned():
            return replace(state, assignee=event.agent_id, team=event.team, working_team=event.team)
        case CaseTransferred():
            # The case leaves its team: it waits in the new department for someone to take it.
            return replace(
                state,
                department=event.to_department,
                assignee="",
                working_team="",
                transfer_count=state.transfer_count + 1,
            )
        case CasePriorityChanged():
            return replace(state, priority=event.to_priority)
        case CaseNoteAdded():
            return replace(state, note_count=state.note_count + 1)
        case CasePendingOnCustomer():
            return replace(state, status=CaseStatus.PENDING_CUSTOMER)
        case CaseResumed():
            return replace(state, status=CaseStatus.OPEN)
        case CaseResolved():
            return replace(
                state,
                status=CaseStatus.RESOLVED,
                resolved_at=at,
                resolution_code=event.resolution_code,
            )
        case CaseReopened():
            return replace(
                state,
                status=CaseStatus.OPEN,
                resolved_at=None,
                resolution_code="",
                reopen_count=state.reopen_count + 1,
            )
        case CaseClosed():
            return replace(state, status=CaseStatus.CLOSED, closed_at=at)
        case CaseEscalationChanged():
            return replace(state, escalation=event.reasons)
        case _ if isinstance(event, SLA_EVENT_TYPES):
            return replace(state, sla=evolve_clock(state.sla, event))
        case _ if isinstance(event, COMPENSATION_EVENT_TYPES):
            return replace(state, compensations=evolve_compensations(state.compensations, event))
    raise InvariantViolated(f"unknown case event {event!r}")


def is_response(event: ContactRecorded) -> bool:
    """A human agent spoke or wrote to the customer; the case view reuses this rule."""
    # An outbound attempt nobody picked up (ABANDONED) reached no one, so it is no response.
    return (
        event.handler_kind in (ActorKind.AGENT, ActorKind.SUPERVISOR)
        and event.outcome is not ContactOutcome.ABANDONED
        and (event.outcome is ContactOutcome.ANSWERED or event.direction is Direction.OUTBOUND)
    )


# ---------------------------------------------------------------- decisions


def decide(command: CaseCommand, state: Case | None) -> list[CaseEvent]:
    """Check a command against the case and say what happened, or raise why it cannot.

    What happened includes the escalation it triggers, decided with it in one append.
    """
    events = _decide(command, state)
    return [*events, *escalation_triggered(command, state, events)]


def _decide(command: CaseCommand, state: Case | None) -> list[CaseEvent]:
    require_id("case_id", command.case_id)
    if isinstance(command, OpenCase):
        return [_open(command, state)]
    if state is None:
        # The application turns a missing stream into NotFound before calling decide.
        raise InvariantViolated(f"case {command.case_id} has not been opened")
    if state.status is CaseStatus.CLOSED and not isinstance(command, AddNote):
        raise InvariantViolated(f"case {state.case_id} is closed; open a new case instead")
    match command:
        case RecordContact():
            return _record_contact(command, state)
        case AssignCase():
            return [_assign(command, state)]
        case TransferCase():
            return [_transfer(command, state)]
        case ChangePriority():
            _require_status(
                state, "change the priority of", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER
            )
            if command.priority is state.priority:
                raise InvariantViolated(
                    f"case {state.case_id} already has priority {command.priority.value}"
                )
            reason = optional_text("reason", command.reason, MAX_SHORT_TEXT)
            return [CasePriorityChanged(state.case_id, state.priority, command.priority, reason)]
        case AddNote():
            require_id("note_id", command.note_id)
            text = require_text("text", command.text, MAX_LONG_TEXT)
            return [CaseNoteAdded(state.case_id, command.note_id, text)]
        case SetPendingOnCustomer():
            _require_status(state, "set pending on the customer", CaseStatus.OPEN)
            reason = require_text("reason", command.reason, MAX_SHORT_TEXT)
            return [CasePendingOnCustomer(state.case_id, reason)]
        case ResumeCase():
            _require_status(state, "resume", CaseStatus.PENDING_CUSTOMER)
            reason = optional_text("reason", command.reason, MAX_SHORT_TEXT)
            return [CaseResumed(state.case_id, reason)]
        case ResolveCase():
            _require_status(state, "resolve", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)
            code = require_id("resolution_code", command.resolution_code)
            note = optional_text("note", command.note, MAX_LONG_TEXT)
            return [CaseResolved(state.case_id, code, note)]
        case ReopenCase():
            _require_status(state, "reopen", CaseStatus.RESOLVED)
            reason = require_text("reason", command.reason, MAX_SHORT_TEXT)
            return [CaseReopened(state.case_id, reason)]
        case CloseCase():
            reason = optional_text("reason", command.reason, MAX_SHORT_TEXT)
            if state.status is not CaseStatus.RESOLVED and not reason.strip():
                raise InvariantViolated(
                    f"case {state.case_id} is {state.status.value};"
                    " closing an unresolved case needs a reason"
                )
            return [CaseClosed(state.case_id, reason)]
        case EscalateCase():
            _require_status(state, "escalate", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)
            return list(escalation.decide_escalate(command, state.escalation))
        case DeEscalateCase():
            return list(escalation.decide_de_escalate(command, state.escalation))
        case RaiseEscalation():
            _require_status(state, "escalate", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)
            return list(escalation.decide_raise(command, state.escalation))
        case OfferCompensation() | DecideCompensation():
            _require_status(
                state,
                "compensate on",
                CaseStatus.OPEN,
                CaseStatus.PENDING_CUSTOMER,
                CaseStatus.RESOLVED,
            )
            return list(decide_compensation(command, state.compensations))
        case RecordSlaFact():
            if isinstance(command.fact, SlaAtRisk | SlaBreached):
                _require_status(state, "put at risk", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)
            return [decide_fact(command, state.sla)]
    raise InvalidInput("command", f"unknown case command {type(command).__name__}")


def _open(command: OpenCase, state: Case | None) -> CaseOpened:
    if state is not None:
        raise AlreadyExists(f"case {command.case_id} exists already")
    return CaseOpened(
        case_id=command.case_id,
        customer_id=require_id("customer_id", command.customer_id),
        channel=command.channel,
        category=command.category,
        priority=command.priority,
        subject=require_text("subject", command.subject, MAX_NAME),
        description=optional_text("description", command.description, MAX_LONG_TEXT),
        department=require_id("department", command.department),
    )


def _record_contact(command: RecordContact, state: Case) -> list[CaseEvent]:
    require_id("contact_id", command.contact_id)
    if command.contact_id in state.contact_ids:
        raise AlreadyExists(f"contact {command.contact_id} is recorded on this case already")
    require_id("handler_id", command.handler_id)
    if command.started_at.tzinfo is None:
        raise InvalidInput("started_at", "must carry a time zone")
    if command.handler_kind not in (ActorKind.AGENT, ActorKind.SUPERVISOR, ActorKind.BOT):
        raise InvalidInput("handled_by", "a contact is handled by an agent, a supervisor or a bot")
    for name in ("talk_seconds", "hold_seconds", "after_work_seconds"):
        require_range(name, getattr(command, name), 0, MAX_SECONDS)
    handing_over = command.outcome is ContactOutcome.HANDED_TO_HUMAN
    if handing_over and command.handler_kind is not ActorKind.BOT:
        raise InvalidInput("outcome", "only a bot-handled contact can be handed to a human")
    if not handing_over and (command.handover_to_agent_id or command.handover_to_team):
        raise InvalidInput("handover", "a hand-over needs the outcome HANDED_TO_HUMAN")
    if command.outcome is ContactOutcome.BOT_RESOLVED and command.handler_kind is not ActorKind.BOT:
        raise InvalidInput("outcome", "BOT_RESOLVED needs a bot as handler")
    events: list[CaseEvent] = [
        ContactRecorded(
            case_id=state.case_id,
            contact_id=command.contact_id,
            channel=command.channel,
            direction=command.direction,
            handler_kind=command.handler_kind,
            handler_id=command.handler_id,
            outcome=command.outcome,
            started_at=command.started_at,
            talk_seconds=command.talk_seconds,
            hold_seconds=command.hold_seconds,
            after_work_seconds=command.after_work_seconds,
        )
    ]
    if handing_over:
        events.append(
            ContactHandedOver(
                case_id=state.case_id,
                contact_id=command.contact_id,
                from_bot_id=command.handler_id,
                to_agent_id=optional_id("handover_to_agent_id", command.handover_to_agent_id),
                to_team=optional_id("handover_to_team", command.handover_to_team),
            )
        )
    customer_answered = (
        command.direction is Direction.INBOUND and command.outcome is not ContactOutcome.ABANDONED
    )
    if state.status is CaseStatus.PENDING_CUSTOMER and customer_answered:
        events.append(CaseResumed(state.case_id, "customer contacted us"))
    return events


def _assign(command: AssignCase, state: Case) -> CaseAssigned:
    _require_status(state, "assign", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)
    agent = require_id("agent_id", command.agent_id)
    team = require_id("team", command.team)
    if (agent, team) == (state.assignee, state.team):
        raise InvariantViolated(f"case {state.case_id} is already assigned to {agent} in {team}")
    return CaseAssigned(state.case_id, agent, team, state.assignee, state.team)


def _transfer(command: TransferCase, state: Case) -> CaseTransferred:
    _require_status(state, "transfer", CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)
    department = require_id("to_department", command.to_department)
    if department == state.department:
        raise InvariantViolated(f"case {state.case_id} is already in department {department}")
    reason = require_text("reason", command.reason, MAX_SHORT_TEXT)
    return CaseTransferred(state.case_id, state.department, department, reason)


def _require_status(state: Case, action: str, *allowed: CaseStatus) -> None:
    if state.status not in allowed:
        names = " or ".join(s.value for s in allowed)
        raise InvariantViolated(
            f"cannot {action} case {state.case_id}: it is {state.status.value}, must be {names}"
        )
