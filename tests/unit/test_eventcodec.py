"""Stored JSON payloads decode into events, including those stored before a field was added;
states with sets and unions of events round trip through their declared type."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest

from crm.errors import IntegrityError, InvalidInput
from crm.eventcodec import EventCodec, from_plain, to_plain
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


# ---------------------------------------------------------------- sets and unions (states)


@dataclass(frozen=True)
class Opened:
    TYPE: ClassVar[str] = "test.Opened.v1"
    at: datetime


@dataclass(frozen=True)
class Closed:
    TYPE: ClassVar[str] = "test.Closed.v1"
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Holder:
    channels: frozenset[Channel]
    names: frozenset[str]
    last: Opened | Closed
    previous: Opened | Closed | None = None
    first: Opened | None = None


T = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def test_sets_are_stored_as_sorted_lists_and_read_back_as_frozensets() -> None:
    holder = Holder(frozenset({Channel.PHONE, Channel.EMAIL}), frozenset({"b", "a"}), Opened(T))
    plain = to_plain(holder, Holder)
    assert plain["channels"] == sorted(["phone", "email"])
    assert plain["names"] == ["a", "b"]
    assert to_plain(frozenset({"b", "a"})) == ["a", "b"]  # without a declared type as well
    assert from_plain(Holder, json.loads(json.dumps(plain))) == holder


def test_a_union_of_several_classes_records_which_one_it_holds() -> None:
    holder = Holder(frozenset(), frozenset(), Closed(T, "done"), previous=Opened(T))
    plain = to_plain(holder, Holder)
    assert plain["last"] == {
        "type": "test.Closed.v1",
        "value": {"at": T.isoformat(), "reason": "done"},
    }
    assert plain["previous"]["type"] == "test.Opened.v1"
    assert plain["first"] is None
    assert from_plain(Holder, json.loads(json.dumps(plain))) == holder


def test_an_unnamed_union_member_is_an_integrity_error() -> None:
    plain = to_plain(Holder(frozenset(), frozenset(), Opened(T)), Holder)
    plain["last"] = {"type": "test.Reopened.v1", "value": {"at": T.isoformat()}}
    with pytest.raises(IntegrityError, match="no member"):
        from_plain(Holder, plain)


def test_a_union_member_without_a_type_name_cannot_be_stored() -> None:
    @dataclass(frozen=True)
    class Anonymous:
        n: int

    with pytest.raises(TypeError, match="TYPE"):
        to_plain(Anonymous(1), Anonymous | Opened)


def test_the_declared_type_changes_nothing_where_no_union_needs_a_name() -> None:
    """Events and command digests keep the form they always had."""
    event = VoiceOfCustomerRecorded("fb-1", "c-1", "", Channel.SOCIAL, "text")
    assert to_plain(event, VoiceOfCustomerRecorded) == to_plain(event)
    assert CODEC.encode(event)[1] == json.dumps(to_plain(event), sort_keys=True).encode()


@dataclass
class Collections:
    """Shapes the plain form carries besides events' own: sets, dicts, lists, fixed tuples."""

    by_channel: dict[Channel, datetime]
    spans: list[tuple[datetime, datetime | None]]
    channels: set[Channel]
    frozen: frozenset[str]


T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def test_sets_dicts_lists_and_fixed_tuples_round_trip_through_json() -> None:
    value = Collections(
        by_channel={Channel.EMAIL: T0, Channel.PHONE: T0 + timedelta(hours=1)},
        spans=[(T0, None), (T0, T0 + timedelta(minutes=5))],
        channels={Channel.SOCIAL, Channel.EMAIL, Channel.CHAT},
        frozen=frozenset({"b", "a"}),
    )
    text = json.dumps(to_plain(value))
    assert from_plain(Collections, json.loads(text)) == value


def test_equal_sets_encode_to_equal_bytes_whatever_their_iteration_order() -> None:
    one, other = {Channel.SOCIAL, Channel.EMAIL}, {Channel.EMAIL, Channel.SOCIAL}
    assert json.dumps(to_plain(one)) == json.dumps(to_plain(other)) == '["email", "social"]'


def test_a_dict_key_that_cannot_be_a_json_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot be a JSON object key"):
        to_plain({1: "one"})


def test_events_encode_as_before() -> None:
    """The extension must not change a byte of what events hash to."""
    event = VoiceOfCustomerRecorded("fb-1", "c-1", "", Channel.SOCIAL, "Hard to find.")
    assert CODEC.encode(event)[1] == (
        b'{"case_id": "", "channel": "social", "customer_id": "c-1", "feedback_id": "fb-1",'
        b' "sentiment_analyzer": "", "sentiment_label": "neutral", "sentiment_score": 0.0,'
        b' "text": "Hard to find."}'
    )
