"""`crm-audit as-of`: a case, a customer or a customer's timeline as it was at a past point.

The point is `--position N` (every event at or before global position N) or `--at INSTANT` (every
event recorded at or before it). On a terminal: the view's fields one a line, or the timeline's
entries as rows; piped (or `--json`): the reply as one JSON object, or one JSON object an entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from crm.v1 import audit_service_pb2, audit_service_pb2_grpc, timeline_service_pb2
from services.entrypoints.audit_output import message_json

COMMAND = "as-of"
USAGE = 2


def add_parser(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    instant: Callable[[str], Timestamp],
) -> None:
    """The `as-of` subcommand and its options."""
    as_of = commands.add_parser(
        COMMAND, help="a case, a customer or a timeline as it was at a past point"
    )
    subject = as_of.add_mutually_exclusive_group(required=True)
    subject.add_argument("--customer", help="a customer id: its profile, tier and merge state")
    subject.add_argument("--case", help="a case id: its case view")
    point = as_of.add_mutually_exclusive_group(required=True)
    point.add_argument(
        "--position", type=int, help="a global position: the events up to it, inclusive"
    )
    point.add_argument(
        "--at", type=instant, help="ISO 8601 (UTC if no offset): the events recorded up to it"
    )
    as_of.add_argument(
        "--timeline", action="store_true", help="with --customer: its timeline, not its profile"
    )
    as_of.add_argument(
        "--newest-first", action="store_true", help="the timeline newest first (else oldest)"
    )
    as_of.add_argument("--page-size", type=int, default=500, help="entries per call (<= 500)")


def run_as_of(
    stub: audit_service_pb2_grpc.AuditServiceStub,
    args: argparse.Namespace,
    out: TextIO,
    *,
    as_json: bool,
) -> int:
    """Ask for the view, write it to `out`; returns the exit status (errors raise RpcError)."""
    point = audit_service_pb2.AsOf()
    if args.at is not None:
        point.recorded_at.CopyFrom(args.at)
    else:
        point.global_position = args.position
    if args.timeline:
        if args.customer is None:
            sys.stderr.write("crm-audit as-of: --timeline needs --customer\n")
            return USAGE
        entries = _timeline(stub, args, point)
        for entry in entries:
            out.write(message_json(entry) if as_json else _entry_row(entry))
        return 0
    reply: audit_service_pb2.CaseAsOf | audit_service_pb2.CustomerAsOf
    view: Message
    if args.case is not None:
        request = audit_service_pb2.GetCaseAsOfRequest(case_id=args.case, as_of=point)
        reply = stub.GetCaseAsOf(request, timeout=args.timeout)
        title, view = f"case {args.case}", reply.case
    else:
        asked = audit_service_pb2.GetCustomerAsOfRequest(customer_id=args.customer, as_of=point)
        reply = stub.GetCustomerAsOf(asked, timeout=args.timeout)
        title, view = f"customer {args.customer}", reply.customer
    if as_json:
        out.write(message_json(reply))
    else:
        out.write(f"{title} as of {_point(point)} (its last event: {reply.last_position})\n")
        out.write(_fields(view))
    return 0


def _timeline(
    stub: audit_service_pb2_grpc.AuditServiceStub,
    args: argparse.Namespace,
    point: audit_service_pb2.AsOf,
) -> Iterator[timeline_service_pb2.TimelineEntry]:
    query = timeline_service_pb2.GetTimelineRequest(
        customer_id=args.customer,
        page_size=args.page_size,
        order=(
            timeline_service_pb2.ORDER_NEWEST_FIRST
            if args.newest_first
            else timeline_service_pb2.ORDER_OLDEST_FIRST
        ),
    )
    while True:
        request = audit_service_pb2.GetTimelineAsOfRequest(timeline=query, as_of=point)
        reply = stub.GetTimelineAsOf(request, timeout=args.timeout)
        yield from reply.page.entries
        if not reply.page.next_page_token:
            return
        query.page_token = reply.page.next_page_token


def _point(point: audit_service_pb2.AsOf) -> str:
    if point.WhichOneof("point") == "recorded_at":
        return f"recorded time {_when(point.recorded_at)}"
    return f"global position {point.global_position}"


def _when(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")


def _fields(view: Message) -> str:
    """The view's fields one a line, in the message's order; nested values as compact JSON."""
    plain: dict[str, Any] = MessageToDict(
        view, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    width = max((len(name) for name in plain), default=0)
    lines = []
    for name, value in plain.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {name:<{width}}  {shown}")
    return "\n".join(lines) + "\n"


def _entry_row(entry: timeline_service_pb2.TimelineEntry) -> str:
    kind = timeline_service_pb2.EntryKind.Name(entry.kind).removeprefix("ENTRY_KIND_").lower()
    return (
        f"{entry.global_position:>8}  {_when(entry.occurred_at)}  {kind:<10}"
        f"  {entry.customer_id:<12}  {entry.actor:<20}  {entry.summary}\n"
    )
