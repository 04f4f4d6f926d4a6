"""What callers may record as feedback: the feedback service's commands."""

from __future__ import annotations

from dataclasses import dataclass

from crm.vocabulary import Channel
from services.feedback.events import NOT_ANALYZED, Sentiment


@dataclass(frozen=True)
class SubmitSurvey:
    feedback_id: str
    customer_id: str
    channel: Channel
    case_id: str = ""
    csat: int | None = None
    nps: int | None = None
    ces: int | None = None
    comment: str = ""
    sentiment: Sentiment = NOT_ANALYZED  # of the comment


@dataclass(frozen=True)
class SubmitReview:
    feedback_id: str
    customer_id: str
    rating: int
    text: str
    source: str
    case_id: str = ""
    sentiment: Sentiment = NOT_ANALYZED  # of the text


@dataclass(frozen=True)
class RecordVoiceOfCustomer:
    feedback_id: str
    customer_id: str
    channel: Channel
    text: str
    case_id: str = ""
    sentiment: Sentiment = NOT_ANALYZED  # of the text


FeedbackCommand = SubmitSurvey | SubmitReview | RecordVoiceOfCustomer
