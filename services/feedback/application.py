"""Feedback command handling: checks the customer and case it names, reads the sentiment of its
text, then records it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from crm.command_handling import (
    DEFAULT_EARLIEST,
    Clock,
    CommandContext,
    CommandOutcome,
    Loaded,
    StreamHandler,
)
from crm.errors import InvalidInput
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.folding import Fold
from crm.validation import MAX_LONG_TEXT
from services.feedback import domain as feedback_domain
from services.feedback import sentiment
from services.feedback.commands import FeedbackCommand, SubmitSurvey
from services.feedback.events import FeedbackEvent, Sentiment

FEEDBACK_FOLD = Fold(feedback_domain.Feedback, feedback_domain.evolve, feedback_domain.FOLD_VERSION)

Analyze = Callable[[str], Sentiment]

RequireCustomer = Callable[[str], None]
"""Raises NotFound naming `customer_id` unless the customer exists (customer service)."""

CaseOwner = Callable[[str], str]
"""The customer id of an existing case; raises NotFound naming `case_id` for an unknown one (the
case service answers)."""


class FeedbackApplication:
    """The feedback service's use cases, free of gRPC."""

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        clock: Clock,
        require_customer: RequireCustomer,
        case_owner: CaseOwner,
        analyze: Analyze = sentiment.analyze,
        earliest: datetime = DEFAULT_EARLIEST,
    ) -> None:
        self._analyze = analyze
        self._require_customer = require_customer
        self._case_owner = case_owner
        self.feedback: StreamHandler[feedback_domain.Feedback, FeedbackEvent] = StreamHandler(
            store, codec, "feedback", FEEDBACK_FOLD, clock, earliest=earliest
        )

    def handle(self, command: FeedbackCommand, context: CommandContext) -> CommandOutcome:
        self._require_customer(command.customer_id)
        if command.case_id and self._case_owner(command.case_id) != command.customer_id:
            raise InvalidInput("case_id", f"case {command.case_id} belongs to another customer")

        analyzed = self._with_sentiment(command)

        def decide(state: feedback_domain.Feedback | None) -> Sequence[FeedbackEvent]:
            return feedback_domain.decide(analyzed, state)

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

    def get(self, feedback_id: str) -> Loaded[feedback_domain.Feedback]:
        return self.feedback.load_existing(feedback_id, "feedback_id")
