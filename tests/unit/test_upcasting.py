"""Upcasters registered in the codec: chains from any stored version to the current class, checked
when the codec is built; stored type names and bytes untouched; Kafka carries current versions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from crm.envelope import GENESIS_HASH, EventMetadata, NewEvent, RecordedEvent, chain_hash
from crm.errors import IntegrityError, InvalidInput
from crm.eventcodec import EventCodec
from crm.upcasting import Upcaster
from crm.vocabulary import Actor, ActorKind, Channel, Direction
from crm.wire import from_kafka, to_kafka
from services.audit.grpc_api import history_event
from services.audit.history import Subject
from services.audit.query import HistoryQuery
from services.bootstrap import CODEC
from services.case.events import ContactOutcome, ContactRecorded
from tests.retired_contact import CURRENT, OLD_RELEASE, ContactRecordedV0


@dataclass(frozen=True)
class Moved:
    """Version 3: the address as parts, and a country that version 1 did not know."""

    TYPE: ClassVar[str] = "test.Moved.v3"
    customer_id: str
    street: str
    city: str
    country: str


V1, V2, V3 = "test.Moved.v1", "test.Moved.v2", Moved.TYPE
CALLS: list[str] = []


def v1_to_v2(plain: dict[str, Any]) -> dict[str, Any]:
    """v1 held "street, city" in `address`; v2 splits it."""
    CALLS.append(V1)
    street, city = plain.pop("address").split(", ")
    return {**plain, "street": street, "city": city}


def v2_to_v3(plain: dict[str, Any]) -> dict[str, Any]:
    """v3 adds the country; everything before it was recorded in Japan."""
    CALLS.append(V2)
    return {**plain, "country": "JP"}


CHAIN = (Upcaster(V1, V2, v1_to_v2), Upcaster(V2, V3, v2_to_v3))
MOVED = EventCodec([Moved], CHAIN)
EXPECTED = Moved("c-1", "1-2 Chuo", "Sendai", "JP")


def test_every_stored_version_decodes_as_the_current_class_through_the_chain() -> None:
    CALLS.clear()
    v1 = MOVED.decode(V1, b'{"customer_id": "c-1", "address": "1-2 Chuo, Sendai"}')
    assert CALLS == [V1, V2]
    CALLS.clear()
    v2 = MOVED.decode(V2, b'{"customer_id": "c-1", "street": "1-2 Chuo", "city": "Sendai"}')
    assert CALLS == [V2]
    assert v1 == v2 == EXPECTED


def test_the_current_type_decodes_as_before_without_any_upcaster() -> None:
    CALLS.clear()
    _, data = MOVED.encode(EXPECTED)
    assert MOVED.decode(V3, data) == EXPECTED
    assert CALLS == []


def test_the_codec_names_current_and_retired_types_apart() -> None:
    assert MOVED.type_names == [V3]
    assert MOVED.readable_type_names == [V1, V2, V3]
    assert [MOVED.current_type(name) for name in (V1, V2, V3)] == [V3, V3, V3]
    assert MOVED.encode(EXPECTED)[0] == V3  # new events are always written as the current one
    with pytest.raises(IntegrityError, match=re.escape("unknown event type test.Moved.v1")):
        MOVED.class_for(V1)  # a retired payload is not a current one: `decode` upcasts it


@pytest.mark.parametrize(
    ("upcasters", "refusal"),
    [
        ((Upcaster(V1, V2, v1_to_v2),), "end at test.Moved.v2, which is neither"),
        ((Upcaster(V1, "test.Moved.v9", v1_to_v2),), "end at test.Moved.v9"),
        ((*CHAIN, Upcaster(V3, V1, v1_to_v2)), "test.Moved.v3 is a current event type"),
        ((*CHAIN, Upcaster(V1, V3, v1_to_v2)), "two upcasters from test.Moved.v1"),
        ((Upcaster(V1, V2, v1_to_v2), Upcaster(V2, V1, v2_to_v3)), "loop back to test.Moved.v1"),
    ],
    ids=["dead end", "unknown target", "from a current type", "twice", "loop"],
)
def test_a_chain_that_does_not_reach_a_registered_class_is_refused_when_built(
    upcasters: tuple[Upcaster, ...], refusal: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(refusal)):
        EventCodec([Moved], upcasters)


def test_an_unknown_stored_type_stays_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match=re.escape("unknown event type test.Moved.v0")):
        MOVED.decode("test.Moved.v0", b"{}")
    with pytest.raises(IntegrityError, match=re.escape("unknown event type test.Moved.v0")):
        MOVED.current_type("test.Moved.v0")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"customer_id": "c-1"}', "a test.Moved.v1 payload does not upcast to test.Moved.v2"),
        (b'{"customer_id": "c-1", "address": "no comma"}', "does not upcast"),
        (b'["not", "an", "object"]', "a test.Moved.v1 payload is not a JSON object"),
    ],
)
def test_a_payload_an_upcaster_cannot_read_is_an_integrity_error(data: bytes, problem: str) -> None:
    with pytest.raises(IntegrityError, match=re.escape(problem)):
        MOVED.decode(V1, data)


def test_an_upcaster_returning_no_object_is_an_integrity_error() -> None:
    def nothing(plain: dict[str, Any]) -> Any:
        return None

    codec = EventCodec([Moved], (Upcaster(V2, V3, nothing),))
    with pytest.raises(
        IntegrityError, match=re.escape("upcaster from test.Moved.v2 returned no JSON object")
    ):
        codec.decode(V2, b"{}")


AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONTACT = ContactRecorded(
    case_id="case-1",
    contact_id="call-1",
    channel=Channel.PHONE,
    direction=Direction.INBOUND,
    handler_kind=ActorKind.AGENT,
    handler_id="agent-7",
    outcome=ContactOutcome.ANSWERED,
    started_at=AT,
    talk_seconds=300,
    hold_seconds=20,
    after_work_seconds=60,
)
OLD_CONTACT = ContactRecordedV0(
    **{
        **{k: v for k, v in vars(CONTACT).items() if k not in ("handler_kind", "handler_id")},
        "handled_by": "agent:agent-7",
    }
)


def _stored_by_old_release() -> RecordedEvent:
    type_name, data = OLD_RELEASE.encode(OLD_CONTACT)
    metadata = EventMetadata("cust-1", AT, Actor(ActorKind.AGENT, "agent-7"), "corr", "", "req-1")
    new = NewEvent("ev-1", type_name, data, metadata)
    content_hash = chain_hash(GENESIS_HASH, "case-1", 0, new, AT)
    return RecordedEvent(
        "case-1", 0, 1, "ev-1", type_name, data, metadata, AT, GENESIS_HASH, content_hash
    )


def test_a_stored_old_version_reads_as_the_current_event_and_keeps_its_stored_form() -> None:
    stored = _stored_by_old_release()
    assert json.loads(stored.data)["handled_by"] == "agent:agent-7"
    with pytest.raises(
        IntegrityError, match=re.escape("unknown event type crm.case.ContactRecorded.v0")
    ):
        CODEC.decode(stored.type, stored.data)  # the product has no upcaster for this made-up v0
    current, event = CURRENT.decode_recorded(stored)
    assert event == CONTACT
    assert current == replace(stored, type=ContactRecorded.TYPE, data=CURRENT.encode(CONTACT)[1])
    assert (current.content_hash, current.previous_hash) == (stored.content_hash, GENESIS_HASH)
    recorded_now = replace(current)
    assert CURRENT.decode_recorded(recorded_now)[0] is recorded_now  # a current one: unchanged


def test_kafka_carries_the_current_version_of_an_upcast_event() -> None:
    current, event = CURRENT.decode_recorded(_stored_by_old_release())
    record = to_kafka(current, event)
    assert dict(record.headers)["event_type"] == ContactRecorded.TYPE.encode()
    received, decoded = from_kafka(record.value, CURRENT)
    assert decoded == CONTACT
    assert received == current  # what a consumer rebuilds is what in-process projections see
    assert from_kafka(record.value, CODEC)[1] == CONTACT  # consumers need no upcaster


def test_a_message_naming_another_type_than_its_payload_is_refused() -> None:
    stored = _stored_by_old_release()
    with pytest.raises(
        IntegrityError, match=re.escape("named crm.case.ContactRecorded.v0 but holds")
    ):
        to_kafka(stored, CURRENT.decode(stored.type, stored.data))


def test_the_audit_shows_the_stored_type_and_the_type_it_reads_as_now() -> None:
    stored = _stored_by_old_release()
    shown = history_event(stored, CURRENT)
    assert (shown.event_type, shown.current_event_type) == (
        ContactRecordedV0.TYPE,
        ContactRecorded.TYPE,
    )
    assert shown.description.startswith("Inbound phone contact handled by agent agent-7")
    assert shown.content_hash == stored.content_hash
    unknown = history_event(stored, CODEC)  # a release without the upcaster
    assert unknown.current_event_type == ""
    assert unknown.description.startswith("(not decodable: IntegrityError")
    current, _ = CURRENT.decode_recorded(stored)
    assert history_event(current, CURRENT).current_event_type == ContactRecorded.TYPE


def test_the_audit_filters_by_the_stored_type_retired_names_included() -> None:
    stored = _stored_by_old_release()
    current, _ = CURRENT.decode_recorded(stored)
    known = frozenset(CURRENT.readable_type_names)
    old_only = HistoryQuery(
        Subject("case", "case-1"), event_types=frozenset({stored.type}), known_types=known
    )
    assert old_only.matches(stored) and not old_only.matches(current)
    with pytest.raises(InvalidInput, match="event_types"):  # a name no release wrote
        HistoryQuery(
            Subject("case", "case-1"),
            event_types=frozenset({"crm.case.ContactRecorded.v7"}),
            known_types=known,
        )
