"""Converts between domain dataclasses and their protobuf messages, field by field, by name.

Domain events and their messages in protos/crm/v1/*_events.proto share field names, so one generic
converter serves them all: enums map `Channel.PHONE` <-> `CHANNEL_PHONE`, instants map to
`google.protobuf.Timestamp`, tuples of value objects to repeated messages, `None` to an absent
optional field. It also reads the `personal_data` field option the schemas carry. An enum left
unspecified by a message written before the field existed takes the dataclass field's default.
"""

from __future__ import annotations

import dataclasses
import types
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar, Union, cast, get_args, get_origin, get_type_hints

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.envelope import RecordedEvent
from crm.errors import IntegrityError, InvalidInput
from crm.v1 import (
    case_events_pb2,
    common_pb2,
    customer_events_pb2,
    feedback_events_pb2,
    options_pb2,
)

E = TypeVar("E", bound=Enum)

# Imported for their side effect: registering the event messages in the default pool.
_EVENT_MODULES = (case_events_pb2, customer_events_pb2, feedback_events_pb2)


def _prefix(enum_descriptor: EnumDescriptor) -> str:
    """CHANNEL_ for Channel: the part every value name of a proto enum starts with."""
    unspecified = enum_descriptor.values_by_number[0].name
    return unspecified.removesuffix("UNSPECIFIED")


def enum_to_proto(value: Enum, enum_descriptor: EnumDescriptor) -> int:
    name = _prefix(enum_descriptor) + str(value.value).upper()
    return int(enum_descriptor.values_by_name[name].number)


def enum_from_proto(
    domain_enum: type[E], number: int, enum_descriptor: EnumDescriptor, field: str
) -> E:
    """The domain enum member for a proto enum number; unspecified or unknown is an input error."""
    value = enum_descriptor.values_by_number.get(number)
    if value is None or number == 0:
        allowed = ", ".join(v.name for v in enum_descriptor.values if v.number != 0)
        raise InvalidInput(field, f"is required; one of {allowed}")
    return domain_enum(value.name.removeprefix(_prefix(enum_descriptor)).lower())


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


# What google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def instant(stamp: Timestamp, field: str = "timestamp") -> datetime:
    """The instant a Timestamp names; InvalidInput naming `field` for one outside its range."""
    if not MIN_TIMESTAMP_SECONDS <= stamp.seconds <= MAX_TIMESTAMP_SECONDS:
        raise InvalidInput(field, "must lie between years 1 and 9999 (google.protobuf.Timestamp)")
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidInput(field, "nanos must be between 0 and 999,999,999")
    return stamp.ToDatetime(tzinfo=UTC)


def duration(value: Duration, field: str = "duration") -> timedelta:
    """The span a Duration names, never negative; InvalidInput naming `field` otherwise.

    A span longer than any instant can be away from another (beyond years 1 to 9999) is refused
    too, so subtracting it from a clock reading can never overflow.
    """
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidInput(field, "must not be negative")
    if value.nanos >= 1_000_000_000:
        raise InvalidInput(field, "nanos must be between 0 and 999,999,999")
    if value.seconds > MAX_TIMESTAMP_SECONDS - MIN_TIMESTAMP_SECONDS:
        raise InvalidInput(field, "must be shorter than 10,000 years")
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def to_message(obj: Any, message: Message) -> Message:
    """Fill `message` from the dataclass `obj`, field by field; returns the message."""
    fields = message.DESCRIPTOR.fields_by_name
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        descriptor = fields.get(field.name)
        if descriptor is None:
            raise IntegrityError(f"{message.DESCRIPTOR.full_name} has no field {field.name}")
        if value is None:
            message.ClearField(field.name)
        elif isinstance(value, Enum):
            enum_type = cast(EnumDescriptor, descriptor.enum_type)
            setattr(message, field.name, enum_to_proto(value, enum_type))
        elif isinstance(value, datetime):
            getattr(message, field.name).CopyFrom(timestamp(value))
        elif dataclasses.is_dataclass(value):
            to_message(value, getattr(message, field.name))
        elif isinstance(value, tuple | frozenset):
            repeated = getattr(message, field.name)
            items = sorted(value, key=_sort_key) if isinstance(value, frozenset) else value
            for item in items:
                if dataclasses.is_dataclass(item):
                    to_message(item, repeated.add())
                elif isinstance(item, datetime):
                    repeated.add().CopyFrom(timestamp(item))
                elif isinstance(item, Enum):
                    repeated.append(enum_to_proto(item, cast(EnumDescriptor, descriptor.enum_type)))
                else:
                    repeated.append(item)
        else:
            setattr(message, field.name, value)
    return message


