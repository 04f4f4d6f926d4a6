"""Given/when/then tests of the feedback aggregate: surveys, reviews, voice of the customer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated
from crm.vocabulary import Channel
from services.feedback.commands import (
    FeedbackCommand,
    RecordVoiceOfCustomer,
    SubmitReview,
    SubmitSurvey,
)
from services.feedback.domain import Feedback, decide, evolve
from services.feedback.events import (
    FeedbackEvent,
    FeedbackKind,
    ReviewSubmitted,
    Sentiment,
    SentimentLabel,
    SurveySubmitted,
    VoiceOfCustomerRecorded,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SURVEY = SubmitSurvey("fb-1", "cust-1", Channel.EMAIL, case_id="case-1", csat=4)
REVIEW = SubmitReview("fb-2", "cust-1", rating=5, text="Quick and kind.", source="app-store")
VOICE = RecordVoiceOfCustomer("fb-3", "cust-1", Channel.SOCIAL, text="The FAQ is hard to find.")


def given(event: FeedbackEvent) -> Feedback:
    """The feedback after it was recorded at T0."""
    return evolve(None, event, T0)


def test_a_survey_is_recorded_with_its_scores() -> None:
    events = decide(SURVEY, None)

    assert events == [SurveySubmitted("fb-1", "cust-1", "case-1", Channel.EMAIL, 4, None, None, "")]
    state = given(events[0])
    assert (state.kind, state.case_id, state.received_at) == (FeedbackKind.SURVEY, "case-1", T0)
    assert state.event == events[0]


def test_a_survey_needs_at_least_one_score() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(replace(SURVEY, csat=None), None)

    assert refused.value.field == "scores"


@pytest.mark.parametrize(
    ("field", "score", "accepted"),
    [
        ("csat", 1, True),
        ("csat", 5, True),
        ("csat", 0, False),
        ("csat", 6, False),
        ("nps", 0, True),
        ("nps", 10, True),
        ("nps", -1, False),
        ("nps", 11, False),
        ("ces", 1, True),
        ("ces", 7, True),
        ("ces", 0, False),
        ("ces", 8, False),
    ],
)
def test_survey_score_ranges(field: str, score: int, accepted: bool) -> None:
    scores: dict[str, Any] = {"csat": None, field: score}
    command = replace(SURVEY, **scores)

    if accepted:
        (event,) = decide(command, None)
        assert isinstance(event, SurveySubmitted)
        assert getattr(event, field) == score
    else:
        with pytest.raises(InvalidInput) as refused:
            decide(command, None)
        assert refused.value.field == field


def test_a_survey_with_every_score() -> None:
    (event,) = decide(replace(SURVEY, csat=5, nps=9, ces=2, comment="great"), None)

    assert isinstance(event, SurveySubmitted)
    assert (event.csat, event.nps, event.ces, event.comment) == (5, 9, 2, "great")


def test_a_review_is_recorded() -> None:
    events = decide(REVIEW, None)

    assert events == [ReviewSubmitted("fb-2", "cust-1", "", 5, "Quick and kind.", "app-store")]
    assert given(events[0]).kind is FeedbackKind.REVIEW


@pytest.mark.parametrize(("rating", "accepted"), [(1, True), (5, True), (0, False), (6, False)])
def test_review_rating_range(rating: int, accepted: bool) -> None:
    command = replace(REVIEW, rating=rating)

    if accepted:
        (event,) = decide(command, None)
        assert isinstance(event, ReviewSubmitted)
        assert event.rating == rating
    else:
        with pytest.raises(InvalidInput) as refused:
            decide(command, None)
        assert refused.value.field == "rating"


def test_a_review_text_may_be_empty() -> None:
    (event,) = decide(replace(REVIEW, text=""), None)

    assert isinstance(event, ReviewSubmitted)
    assert event.text == ""


def test_a_voice_of_customer_is_recorded() -> None:
    events = decide(VOICE, None)

    assert events == [
        VoiceOfCustomerRecorded("fb-3", "cust-1", "", Channel.SOCIAL, "The FAQ is hard to find.")
    ]
    assert given(events[0]).kind is FeedbackKind.VOICE_OF_CUSTOMER


@pytest.mark.parametrize("text", ["", "   ", "t" * 10_001])
def test_a_voice_of_customer_needs_text(text: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(replace(VOICE, text=text), None)

    assert refused.value.field == "text"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (replace(SURVEY, feedback_id=""), "feedback_id"),
        (replace(SURVEY, feedback_id="has space"), "feedback_id"),
        (replace(SURVEY, customer_id=""), "customer_id"),
        (replace(SURVEY, customer_id="x" * 129), "customer_id"),
        (replace(SURVEY, case_id="bad/case"), "case_id"),
        (replace(SURVEY, comment="c" * 10_001), "comment"),
        (replace(REVIEW, source=""), "source"),
        (replace(REVIEW, source="s" * 201), "source"),
        (replace(REVIEW, text="t" * 10_001), "text"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(
    command: FeedbackCommand, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(command, None)

    assert refused.value.field == field


@pytest.mark.parametrize("command", [SURVEY, REVIEW, VOICE], ids=lambda c: type(c).__name__)
def test_recording_the_same_feedback_twice_is_refused(command: FeedbackCommand) -> None:
    state = given(decide(command, None)[0])

    with pytest.raises(AlreadyExists, match="recorded already"):
        decide(command, state)


def test_a_second_feedback_event_on_one_stream_is_refused_by_the_fold() -> None:
    state = given(decide(SURVEY, None)[0])

    with pytest.raises(InvariantViolated, match="recorded already"):
        evolve(state, decide(SURVEY, None)[0], T0)


NEGATIVE = Sentiment(SentimentLabel.NEGATIVE, -0.743, "en", "vader-3.3.2")


@pytest.mark.parametrize("command", [SURVEY, REVIEW, VOICE], ids=lambda c: type(c).__name__)
def test_the_event_carries_the_sentiment_given_with_the_command(command: FeedbackCommand) -> None:
    (event,) = decide(replace(command, sentiment=NEGATIVE), None)

    assert (event.sentiment_label, event.sentiment_score, event.sentiment_analyzer) == (
        SentimentLabel.NEGATIVE,
        -0.743,
        "vader-3.3.2",
    )


@pytest.mark.parametrize("command", [SURVEY, REVIEW, VOICE], ids=lambda c: type(c).__name__)
def test_without_a_sentiment_the_event_reads_as_not_analyzed(command: FeedbackCommand) -> None:
    (event,) = decide(command, None)

    assert (event.sentiment_label, event.sentiment_score, event.sentiment_analyzer) == (
        SentimentLabel.NEUTRAL,
        0.0,
        "",
    )


@pytest.mark.parametrize("score", [-1.001, 1.001, float("nan")])
def test_a_sentiment_score_outside_minus_one_to_one_is_refused(score: float) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(replace(VOICE, sentiment=replace(NEGATIVE, score=score)), None)

    assert refused.value.field == "sentiment.score"
