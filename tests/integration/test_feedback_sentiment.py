"""Sentiment is computed once, on arrival, stored in the event, and never recomputed by a replay.

Runs the feedback application on a real SQLite event store, then the whole system through gRPC.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from bench.server_thread import ServerThread
from crm.command_handling import CommandContext
from crm.eventstore.sqlite import SqliteEventStore
from crm.settings import Settings
from crm.v1 import (
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_events_pb2,
    feedback_service_pb2,
)
from crm.vocabulary import Actor, ActorKind, Channel
from projections.runner import rebuild
from projections.store.queries import TimelineQuery
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC, build_applications, build_system
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment
from services.feedback import sentiment
from services.feedback.application import FeedbackApplication
from services.feedback.commands import RecordVoiceOfCustomer, SubmitSurvey
from services.feedback.events import (
    Sentiment,
    SentimentLabel,
    SurveySubmitted,
    VoiceOfCustomerRecorded,
)
from services.feedback.sentiment_ja import JapanesePolarity
from tests.grpc_client import Client

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
CUSTOMER = Actor(ActorKind.CUSTOMER, "c-1")
ENGLISH = "This is the worst support I have ever had. I am furious."
JAPANESE = "最悪です。二度と使いません"


def context(request_id: str) -> CommandContext:
    return CommandContext(request_id=request_id, actor=CUSTOMER, occurred_at=NOW)


def clock() -> datetime:
    return NOW


def refuse_to_analyze(text: str) -> Sentiment:
    raise AssertionError(f"the analyzer ran again on {text!r}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    store = SqliteEventStore(tmp_path / "events.db")
    build_applications(store, clock).customers.handle(
        RegisterCustomer("c-1", "Emi Kato", (), "ja", Segment.B2C),
        context("register"),
    )
    yield store
    store.close()


def voice(app: FeedbackApplication, feedback_id: str, text: str) -> None:
    command = RecordVoiceOfCustomer(feedback_id, "c-1", Channel.SOCIAL, text)
    app.handle(command, context(f"voice-{feedback_id}"))


def test_negative_voice_of_customer_in_english_and_japanese_is_stored_negative(
    store: SqliteEventStore,
) -> None:
    app = build_applications(store, clock).feedback
    voice(app, "fb-en", ENGLISH)
    voice(app, "fb-ja", JAPANESE)

    for feedback_id, language in (("fb-en", "en"), ("fb-ja", "ja")):
        (record,) = store.read_stream(f"feedback-{feedback_id}")
        stored = json.loads(record.data)
        assert stored["sentiment_label"] == "negative"
        assert stored["sentiment_score"] < -0.05
        assert stored["sentiment_analyzer"] == sentiment.analyze(stored["text"]).analyzer
        assert sentiment.analyze(stored["text"]).language == language
        state = app.get(feedback_id).state
        assert state is not None
        assert isinstance(state.event, VoiceOfCustomerRecorded)
        assert state.event.sentiment_label is SentimentLabel.NEGATIVE


def test_a_survey_without_a_comment_is_not_analyzed(store: SqliteEventStore) -> None:
    app = build_applications(store, clock).feedback
    app.handle(SubmitSurvey("fb-1", "c-1", Channel.EMAIL, csat=5), context("survey"))

    state = app.get("fb-1").state
    assert state is not None
    assert isinstance(state.event, SurveySubmitted)
    assert (state.event.sentiment_label, state.event.sentiment_analyzer) == (
        SentimentLabel.NEUTRAL,
        "",
    )


def test_replay_reads_the_stored_sentiment_and_never_runs_the_analyzer(
    store: SqliteEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voice(build_applications(store, clock).feedback, "fb-ja", JAPANESE)
    monkeypatch.setattr(sentiment, "analyze", refuse_to_analyze)
    monkeypatch.setattr(JapanesePolarity, "score", refuse_to_analyze)
    monkeypatch.setattr(SentimentIntensityAnalyzer, "polarity_scores", refuse_to_analyze)

    replaying = build_applications(store, clock, analyze=refuse_to_analyze).feedback
    state = replaying.get("fb-ja").state
    view_store = SqliteViewStore(tmp_path / "views.db")
    try:
        rebuild(store, view_store, CODEC)
        page = view_store.timeline(TimelineQuery("c-1", kinds=frozenset({"feedback"})))
    finally:
        view_store.close()

    assert state is not None
    assert isinstance(state.event, VoiceOfCustomerRecorded)
    assert state.event.sentiment_label is SentimentLabel.NEGATIVE
    assert [entry.summary for entry in page.entries] == [
        "Voice of the customer recorded on social, negative sentiment"
    ]


def test_a_retried_request_is_recognised_whatever_the_analyzer_says_now(
    store: SqliteEventStore,
) -> None:
    voice(build_applications(store, clock).feedback, "fb-1", ENGLISH)
    upgraded = build_applications(
        store, clock, analyze=lambda _: Sentiment(SentimentLabel.NEUTRAL, 0.0, "en", "vader-9")
    ).feedback

    command = RecordVoiceOfCustomer("fb-1", "c-1", Channel.SOCIAL, ENGLISH)
    outcome = upgraded.handle(command, context("voice-fb-1"))

    assert outcome.duplicate_request
    assert len(store.read_stream("feedback-fb-1")) == 1


def test_get_feedback_returns_the_sentiment_through_grpc(tmp_path: Path) -> None:
    system = build_system(Settings.defaults(data_dir=tmp_path))
    server = ServerThread(system)
    client = Client(server.access, prefix="sentiment")
    try:
        customer_id = client.customers.RegisterCustomer(
            customer_service_pb2.RegisterCustomerRequest(
                context=client.context(),
                name="Emi Kato",
                language="ja",
                segment=customer_events_pb2.SEGMENT_B2C,
            )
        ).aggregate_id
        recorded = client.feedback.RecordVoiceOfCustomer(
            feedback_service_pb2.RecordVoiceOfCustomerRequest(
                context=client.context(),
                customer_id=customer_id,
                channel=common_pb2.CHANNEL_SOCIAL,
                text=JAPANESE,
            )
        )

        reply = client.feedback.GetFeedback(
            feedback_service_pb2.GetFeedbackRequest(feedback_id=recorded.aggregate_id)
        )
    finally:
        client.close()
        server.stop(1)
        system.close()

    detail = reply.voice_of_customer
    assert detail.sentiment_label == feedback_events_pb2.SENTIMENT_LABEL_NEGATIVE
    assert detail.sentiment_score == -1.0
    assert detail.sentiment_analyzer.startswith("ja-polarity-")
