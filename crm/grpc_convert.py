"""Conversions every servicer shares: command context in, command result out, required fields."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.command_handling import CommandContext, CommandOutcome
from crm.errors import InvalidInput
from crm.identity import Attribution, attribute, current_principal
from crm.protocodec import enum_from_proto, instant
from crm.v1 import common_pb2
from crm.vocabulary import Actor, ActorKind

E = TypeVar("E", bound=Enum)
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
"""What every servicer method is handed (grpc.aio)."""


def command_context(request: Message) -> CommandContext:
    """The CommandContext of a request; a missing context, request id or time is refused.

    The actor comes from the caller's credential (crm.identity); the request's own actor may be
    left out, and one the caller may not speak for is refused. Only with authentication off is
    the request's actor taken as it is, and then it is required.
    """
    if not request.HasField("context"):
        raise InvalidInput("context", "is required (request_id, occurred_at)")
    context: common_pb2.CommandContext = getattr(request, "context")  # noqa: B009
    if not context.request_id:
        raise InvalidInput("context.request_id", "is required; it makes retries safe")
    principal = current_principal()
    if principal is None:
        attribution = Attribution(actor(context, "context.actor"))
    else:
        claimed = actor(context, "context.actor") if context.HasField("actor") else None
        attribution = attribute(principal, claimed)
    return CommandContext(
        request_id=context.request_id,
        actor=attribution.actor,
        via=attribution.via,
        teams=attribution.teams,
        occurred_at=required_instant(context, "occurred_at", "context.occurred_at"),
        correlation_id=context.correlation_id,
        causation_id=context.causation_id,
    )


def actor(holder: Message, field: str) -> Actor:
    """The Actor in `holder.<last part of field>`; kind and id are required."""
    name = field.rsplit(".", 1)[-1]
    if not holder.HasField(name):
        raise InvalidInput(field, "is required (kind and id)")
    message: common_pb2.Actor = getattr(holder, name)
    kind = enum_from_proto(
        ActorKind, message.kind, common_pb2.ActorKind.DESCRIPTOR, f"{field}.kind"
    )
    if not message.id:
        raise InvalidInput(f"{field}.id", "is required")
    return Actor(kind, message.id)


def required_instant(holder: Message, name: str, field: str) -> datetime:
    if not holder.HasField(name):
        raise InvalidInput(field, "is required")
    stamp: Timestamp = getattr(holder, name)
    return instant(stamp, field)


def optional_instant(holder: Message, name: str, field: str = "") -> datetime | None:
    return instant(getattr(holder, name), field or name) if holder.HasField(name) else None


def required_enum(domain_enum: type[E], number: int, descriptor: EnumDescriptor, field: str) -> E:
    return enum_from_proto(domain_enum, number, descriptor, field)


def optional_enum(
    domain_enum: type[E], number: int, descriptor: EnumDescriptor, field: str, default: E
) -> E:
    return default if number == 0 else enum_from_proto(domain_enum, number, descriptor, field)


def command_result(outcome: CommandOutcome) -> common_pb2.CommandResult:
    return common_pb2.CommandResult(
        aggregate_id=outcome.aggregate_id,
        stream=outcome.stream,
        revision=outcome.revision,
        global_position=outcome.global_position,
        event_ids=list(outcome.event_ids),
        duplicate_request=outcome.duplicate_request,
    )
