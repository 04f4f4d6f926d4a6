"""The feedback aggregate's fold and refusals in detail: what the state keeps, the exact texts
callers read, and the bounds of a sentiment score."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest

from crm.errors import InvalidInput
from crm.vocabulary import Channel
from services.feedback.commands import RecordVoiceOfCustomer, SubmitSurvey
from services.feedback.domain import decide, evolve
from services.feedback.events import NOT_ANALYZED, FeedbackKind, Sentiment, SentimentLabel

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VOICE = RecordVoiceOfCustomer("fb-8", "cust-8", Channel.CHAT, text="Nobody answers the chat.")


def test_the_folded_feedback_names_itself_its_customer_and_its_case() -> None:
    (event,) = decide(replace(VOICE, case_id="case-8"), None)

    state = evolve(None, event, T0)

    assert (state.feedback_id, state.customer_id, state.case_id) == ("fb-8", "cust-8", "case-8")
    assert (state.kind, state.received_at, state.event) == (
        FeedbackKind.VOICE_OF_CUSTOMER,
        T0,
        event,
    )


def test_a_survey_without_scores_is_refused_saying_which_scores_it_takes() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(SubmitSurvey("fb-8", "cust-8", Channel.EMAIL), None)

    assert str(refused.value) == "scores: a survey needs at least one of csat, nps, ces"


@pytest.mark.parametrize("score", [-1.0, 1.0])
def test_a_sentiment_score_at_either_bound_is_accepted(score: float) -> None:
    label = SentimentLabel.NEGATIVE if score < 0 else SentimentLabel.POSITIVE
    (event,) = decide(replace(VOICE, sentiment=Sentiment(label, score, "en", "vader-3.3.2")), None)

    assert event.sentiment_score == score


def test_a_sentiment_score_out_of_range_is_refused_quoting_it() -> None:
    sentiment = Sentiment(SentimentLabel.POSITIVE, 1.5, "en", "vader-3.3.2")

    with pytest.raises(InvalidInput) as refused:
        decide(replace(VOICE, sentiment=sentiment), None)

    assert str(refused.value) == "sentiment.score: must be within -1..1, not 1.5"


@dataclass(frozen=True)
class RetractFeedback:
    """A command the feedback aggregate does not know, shaped like the ones it does."""

    feedback_id: str
    customer_id: str
    case_id: str = ""
    sentiment: Sentiment = NOT_ANALYZED


def test_a_command_it_does_not_know_is_refused_naming_its_type() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(RetractFeedback("fb-8", "cust-8"), None)  # type: ignore[arg-type]

    assert refused.value.field == "command"
    assert str(refused.value) == "command: unknown feedback command RetractFeedback"