T = TypeVar("T")


def _sort_key(item: Any) -> Any:
    """Sets go out in a stable order; enums sort by their value."""
    return item.value if isinstance(item, Enum) else item


def from_message(message: Message, cls: type[T]) -> T:
    """Build the dataclass `cls` from `message`, field by field."""
    hints = get_type_hints(cls)
    fields = message.DESCRIPTOR.fields_by_name
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        descriptor = fields[field.name]
        if field.default is not dataclasses.MISSING and _unspecified_enum(message, descriptor):
            continue  # written before the field existed: the dataclass default applies
        kwargs[field.name] = _read(message, descriptor, hints[field.name])
    return cls(**kwargs)


def _unspecified_enum(message: Message, descriptor: Any) -> bool:
    return descriptor.enum_type is not None and getattr(message, descriptor.name) == 0


def _read(message: Message, descriptor: Any, hint: Any) -> Any:
    name = descriptor.name
    if get_origin(hint) in (Union, types.UnionType):
        if descriptor.has_presence and not message.HasField(name):
            return None
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    value = getattr(message, name)
    if get_origin(hint) is tuple:
        inner = get_args(hint)[0]
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            return tuple(from_message(item, inner) for item in value)
        if isinstance(inner, type) and issubclass(inner, Enum):
            return tuple(enum_from_proto(inner, n, descriptor.enum_type, name) for n in value)
        return tuple(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        enum_type: EnumDescriptor = descriptor.enum_type
        return enum_from_proto(hint, value, enum_type, name)
    if hint is datetime:
        return instant(value, name)
    return value


def event_message_class(type_name: str) -> type[Message]:
    """The proto message class of an event type: crm.case.CaseOpened.v1 -> crm.v1.CaseOpened."""
    short_name = type_name.split(".")[-2]
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(f"crm.v1.{short_name}")
    except KeyError:
        raise IntegrityError(f"no proto message for event type {type_name}") from None
    return message_factory.GetMessageClass(descriptor)


def event_to_message(type_name: str, event: Any) -> Message:
    return to_message(event, event_message_class(type_name)())


def personal_fields(descriptor: Any) -> list[str]:
    """Names of the fields of a message marked `(crm.v1.personal_data) = true`."""
    return [
        field.name
        for field in descriptor.fields
        if field.GetOptions().Extensions[options_pb2.personal_data]
    ]


def actor_to_proto(kind: Enum, actor_id: str) -> common_pb2.Actor:
    number = enum_to_proto(kind, common_pb2.ActorKind.DESCRIPTOR)
    return common_pb2.Actor(kind=common_pb2.ActorKind.ValueType(number), id=actor_id)


def envelope(recorded: RecordedEvent, event: Any) -> common_pb2.EventEnvelope:
    """The wire form of a stored event with its decoded payload packed in an Any."""
    payload = AnyMessage()
    payload.Pack(event_to_message(recorded.type, event))
    meta = recorded.metadata
    wire = common_pb2.EventEnvelope(
        event_id=recorded.event_id,
        stream=recorded.stream,
        revision=recorded.revision,
        global_position=recorded.global_position,
        type=recorded.type,
        occurred_at=timestamp(meta.occurred_at),
        recorded_at=timestamp(recorded.recorded_at),
        customer_id=meta.customer_id,
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
        request_id=meta.request_id,
        actor=actor_to_proto(meta.actor.kind, meta.actor.id),
        previous_hash=recorded.previous_hash,
        content_hash=recorded.content_hash,
        payload=payload,
    )
    if meta.via is not None:
        wire.via.CopyFrom(actor_to_proto(meta.via.kind, meta.via.id))
    return wire
