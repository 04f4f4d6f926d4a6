"""The protos mirror the domain events: every event round-trips, personal fields are marked."""

from __future__ import annotations

import dataclasses
import types
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.errors import InvalidInput
from crm.protocodec import (
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    duration,
    event_message_class,
    event_to_message,
    from_message,
    instant,
    personal_fields,
)
from services.bootstrap import CODEC
from services.feedback.events import SentimentLabel, VoiceOfCustomerRecorded

EVENT_CLASSES = [CODEC.class_for(name) for name in CODEC.type_names]

# Fields that hold what a person wrote or who a person is; they must be marked in the protos.
PERSONAL = {"name", "address", "subject", "description", "text", "comment", "note", "reason"}
AUDIT_REFERENCES = {("CustomerForgotten", "reason")}
"""Why a customer was forgotten is an audit reference (a ticket), kept readable after the forget;
sealing it with the key the forget deletes would erase the record of the forget itself."""


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    if get_origin(hint) in (Union, types.UnionType):
        (inner,) = [a for a in get_args(hint) if a is not type(None)]
        return st.none() | strategy_for(inner)
    if get_origin(hint) is tuple:
        return st.lists(strategy_for(get_args(hint)[0]), max_size=3).map(tuple)
    if dataclasses.is_dataclass(hint):
        return instance_of(hint)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    if hint is datetime:
        return st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(min_value=0, max_value=2**31 - 1)
    if hint is float:
        return st.floats(min_value=-1.0, max_value=1.0)
    if hint is str:
        return st.text(max_size=30)
    raise AssertionError(f"no strategy for {hint}")


def instance_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.builds(cls, **fields)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_every_event_has_a_message_with_the_same_fields(cls: type[Any]) -> None:
    message_fields = set(event_message_class(cls.TYPE).DESCRIPTOR.fields_by_name)
    assert {f.name for f in dataclasses.fields(cls)} == message_fields


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda cls: cls.__name__)
def test_personal_fields_are_marked_in_the_protos(cls: type[Any]) -> None:
    descriptor = event_message_class(cls.TYPE).DESCRIPTOR
    names = {f.name for f in dataclasses.fields(cls)}
    expected = {n for n in names & PERSONAL if (cls.__name__, n) not in AUDIT_REFERENCES}
    assert set(personal_fields(descriptor)) == expected


def test_contact_point_addresses_are_personal() -> None:
    from crm.v1 import customer_events_pb2

    assert personal_fields(customer_events_pb2.ContactPoint.DESCRIPTOR) == ["address"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EVENT_CLASSES).flatmap(instance_of))
def test_every_event_round_trips_through_its_message(event: Any) -> None:
    message = event_to_message(event.TYPE, event)
    assert from_message(message, type(event)) == event
    decoded = event_message_class(event.TYPE).FromString(message.SerializeToString())
    assert from_message(decoded, type(event)) == event


def test_a_message_written_before_a_defaulted_enum_existed_takes_the_default() -> None:
    from crm.v1 import common_pb2, feedback_events_pb2

    old = feedback_events_pb2.VoiceOfCustomerRecorded(
        feedback_id="fb-1", customer_id="c-1", channel=common_pb2.CHANNEL_SOCIAL, text="hi"
    )

    event = from_message(old, VoiceOfCustomerRecorded)

    assert (event.sentiment_label, event.sentiment_score, event.sentiment_analyzer) == (
        SentimentLabel.NEUTRAL,
        0.0,
        "",
    )


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (MAX_TIMESTAMP_SECONDS + 1, 0),  # after the year 9999
        (MIN_TIMESTAMP_SECONDS - 1, 0),  # before the year 1
        (2**62, 0),
        (0, -1),
        (0, 1_000_000_000),
    ],
)
def test_a_timestamp_outside_its_range_is_invalid_input_naming_the_field(
    seconds: int, nanos: int
) -> None:
    with pytest.raises(InvalidInput) as raised:
        instant(Timestamp(seconds=seconds, nanos=nanos), "started_at")
    assert raised.value.field == "started_at"


def test_the_edges_of_the_timestamp_range_are_instants() -> None:
    assert instant(Timestamp(seconds=MIN_TIMESTAMP_SECONDS)).year == 1
    assert instant(Timestamp(seconds=MAX_TIMESTAMP_SECONDS, nanos=999_999_999)).year == 9999


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-1, 0), (0, -1), (0, 1_000_000_000), (2**62, 0), (-(2**63), 0), (2**63 - 1, 0)],
)
def test_a_duration_out_of_range_is_refused_naming_its_field(seconds: int, nanos: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        duration(Duration(seconds=seconds, nanos=nanos), "min_age")
    assert refused.value.field == "min_age"


def test_a_duration_in_range_is_its_timedelta() -> None:
    assert duration(Duration(seconds=90, nanos=5_000), "x") == timedelta(seconds=90, microseconds=5)
