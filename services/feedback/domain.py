"""The feedback aggregate: surveys, reviews and free-text voice of the customer (pure).

Each piece of feedback is its own stream and is recorded once; corrections would be new events.
The sentiment of its text is computed by the application on arrival (services/feedback/sentiment.py)
and comes in with the command; the events keep it, so a replay never runs an analyzer again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated
from crm.validation import (
    MAX_LONG_TEXT,
    MAX_NAME,
    optional_id,
    optional_text,
    require_id,
    require_range,
    require_text,
)
from services.feedback.commands import (
    FeedbackCommand,
    RecordVoiceOfCustomer,
    SubmitReview,
    SubmitSurvey,
)
from services.feedback.events import (
    CES_RANGE,
    CSAT_RANGE,
    NPS_RANGE,
    RATING_RANGE,
    FeedbackEvent,
    FeedbackKind,
    ReviewSubmitted,
    Sentiment,
    SentimentLabel,
    SurveySubmitted,
    VoiceOfCustomerRecorded,
)

FOLD_VERSION = 1
"""The version of `evolve` and of `Feedback`: bump it whenever either changes, so snapshots
folded by the old code are ignored (crm.folding) instead of trusted."""


@dataclass(frozen=True)
class Feedback:
    feedback_id: str
    customer_id: str
    case_id: str
    kind: FeedbackKind
    received_at: datetime
    event: FeedbackEvent


def evolve(state: Feedback | None, event: FeedbackEvent, at: datetime) -> Feedback:
    """Feedback is recorded once; its state is the event that recorded it."""
    if state is not None:
        raise InvariantViolated(f"feedback {state.feedback_id} is recorded already")
    kind = {
        SurveySubmitted: FeedbackKind.SURVEY,
        ReviewSubmitted: FeedbackKind.REVIEW,
        VoiceOfCustomerRecorded: FeedbackKind.VOICE_OF_CUSTOMER,
    }[type(event)]
    return Feedback(event.feedback_id, event.customer_id, event.case_id, kind, at, event)


def decide(command: FeedbackCommand, state: Feedback | None) -> list[FeedbackEvent]:
    """Validate the feedback and record it, once."""
    require_id("feedback_id", command.feedback_id)
    require_id("customer_id", command.customer_id)
    case_id = optional_id("case_id", command.case_id)
    if state is not None:
        raise AlreadyExists(f"feedback {command.feedback_id} is recorded already")
    sentiment = _sentiment(command.sentiment)
    match command:
        case SubmitSurvey():
            if command.csat is None and command.nps is None and command.ces is None:
                raise InvalidInput("scores", "a survey needs at least one of csat, nps, ces")
            _optional_score("csat", command.csat, CSAT_RANGE)
            _optional_score("nps", command.nps, NPS_RANGE)
            _optional_score("ces", command.ces, CES_RANGE)
            return [
                SurveySubmitted(
                    command.feedback_id,
                    command.customer_id,
                    case_id,
                    command.channel,
                    command.csat,
                    command.nps,
                    command.ces,
                    optional_text("comment", command.comment, MAX_LONG_TEXT),
                    *sentiment,
                )
            ]
        case SubmitReview():
            require_range("rating", command.rating, *RATING_RANGE)
            return [
                ReviewSubmitted(
                    command.feedback_id,
                    command.customer_id,
                    case_id,
                    command.rating,
                    optional_text("text", command.text, MAX_LONG_TEXT),
                    require_text("source", command.source, MAX_NAME),
                    *sentiment,
                )
            ]
        case RecordVoiceOfCustomer():
            return [
                VoiceOfCustomerRecorded(
                    command.feedback_id,
                    command.customer_id,
                    case_id,
                    command.channel,
                    require_text("text", command.text, MAX_LONG_TEXT),
                    *sentiment,
                )
            ]
    raise InvalidInput("command", f"unknown feedback command {type(command).__name__}")


def _sentiment(sentiment: Sentiment) -> tuple[SentimentLabel, float, str]:
    """The event fields of a sentiment: label, score and the analyzer that produced them."""
    if not -1.0 <= sentiment.score <= 1.0:
        raise InvalidInput("sentiment.score", f"must be within -1..1, not {sentiment.score}")
    return sentiment.label, sentiment.score, sentiment.analyzer


def _optional_score(field: str, value: int | None, bounds: tuple[int, int]) -> None:
    if value is not None:
        require_range(field, value, *bounds)


NEGATIVE_CSAT = 2
NEGATIVE_NPS = 6
NEGATIVE_RATING = 2


class Negativity(Enum):
    """Why a piece of feedback is negative: a poor score is stronger than a negative tone."""

    POOR_SCORE = "negative_feedback"
    NEGATIVE_SENTIMENT = "negative_sentiment"


def negativity(event: FeedbackEvent) -> Negativity | None:
    """What a piece of feedback says about its case: CSAT <= 2, an NPS detractor or a poor
    review is a poor score; otherwise text with a negative sentiment is a warning."""
    match event:
        case SurveySubmitted():
            if (event.csat is not None and event.csat <= NEGATIVE_CSAT) or (
                event.nps is not None and event.nps <= NEGATIVE_NPS
            ):
                return Negativity.POOR_SCORE
        case ReviewSubmitted():
            if event.rating <= NEGATIVE_RATING:
                return Negativity.POOR_SCORE
    if event.sentiment_label is SentimentLabel.NEGATIVE:
        return Negativity.NEGATIVE_SENTIMENT
    return None
