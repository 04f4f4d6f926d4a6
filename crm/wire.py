"""How events travel on Kafka: topic per stream category, keyed by customer, protobuf envelopes.

Every topic is keyed by customer id, so all facts about one customer keep their order within one
partition, whichever topic they are on. Headers repeat the envelope's type, event id, global
position and correlation id so consumers can route or skip without decoding the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm.envelope import EventMetadata, RecordedEvent
from crm.errors import IntegrityError
from crm.eventcodec import EventCodec
from crm.protocodec import enum_from_proto, envelope, event_message_class, from_message, instant
from crm.v1 import common_pb2
from crm.vocabulary import Actor, ActorKind

CATEGORY_TOPICS = {
    "customer": "crm.customer.v1",
    "case": "crm.case.v1",
    "feedback": "crm.feedback.v1",
}


def topic_names(namespace: str = "") -> list[str]:
    """Every topic the relay publishes to; a namespace prefix keeps test runs apart."""
    return [namespace + topic for topic in CATEGORY_TOPICS.values()]


def topic_for(stream: str, namespace: str = "") -> str:
    category = stream.split("-", 1)[0]
    try:
        return namespace + CATEGORY_TOPICS[category]
    except KeyError:
        raise IntegrityError(f"no topic for stream {stream}") from None


@dataclass(frozen=True)
class KafkaRecord:
    """One event as a Kafka message."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def to_kafka(recorded: RecordedEvent, event: Any, namespace: str = "") -> KafkaRecord:
    """The Kafka message for a stored event and its decoded domain event.

    Messages carry current versions only: the relay hands an event stored as an older version
    over upcast (`EventCodec.decode_recorded`), so a message naming another type than its
    payload's would be a bug, refused here rather than sent.
    """
    if recorded.type != type(event).TYPE:
        raise IntegrityError(
            f"event {recorded.event_id} is named {recorded.type} but holds a {type(event).TYPE}"
        )
    meta = recorded.metadata
    return KafkaRecord(
        topic=topic_for(recorded.stream, namespace),
        key=meta.customer_id.encode(),
        value=envelope(recorded, event).SerializeToString(),
        headers=[
            ("event_type", recorded.type.encode()),
            ("event_id", recorded.event_id.encode()),
            ("global_position", str(recorded.global_position).encode()),
            ("correlation_id", meta.correlation_id.encode()),
        ],
    )


def from_kafka(value: bytes, codec: EventCodec) -> tuple[RecordedEvent, Any]:
    """The recorded event and domain event a Kafka message carries.

    The payload travels as protobuf; the JSON `data` is re-encoded from the decoded event, which
    the codec round-trip tests guarantee to be faithful. Messages name current types only (the
    relay upcasts older versions), so the result equals `EventCodec.decode_recorded` of the
    stored event: what in-process projections are fed.
    """
    wire = common_pb2.EventEnvelope.FromString(value)
    message = event_message_class(wire.type)()
    if not wire.payload.Unpack(message):
        raise IntegrityError(f"event {wire.event_id}: payload is not a {wire.type}")
    event = from_message(message, codec.class_for(wire.type))
    _, data = codec.encode(event)
    kind = enum_from_proto(ActorKind, wire.actor.kind, common_pb2.ActorKind.DESCRIPTOR, "actor")
    via = None
    if wire.HasField("via"):
        via_kind = enum_from_proto(ActorKind, wire.via.kind, common_pb2.ActorKind.DESCRIPTOR, "via")
        via = Actor(via_kind, wire.via.id)
    recorded = RecordedEvent(
        stream=wire.stream,
        revision=wire.revision,
        global_position=wire.global_position,
        event_id=wire.event_id,
        type=wire.type,
        data=data,
        metadata=EventMetadata(
            customer_id=wire.customer_id,
            occurred_at=instant(wire.occurred_at),
            actor=Actor(kind, wire.actor.id),
            correlation_id=wire.correlation_id,
            causation_id=wire.causation_id,
            request_id=wire.request_id,
            via=via,
        ),
        recorded_at=instant(wire.recorded_at),
        previous_hash=wire.previous_hash,
        content_hash=wire.content_hash,
    )
    return recorded, event
