"""Turns domain event dataclasses into stored JSON payloads and back, by their versioned type names.

The JSON form is what the event store keeps and hashes: enums as their values, instants as ISO-8601,
nested value objects as objects, sets as sorted lists, dicts with string keys as objects. Type names
are explicit (`TYPE` on each class), never derived from class names, so renaming a class never
breaks stored history. A field added to an event later needs a default: payloads stored before it
existed decode with that default. A change a default cannot absorb gets a new versioned type name
and an upcaster (crm.upcasting): payloads stored under the old name are upcast on every read and
decode as the current class, while the stored name and bytes stay as the hash chain covers them.

Aggregate states (kept in snapshots) also hold fields declared as a union of several event classes;
`to_plain(value, hint)` follows the declared type and records which member such a field holds, as
`{"type": <TYPE>, "value": ...}`, so `from_plain` can rebuild it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import Any, Union, get_args, get_origin, get_type_hints

from crm.envelope import RecordedEvent
from crm.errors import IntegrityError, InvalidInput
from crm.upcasting import UpcastChains, Upcaster


class EventCodec:
    """A registry of event classes that encodes and decodes their payloads, upcasting old ones."""

    def __init__(
        self, event_types: Iterable[type[Any]], upcasters: Iterable[Upcaster] = ()
    ) -> None:
        self._by_type: dict[str, type[Any]] = {}
        for cls in event_types:
            name: str = cls.TYPE
            if name in self._by_type:
                raise ValueError(f"event type {name} registered twice")
            self._by_type[name] = cls
        self._upcasts = UpcastChains(upcasters, self._by_type)

    @property
    def type_names(self) -> list[str]:
        """The current type names: those events are written under now."""
        return sorted(self._by_type)

    @property
    def readable_type_names(self) -> list[str]:
        """Every type name a stored event may carry: the current ones and the upcast ones."""
        return sorted([*self._by_type, *self._upcasts.retired_names])

    def class_for(self, type_name: str) -> type[Any]:
        """The class of a current type name (a retired one is refused: its payload needs upcasting
        first, which `decode` does)."""
        try:
            return self._by_type[type_name]
        except KeyError:
            raise IntegrityError(f"unknown event type {type_name}") from None

    def current_type(self, type_name: str) -> str:
        """The current type name a stored one decodes as (itself, unless it was upcast)."""
        if type_name in self._by_type:
            return type_name
        target = self._upcasts.target(type_name)
        if target is None:
            raise IntegrityError(f"unknown event type {type_name}")
        return target

    def encode(self, event: Any) -> tuple[str, bytes]:
        """(type name, JSON bytes) of a registered event."""
        type_name: str = type(event).TYPE
        if self._by_type.get(type_name) is not type(event):
            raise InvalidInput("event", f"{type(event).__name__} is not a registered event")
        return type_name, json.dumps(to_plain(event), sort_keys=True).encode()

    def decode(self, type_name: str, data: bytes) -> Any:
        """The event object for stored JSON bytes, of its current class even if stored as an older
        version; IntegrityError for a type name neither registered nor upcast."""
        cls = self._by_type.get(type_name)
        if cls is not None:
            return from_plain(cls, json.loads(data))
        target = self.current_type(type_name)
        plain = json.loads(data)
        if not isinstance(plain, dict):
            raise IntegrityError(f"a {type_name} payload is not a JSON object")
        return from_plain(self._by_type[target], self._upcasts.upcast(type_name, plain))

    def decode_recorded(self, recorded: RecordedEvent) -> tuple[RecordedEvent, Any]:
        """A stored event as the current release would have recorded it, and its domain event.

        An event of a current type comes back as it is. One stored as an older version comes back
        under its current type name with the current version's JSON, its ids, metadata and
        hashes unchanged (they stay those of the stored bytes): what a Kafka consumer rebuilds
        from the relayed message, so that views fed in-process and from Kafka agree, and a
        projection sees one type name per class whichever version was stored.
        """
        event = self.decode(recorded.type, recorded.data)
        if recorded.type in self._by_type:
            return recorded, event
        type_name, data = self.encode(event)
        return replace(recorded, type=type_name, data=data), event


Convert = Callable[[Any], Any]


def to_plain(value: Any, hint: Any = None) -> Any:
    """A JSON-ready form of a dataclass, enum, instant, tuple, list, set, dict or scalar.

    Without `hint` the value's own shape decides (the form events and command digests have always
    had); with the declared type as `hint`, a field declared as a union of several classes records
    which one it holds, so that `from_plain(hint, ...)` rebuilds it. Sets become sorted lists, so
    equal sets encode to equal bytes; dict keys must become strings, as JSON object keys are.
    """
    if hint is not None:
        return _hint_encoder(hint)(value)
    cls = type(value)
    if cls in _SCALARS:
        return value
    encode = _ENCODERS.get(cls)
    if encode is None:
        encode = _ENCODERS[cls] = _class_encoder(cls)
    return encode(value)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_ENCODERS: dict[type, Convert] = {}
"""How to make values of each class plain, worked out once per class: encoding a view or an event
must not ask which kind of value it holds, field by field, every time (a rebuild of the views
spent most of its time there)."""


def _class_encoder(cls: type) -> Convert:
    if dataclasses.is_dataclass(cls):
        names = tuple(f.name for f in dataclasses.fields(cls))
        return lambda value: {name: to_plain(getattr(value, name)) for name in names}
    if issubclass(cls, Enum):
        return _enum_value
    if issubclass(cls, datetime):
        return _isoformat
    if issubclass(cls, tuple | list):
        return lambda value: [to_plain(v) for v in value]
    if issubclass(cls, set | frozenset):
        return lambda value: _sorted([to_plain(v) for v in value])
    if issubclass(cls, dict):
        return lambda value: {_key(k): to_plain(v) for k, v in value.items()}
    return _unchanged


@functools.cache
def _hint_encoder(hint: Any) -> Convert:
    """How to write values declared as `hint`, worked out once per type (see `_converter`)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        members = _members(hint)
        if len(members) == 1:
            encode_inner = _hint_encoder(members[0])
            return lambda value: None if value is None else encode_inner(value)
        encoders = {cls: (_type_name(cls), _hint_encoder(cls)) for cls in members}

        def encode_member(value: Any) -> Any:
            if value is None:
                return None
            name, encode = encoders[type(value)]
            return {"type": name, "value": encode(value)}

        return encode_member
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            encode_item = _hint_encoder(args[0])
            return lambda value: [encode_item(v) for v in value]
        encode_each = [_hint_encoder(a) for a in args]  # tuple[X, Y]: one encoder a place
        return lambda value: [e(v) for e, v in zip(encode_each, value, strict=True)]
    if origin is list:
        encode_entry = _hint_encoder(get_args(hint)[0])
        return lambda value: [encode_entry(v) for v in value]
    if origin in (frozenset, set):
        encode_member_of_set = _hint_encoder(get_args(hint)[0])
        return lambda value: _sorted([encode_member_of_set(v) for v in value])
    if origin is dict:
        encode_value = _hint_encoder(get_args(hint)[1])
        return lambda value: {_key(k): encode_value(v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = get_type_hints(hint)
        fields = [(f.name, _hint_encoder(hints[f.name])) for f in dataclasses.fields(hint)]
        return lambda value: {name: encode(getattr(value, name)) for name, encode in fields}
    return to_plain  # enums, instants and scalars need no declared type


def _enum_value(value: Enum) -> Any:
    return value.value


def _isoformat(value: datetime) -> str:
    return value.isoformat()


def _sorted(plain: list[Any]) -> list[Any]:
    """Set members in one order whatever the hash seed, so equal sets store equal bytes."""
    try:
        return sorted(plain)
    except TypeError:  # mixed or unordered kinds (None, objects): order by their JSON instead
        return sorted(plain, key=_canonical)


def _canonical(plain: Any) -> str:
    return json.dumps(plain, sort_keys=True)


def _key(key: Any) -> str:
    plain = to_plain(key)
    if not isinstance(plain, str):
        raise InvalidInput("key", f"{key!r} cannot be a JSON object key; use a string or enum")
    return plain


def from_plain(hint: Any, raw: Any) -> Any:
    """Rebuild a value of type `hint` from its JSON-ready form."""
    return _converter(hint)(raw)


@functools.cache
def _converter(hint: Any) -> Convert:
    """How to rebuild values of one type, worked out once per type: decoding a long stream must
    not resolve type hints again for every event (that reflection dominated loading)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        members = _members(hint)
        if len(members) == 1:
            convert_inner = _converter(members[0])
            return lambda raw: None if raw is None else convert_inner(raw)
        converters = {_type_name(cls): _converter(cls) for cls in members}

        def convert_member(raw: Any) -> Any:
            if raw is None:
                return None
            try:
                convert = converters[raw["type"]]
            except (KeyError, TypeError):
                raise IntegrityError(f"no member of {hint} is named in {raw!r:.80}") from None
            return convert(raw["value"])

        return convert_member
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]
            convert_item = _converter(args[0])
            return lambda raw: tuple(convert_item(r) for r in raw)
        convert_each = [_converter(a) for a in args]  # tuple[X, Y]: one converter a place
        return lambda raw: tuple(c(r) for c, r in zip(convert_each, raw, strict=True))
    if origin in (list, set, frozenset):
        convert_entry = _converter(get_args(hint)[0])
        return lambda raw: origin(convert_entry(r) for r in raw)
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        convert_key, convert_value = _converter(key_hint), _converter(value_hint)
        return lambda raw: {convert_key(k): convert_value(v) for k, v in raw.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_converter(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_converter(hint)
    if hint is datetime:
        return datetime.fromisoformat
    return _unchanged


def _enum_converter(cls: type[Enum]) -> Convert:
    """A member by its value through a dict (calling the class costs several times more); a value
    that names no member raises what the class raises."""
    members = {member.value: member for member in cls}

    def convert(raw: Any) -> Any:
        try:
            return members[raw]
        except (KeyError, TypeError):  # no such value, or not even hashable
            return cls(raw)

    return convert


def _dataclass_converter(cls: type[Any]) -> Convert:
    hints = get_type_hints(cls)
    plan = [
        (
            f.name,
            _converter(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    ]

    def convert(raw: Any) -> Any:
        kwargs = {}
        for name, convert_field, required in plan:
            if name in raw:
                kwargs[name] = convert_field(raw[name])
            elif required:
                raise IntegrityError(f"{cls.__name__} payload lacks the field {name}")
            # else: a field added after the payload was stored takes its default
        return cls(**kwargs)

    return convert


def _members(union: Any) -> list[Any]:
    return [a for a in get_args(union) if a is not type(None)]


def _type_name(cls: Any) -> str:
    """The stored name of a union member: its explicit versioned TYPE, never its class name."""
    name = getattr(cls, "TYPE", None)
    if not isinstance(name, str):
        raise TypeError(f"{cls!r} in a union needs a TYPE name to be stored")
    return name


def _unchanged(raw: Any) -> Any:
    return raw


__all__ = ["EventCodec", "from_plain", "to_plain"]
