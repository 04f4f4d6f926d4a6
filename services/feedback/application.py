"""Feedback command handling: checks the customer and case it names, reads the sentiment of its
text, then records it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from crm.commands import Clock, CommandContext, CommandOutcome, Loaded, StreamHandler
from crm.errors import InvalidInput
from crm.eventstore.port import EventStore
from crm.validation import MAX_LONG_TEXT
from services.case import domain as case_domain
from services.customer import domain as customer_domain
from services.events import CODEC
from services.feedback import domain, sentiment
from services.feedback.domain import (
    Feedback,
    FeedbackCommand,
    FeedbackEvent,
    Sentiment,
    SubmitSurvey,
)

Analyze = Callable[[str], Sentiment]


class FeedbackApplication:
    """The feedback service's use cases, free of gRPC."""

    def __init__(
        self, store: EventStore, clock: Clock, analyze: Analyze = sentiment.analyze
    ) -> None:
        self._analyze = analyze
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

        analyzed = self._with_sentiment(command)

        def decide(state: Feedback | None) -> Sequence[FeedbackEvent]:
            return domain.decide(analyzed, state)

        # The request's fingerprint is the command as the caller sent it, so a retry is recognised
        # whatever the analyzer says.
        return self.feedback.execute(
            command.feedback_id,
            context,
            command,
            decide,
            lambda _state, _events: command.customer_id,
            must_exist=False,
        )

    def _with_sentiment(self, command: FeedbackCommand) -> FeedbackCommand:
        """The command with the sentiment of its text, computed now, once, on arrival."""
        text = command.comment if isinstance(command, SubmitSurvey) else command.text
        if len(text) > MAX_LONG_TEXT:
            return command  # refused by decide; not worth analyzing
        return replace(command, sentiment=self._analyze(text))

    def get(self, feedback_id: str) -> Loaded[Feedback]:
        return self.feedback.load_existing(feedback_id, "feedback_id")
