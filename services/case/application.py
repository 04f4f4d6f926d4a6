"""Case command handling: checks what a case refers to and that an agent may work it, then
load -> decide -> append."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from crm.command_handling import (
    DEFAULT_EARLIEST,
    Clock,
    CommandContext,
    CommandOutcome,
    Loaded,
    StreamHandler,
    require_not_before,
)
from crm.errors import InvariantViolated
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.folding import Fold
from crm.vocabulary import ActorKind
from services.case import domain as case_domain
from services.case.commands import CaseCommand, OpenCase, RecordContact
from services.case.compensation import DecideCompensation, OfferCompensation
from services.case.events import CaseEvent, CaseOpened
from services.case.limits import CompensationLimits
from services.case.summary import summarize
from services.case.team_access import require_team


@dataclass(frozen=True)
class CustomerStanding:
    """What opening a case needs to know of its customer."""

    vip: bool
    merged_into: str  # "" unless the profile was merged into another


CASE_FOLD = Fold(case_domain.Case, case_domain.evolve, case_domain.FOLD_VERSION)

CustomerLookup = Callable[[str], CustomerStanding]
"""The standing of an existing customer; raises NotFound naming `customer_id` for an unknown one.
The customer service answers it; the composition root wires the two together."""


class CaseApplication:
    """The case service's use cases, free of gRPC."""

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        clock: Clock,
        customers: CustomerLookup,
        limits: CompensationLimits | None = None,
        earliest: datetime = DEFAULT_EARLIEST,
    ) -> None:
        self._codec = codec
        self._customers = customers
        self._limits = limits or CompensationLimits()
        self.cases: StreamHandler[case_domain.Case, CaseEvent] = StreamHandler(
            store, codec, "case", CASE_FOLD, clock, earliest=earliest
        )

    def handle(self, command: CaseCommand, context: CommandContext) -> CommandOutcome:
        decided = command
        if isinstance(command, OpenCase):
            customer = self._require_active_customer(command.customer_id)
            decided = replace(command, vip=customer.vip)
        elif isinstance(command, OfferCompensation):
            limit = self._limits.for_agent(context.actor.id)
            decided = replace(command, limit_minor=limit, limit_currency=self._limits.currency)
        elif isinstance(command, DecideCompensation):
            decided = replace(command, by_supervisor=context.actor.kind is ActorKind.SUPERVISOR)
        elif isinstance(command, RecordContact) and command.started_at.tzinfo is not None:
            require_not_before("started_at", command.started_at, self.cases.earliest)

        def decide(state: case_domain.Case | None) -> Sequence[CaseEvent]:
            # Checked against the state the command is decided on, under the stream's turn, so
            # a reassignment that lands first is seen.
            require_team(state, context.teams)
            return case_domain.decide(decided, state)

        return self.cases.execute(
            command.case_id,
            context,
            command,
            decide,
            _customer_of,
            must_exist=not isinstance(command, OpenCase),
        )

    def get(self, case_id: str) -> Loaded[case_domain.Case]:
        return self.cases.load_existing(case_id, "case_id")

    def summary(self, case_id: str) -> tuple[str, int]:
        """The hand-over paragraph and the revision it covers."""
        self.get(case_id)  # refuses an unknown case, naming case_id
        records = self.cases.history(case_id)
        history = [(self._codec.decode(r.type, r.data), r.metadata.occurred_at) for r in records]
        return summarize(history), records[-1].revision

    def _require_active_customer(self, customer_id: str) -> CustomerStanding:
        customer = self._customers(customer_id)
        if customer.merged_into:
            raise InvariantViolated(
                f"customer {customer_id} was merged into {customer.merged_into}; "
                "open the case for that customer"
            )
        return customer


def _customer_of(state: case_domain.Case | None, events: Sequence[CaseEvent]) -> str:
    if state is not None:
        return state.customer_id
    opened = events[0]
    assert isinstance(opened, CaseOpened)
    return opened.customer_id
