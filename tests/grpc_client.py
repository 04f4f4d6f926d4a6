"""A small typed client over the five services, for integration and end-to-end tests."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from bench.credentials import ClientAccess
from crm.v1 import (
    audit_service_pb2_grpc,
    case_events_pb2,
    case_service_pb2,
    case_service_pb2_grpc,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    customer_service_pb2_grpc,
    feedback_service_pb2_grpc,
    timeline_service_pb2,
    timeline_service_pb2_grpc,
)

T = TypeVar("T")
_counter = itertools.count(1)


def stamp(instant: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(instant)
    return result


class Client:
    """Stubs plus a context maker: every call gets a fresh request id unless one is given."""

    def __init__(
        self, access: ClientAccess, prefix: str = "req", history: timedelta = timedelta(hours=2)
    ) -> None:
        # Each call is authenticated as the actor its context names (bench.credentials).
        self.channel = access.channel()
        self.customers = customer_service_pb2_grpc.CustomerServiceStub(self.channel)
        self.cases = case_service_pb2_grpc.CaseServiceStub(self.channel)
        self.feedback = feedback_service_pb2_grpc.FeedbackServiceStub(self.channel)
        self.timeline = timeline_service_pb2_grpc.TimelineServiceStub(self.channel)
        self.audit = audit_service_pb2_grpc.AuditServiceStub(self.channel)
        self._prefix = prefix
        # Commands are dated from `history` ago, a minute apart, so they never lie in the future.
        self.clock = datetime.now(UTC) - history

    def context(
        self,
        request_id: str = "",
        actor_id: str = "agent-1",
        kind: common_pb2.ActorKind.ValueType = common_pb2.ACTOR_KIND_AGENT,
    ) -> common_pb2.CommandContext:
        """A command context whose time moves a minute forward on every call."""
        self.clock += timedelta(minutes=1)
        return common_pb2.CommandContext(
            request_id=request_id or f"{self._prefix}-{next(_counter)}",
            occurred_at=stamp(self.clock),
            actor=common_pb2.Actor(kind=kind, id=actor_id),
        )

    def supervisor_context(self, request_id: str = "") -> common_pb2.CommandContext:
        """A context for what only supervisors may do: merges, approvals, de-escalation."""
        return self.context(request_id, "supervisor-1", common_pb2.ACTOR_KIND_SUPERVISOR)

    def customer_with_a_case(self, name: str) -> str:
        """Register a customer and open one case for them; the case id (history to audit)."""
        customer = self.customers.RegisterCustomer(
            customer_service_pb2.RegisterCustomerRequest(
                context=self.context(),
                name=name,
                language="ja",
                segment=customer_events_pb2.SEGMENT_B2C,
            )
        ).aggregate_id
        return self.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=self.context(),
                customer_id=customer,
                channel=common_pb2.CHANNEL_EMAIL,
                category=case_events_pb2.CATEGORY_RETURNS_CANCELLATION,
                priority=common_pb2.PRIORITY_NORMAL,
                subject="Return",
            )
        ).aggregate_id

    def whole_timeline(
        self, customer_id: str, kinds: tuple[timeline_service_pb2.EntryKind.ValueType, ...] = ()
    ) -> list[timeline_service_pb2.TimelineEntry]:
        """Every entry (of the given kinds, or all), oldest first, following page tokens."""
        entries: list[timeline_service_pb2.TimelineEntry] = []
        token = ""
        while True:
            page = self.timeline.GetTimeline(
                timeline_service_pb2.GetTimelineRequest(
                    customer_id=customer_id,
                    order=timeline_service_pb2.ORDER_OLDEST_FIRST,
                    page_size=100,
                    page_token=token,
                    kinds=kinds,
                )
            )
            entries.extend(page.entries)
            token = page.next_page_token
            if not token:
                return entries

    def close(self) -> None:
        self.channel.close()


def poll(check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
