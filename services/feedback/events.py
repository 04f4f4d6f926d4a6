"""What feedback records: the feedback stream's events, their score ranges and sentiment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from crm.vocabulary import Channel

CSAT_RANGE = (1, 5)
NPS_RANGE = (0, 10)
CES_RANGE = (1, 7)
RATING_RANGE = (1, 5)


class FeedbackKind(Enum):
    SURVEY = "survey"
    REVIEW = "review"
    VOICE_OF_CUSTOMER = "voice_of_customer"


class SentimentLabel(Enum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


@dataclass(frozen=True)
class Sentiment:
    """How a feedback text reads: label, score in -1..1, language, and the analyzer that said so."""

    label: SentimentLabel
    score: float
    language: str
    analyzer: str  # name and version, e.g. "vader-3.3.2"; "" when there was no text to analyze


NOT_ANALYZED = Sentiment(SentimentLabel.NEUTRAL, 0.0, "", "")


@dataclass(frozen=True)
class SurveySubmitted:
    TYPE: ClassVar[str] = "crm.feedback.SurveySubmitted.v1"
    feedback_id: str
    customer_id: str
    case_id: str
    channel: Channel
    csat: int | None
    nps: int | None
    ces: int | None
    comment: str
    # Defaults: events recorded before sentiment existed read as not analyzed.
    sentiment_label: SentimentLabel = SentimentLabel.NEUTRAL
    sentiment_score: float = 0.0
    sentiment_analyzer: str = ""


@dataclass(frozen=True)
class ReviewSubmitted:
    TYPE: ClassVar[str] = "crm.feedback.ReviewSubmitted.v1"
    feedback_id: str
    customer_id: str
    case_id: str
    rating: int
    text: str
    source: str
    sentiment_label: SentimentLabel = SentimentLabel.NEUTRAL
    sentiment_score: float = 0.0
    sentiment_analyzer: str = ""


@dataclass(frozen=True)
class VoiceOfCustomerRecorded:
    TYPE: ClassVar[str] = "crm.feedback.VoiceOfCustomerRecorded.v1"
    feedback_id: str
    customer_id: str
    case_id: str
    channel: Channel
    text: str
    sentiment_label: SentimentLabel = SentimentLabel.NEUTRAL
    sentiment_score: float = 0.0
    sentiment_analyzer: str = ""


FeedbackEvent = SurveySubmitted | ReviewSubmitted | VoiceOfCustomerRecorded
EVENT_TYPES: tuple[type[FeedbackEvent], ...] = (
    SurveySubmitted,
    ReviewSubmitted,
    VoiceOfCustomerRecorded,
)
