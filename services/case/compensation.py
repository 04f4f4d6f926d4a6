"""Agent empowerment: compensation within an agent's limit is granted at once, above it a
supervisor approves or rejects it (pure).

The limit is looked up by the application (configuration) and travels in the command, so the
rule and the figure it was applied with are both on record.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated, PermissionDenied
from crm.validation import MAX_SHORT_TEXT, optional_text, require_id, require_text

MAX_AMOUNT_MINOR = 10**10


class CompensationKind(Enum):
    REFUND = "refund"
    REPLACEMENT = "replacement"
    DISCOUNT = "discount"
    UPGRADE = "upgrade"


@dataclass(frozen=True)
class CompensationGranted:
    """Granted: at once within the agent's limit, or on a supervisor's approval."""

    TYPE: ClassVar[str] = "crm.case.CompensationGranted.v1"
    case_id: str
    compensation_id: str
    kind: CompensationKind
    amount_minor: int
    currency: str
    limit_minor: int
    approved_by_supervisor: bool
    note: str


@dataclass(frozen=True)
class CompensationRequested:
    """Above the agent's limit: waits for a supervisor."""

    TYPE: ClassVar[str] = "crm.case.CompensationRequested.v1"
    case_id: str
    compensation_id: str
    kind: CompensationKind
    amount_minor: int
    currency: str
    limit_minor: int
    note: str


@dataclass(frozen=True)
class CompensationRejected:
    TYPE: ClassVar[str] = "crm.case.CompensationRejected.v1"
    case_id: str
    compensation_id: str
    reason: str


CompensationEvent = CompensationGranted | CompensationRequested | CompensationRejected
COMPENSATION_EVENT_TYPES: tuple[type[CompensationEvent], ...] = (
    CompensationGranted,
    CompensationRequested,
    CompensationRejected,
)


@dataclass(frozen=True)
class OfferCompensation:
    case_id: str
    compensation_id: str
    kind: CompensationKind
    amount_minor: int
    currency: str
    note: str = ""
    # Filled in by the application from configuration: the offering agent's limit.
    limit_minor: int = 0
    limit_currency: str = ""


@dataclass(frozen=True)
class DecideCompensation:
    """A supervisor approves or rejects a requested compensation."""

    case_id: str
    compensation_id: str
    approve: bool
    reason: str = ""
    by_supervisor: bool = False  # filled in by the application from the actor


CompensationCommand = OfferCompensation | DecideCompensation


@dataclass(frozen=True)
class Compensations:
    """What the case knows of its compensations."""

    pending: tuple[CompensationRequested, ...] = ()
    decided: frozenset[str] = frozenset()

    def known(self, compensation_id: str) -> bool:
        return compensation_id in self.decided or any(
            p.compensation_id == compensation_id for p in self.pending
        )


def evolve_compensations(state: Compensations, event: CompensationEvent) -> Compensations:
    if isinstance(event, CompensationRequested):
        return Compensations((*state.pending, event), state.decided)
    remaining = tuple(p for p in state.pending if p.compensation_id != event.compensation_id)
    return Compensations(remaining, state.decided | {event.compensation_id})


def decide_compensation(
    command: CompensationCommand, state: Compensations
) -> list[CompensationEvent]:
    """Grant within the limit, ask a supervisor above it; only supervisors decide requests."""
    require_id("compensation_id", command.compensation_id)
    if isinstance(command, OfferCompensation):
        if state.known(command.compensation_id):
            raise AlreadyExists(f"compensation {command.compensation_id} exists already")
        if not 0 < command.amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidInput("amount_minor", f"must be between 1 and {MAX_AMOUNT_MINOR}")
        currency = command.currency
        if len(currency) != 3 or not (
            currency.isascii() and currency.isalpha() and currency.isupper()
        ):
            raise InvalidInput("currency", "must be a three-letter ISO 4217 code such as JPY")
        note = optional_text("note", command.note, MAX_SHORT_TEXT)
        within = currency == command.limit_currency and command.amount_minor <= command.limit_minor
        args = (
            command.case_id,
            command.compensation_id,
            command.kind,
            command.amount_minor,
            currency,
            command.limit_minor,
        )
        if within:
            return [CompensationGranted(*args, False, note)]
        return [CompensationRequested(*args, note)]
    if not command.by_supervisor:
        raise PermissionDenied("only a supervisor approves or rejects a compensation request")
    request = next((p for p in state.pending if p.compensation_id == command.compensation_id), None)
    if request is None:
        raise InvariantViolated(f"compensation {command.compensation_id} awaits no decision")
    if command.approve:
        note = optional_text("reason", command.reason, MAX_SHORT_TEXT)
        return [
            CompensationGranted(
                request.case_id,
                request.compensation_id,
                request.kind,
                request.amount_minor,
                request.currency,
                request.limit_minor,
                True,
                note,
            )
        ]
    reason = require_text("reason", command.reason, MAX_SHORT_TEXT)
    return [CompensationRejected(command.case_id, command.compensation_id, reason)]
