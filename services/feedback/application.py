"""Feedback command handling: checks the customer and case it names, then records it once."""

from __future__ import annotations

from collections.abc import Sequence

from crm.commands import Clock, CommandContext, CommandOutcome, Loaded, StreamHandler
from crm.errors import InvalidInput
from crm.eventstore.port import EventStore
from services.case import domain as case_domain
from services.customer import domain as customer_domain
from services.events import CODEC
from services.feedback import domain
from services.feedback.domain import Feedback, FeedbackCommand, FeedbackEvent


class FeedbackApplication:
    """The feedback service's use cases, free of gRPC."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self.feedback: StreamHandler[Feedback, FeedbackEvent] = StreamHandler(
            store, CODEC, "feedback", domain.evolve, clock
        )
        self._customers: StreamHandler[customer_domain.Customer, customer_domain.CustomerEvent] = (
            StreamHandler(store, CODEC, "customer", customer_domain.evolve, clock)
        )
        self._cases: StreamHandler[case_domain.Case, case_domain.CaseEvent] = StreamHandler(
            store, CODEC, "case", case_domain.evolve, clock
        )

    def handle(self, command: FeedbackCommand, context: CommandContext) -> CommandOutcome:
        self._customers.load_existing(command.customer_id, "customer_id")
        if command.case_id:
            case = self._cases.load_existing(command.case_id, "case_id").state
            assert case is not None
            if case.customer_id != command.customer_id:
                raise InvalidInput("case_id", f"case {command.case_id} belongs to another customer")

        def decide(state: Feedback | None) -> Sequence[FeedbackEvent]:
            return domain.decide(command, state)

        return self.feedback.execute(
            command.feedback_id,
            context,
            command,
            decide,
            lambda _state, _events: command.customer_id,
            must_exist=False,
        )

    def get(self, feedback_id: str) -> Loaded[Feedback]:
        return self.feedback.load_existing(feedback_id, "feedback_id")
