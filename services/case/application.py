"""Case command handling: checks what a case refers to, then load -> decide -> append."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from crm.commands import Clock, CommandContext, CommandOutcome, Loaded, StreamHandler
from crm.errors import InvariantViolated
from crm.eventstore.port import EventStore
from crm.vocabulary import ActorKind
from services.case import domain
from services.case.compensation import DecideCompensation, OfferCompensation
from services.case.domain import Case, CaseCommand, CaseEvent
from services.case.limits import CompensationLimits
from services.case.summary import summarize
from services.customer import domain as customer_domain
from services.customer.domain import Customer, Tier
from services.events import CODEC


class CaseApplication:
    """The case service's use cases, free of gRPC."""

    def __init__(
        self, store: EventStore, clock: Clock, limits: CompensationLimits | None = None
    ) -> None:
        self._limits = limits or CompensationLimits()
        self.cases: StreamHandler[Case, CaseEvent] = StreamHandler(
            store, CODEC, "case", domain.evolve, clock
        )
        self._customers: StreamHandler[Customer, customer_domain.CustomerEvent] = StreamHandler(
            store, CODEC, "customer", customer_domain.evolve, clock
        )

    def handle(self, command: CaseCommand, context: CommandContext) -> CommandOutcome:
        decided = command
        if isinstance(command, domain.OpenCase):
            customer = self._require_active_customer(command.customer_id)
            decided = replace(command, vip=customer.tier is Tier.VIP)
        elif isinstance(command, OfferCompensation):
            limit = self._limits.for_agent(context.actor.id)
            decided = replace(command, limit_minor=limit, limit_currency=self._limits.currency)
        elif isinstance(command, DecideCompensation):
            decided = replace(command, by_supervisor=context.actor.kind is ActorKind.SUPERVISOR)

        def decide(state: Case | None) -> Sequence[CaseEvent]:
            return domain.decide(decided, state)

        return self.cases.execute(
            command.case_id,
            context,
            command,
            decide,
            _customer_of,
            must_exist=not isinstance(command, domain.OpenCase),
        )

    def get(self, case_id: str) -> Loaded[Case]:
        return self.cases.load_existing(case_id, "case_id")

    def summary(self, case_id: str) -> tuple[str, int]:
        """The hand-over paragraph and the revision it covers."""
        loaded = self.get(case_id)
        history = [(CODEC.decode(r.type, r.data), r.metadata.occurred_at) for r in loaded.records]
        return summarize(history), loaded.revision

    def _require_active_customer(self, customer_id: str) -> Customer:
        customer = self._customers.load_existing(customer_id, "customer_id").state
        assert customer is not None
        if customer.merged_into:
            raise InvariantViolated(
                f"customer {customer_id} was merged into {customer.merged_into}; "
                "open the case for that customer"
            )
        return customer


def _customer_of(state: Case | None, events: Sequence[CaseEvent]) -> str:
    if state is not None:
        return state.customer_id
    opened = events[0]
    assert isinstance(opened, domain.CaseOpened)
    return opened.customer_id
