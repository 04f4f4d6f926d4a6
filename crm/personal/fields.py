"""Where the personal fields of each event's stored JSON are, read from the protos' options.

An event's JSON mirrors its proto message (same field names; nested value objects as objects,
repeated ones as lists), so the `(crm.v1.personal_data)` marks on the message say which strings
of the JSON are personal, however deeply nested.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from crm.protocodec import event_message_class, personal_fields

Plan = dict[str, "Plan | None"]
"""Field name -> None for a personal string, or the plan of a nested message holding some."""


@functools.cache
def plan_for(type_name: str) -> Plan:
    """The personal fields of one event type (empty: the type has none)."""
    return _plan(event_message_class(type_name).DESCRIPTOR)


def _plan(descriptor: Any) -> Plan:
    plan: Plan = {name: None for name in personal_fields(descriptor)}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.name not in plan:
            nested = _plan(field.message_type)
            if nested:
                plan[field.name] = nested
    return plan


def rewrite(plain: Any, plan: Plan, change: Callable[[str, str], str], path: str = "") -> None:
    """Replace, in place, every non-empty personal string of `plain` with change(path, value)."""
    if not isinstance(plain, dict):
        return
    for name, nested in plan.items():
        value = plain.get(name)
        where = f"{path}{name}"
        if nested is None:
            if isinstance(value, str) and value:
                plain[name] = change(where, value)
        else:
            for item in _items(value):
                rewrite(item, nested, change, where + ".")


def _items(value: Any) -> Iterator[Any]:
    if isinstance(value, list):
        yield from value
    elif value is not None:
        yield value
