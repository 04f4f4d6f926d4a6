"""Stored JSON payloads decode into events, including those stored before a field was added."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest

from crm.errors import IntegrityError
from crm.eventcodec import EventCodec
from crm.vocabulary import Channel
from services.bootstrap import CODEC
from services.feedback.events import SentimentLabel, VoiceOfCustomerRecorded


@dataclass(frozen=True)
class Grown:
    TYPE: ClassVar[str] = "test.Grown.v1"
    required: str
    added_later: int = 7


GROWN = EventCodec([Grown])


def test_a_field_missing_from_an_older_payload_takes_its_default() -> None:
    assert GROWN.decode(Grown.TYPE, b'{"required": "x"}') == Grown("x", 7)
    assert GROWN.decode(Grown.TYPE, b'{"required": "x", "added_later": 1}') == Grown("x", 1)


def test_a_missing_field_without_a_default_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="lacks the field required"):
        GROWN.decode(Grown.TYPE, b'{"added_later": 1}')


def test_feedback_stored_before_sentiment_existed_reads_as_not_analyzed() -> None:
    stored = {
        "feedback_id": "fb-1",
        "customer_id": "c-1",
        "case_id": "",
        "channel": "social",
        "text": "The FAQ is hard to find.",
    }

    event = CODEC.decode(VoiceOfCustomerRecorded.TYPE, json.dumps(stored).encode())

    assert event == VoiceOfCustomerRecorded("fb-1", "c-1", "", Channel.SOCIAL, stored["text"])
    assert (event.sentiment_label, event.sentiment_score, event.sentiment_analyzer) == (
        SentimentLabel.NEUTRAL,
        0.0,
        "",
    )
