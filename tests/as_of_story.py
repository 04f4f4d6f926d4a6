"""A story for the as-of tests: a case transferred, a customer whose tier changes, merged and
released, and what the live APIs answered at each moment, by the global position it was taken at
(`told`: each test module makes it its module-scoped fixture, on SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from crm.identity import Role
from crm.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    case_service_pb2,
    customer_events_pb2,
    customer_service_pb2,
    timeline_service_pb2,
)
from services.bootstrap import System
from tests.grpc_client import Client, poll
from tests.integration.test_audit_history import _open_case, _register, _serve
from tests.raw_stores import backend_for

M = TypeVar("M", bound=Message)


@dataclass
class Story:
    """A case transferred, a customer whose tier changed, merged and released, and what the
    live APIs answered at each of those moments (by the global position they were taken at)."""

    system: System
    client: Client
    target: str
    auditor_channel: grpc.Channel
    agent_channel: grpc.Channel
    survivor: str
    duplicate: str
    case_id: str
    before_transfer: int = 0
    cases: dict[int, timeline_service_pb2.CaseView] = field(default_factory=dict)
    customers: dict[int, customer_service_pb2.Customer] = field(default_factory=dict)
    duplicates: dict[int, customer_service_pb2.Customer] = field(default_factory=dict)
    timelines: dict[int, list[timeline_service_pb2.TimelineEntry]] = field(default_factory=dict)


def _settled(system: System, read: Callable[[], M]) -> tuple[int, M]:
    """What `read` answers once the views hold every event, and the position that was at: read
    again if anything (an SLA timer, say) was appended meanwhile."""
    while True:
        position = system.store.last_position()
        poll(functools.partial(_projected, system, position))
        answer = read()
        if system.store.last_position() == position:
            return position, answer


def _projected(system: System, position: int) -> bool:
    views = system.view_store
    return all(views.checkpoint(name) >= position for name in ("timeline", "case_views"))


def _capture(story: Story) -> int:
    """The live case view, customers and timeline at this moment, by its position."""
    client = story.client

    def read() -> timeline_service_pb2.CaseView:
        story.customers[0] = client.customers.GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id=story.survivor)
        )
        story.duplicates[0] = client.customers.GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id=story.duplicate)
        )
        story.timelines[0] = client.whole_timeline(story.survivor)
        return client.timeline.GetCaseView(
            timeline_service_pb2.GetCaseViewRequest(case_id=story.case_id)
        )

    position, view = _settled(story.system, read)
    story.cases[position] = view
    story.customers[position] = story.customers.pop(0)
    story.duplicates[position] = story.duplicates.pop(0)
    story.timelines[position] = story.timelines.pop(0)
    return position


def told(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    """The story told on the stores `request.param` names; the servers stop after it."""
    system, server, client = _serve(backend_for(request, tmp_path_factory.mktemp("as-of")))
    survivor = _register(client, "Aiko Tanaka")
    duplicate = _register(client, "A. Tanaka")
    case_id = _open_case(client, survivor)
    told = Story(
        system,
        client,
        server.target,
        server.access.channel(fixed_token=server.access.token(Role.AUDITOR, "auditor-1")),
        server.access.channel(fixed_token=server.access.token(Role.AGENT, "agent-1")),
        survivor,
        duplicate,
        case_id,
    )
    client.cases.AssignCase(
        case_service_pb2.AssignCaseRequest(
            context=client.context(), case_id=case_id, agent_id="agent-7", team="tier1"
        )
    )
    told.before_transfer = _capture(told)
    client.cases.TransferCase(
        case_service_pb2.TransferCaseRequest(
            context=client.supervisor_context(),
            case_id=case_id,
            to_department="technical",
            reason="modem",
        )
    )
    _capture(told)
    client.customers.ChangeTier(
        customer_service_pb2.ChangeTierRequest(
            context=client.supervisor_context(),
            customer_id=survivor,
            tier=customer_events_pb2.TIER_VIP,
            reason="loyal for years",
        )
    )
    _open_case(client, duplicate)  # on the survivor's timeline while merged
    _capture(told)
    client.customers.MergeCustomers(
        customer_service_pb2.MergeCustomersRequest(
            context=client.supervisor_context(),
            duplicate_customer_id=duplicate,
            survivor_customer_id=survivor,
            reason="same person",
        )
    )
    _capture(told)
    client.customers.UndoMerge(
        customer_service_pb2.UndoMergeRequest(
            context=client.supervisor_context(),
            duplicate_customer_id=duplicate,
            reason="two people after all",
        )
    )
    _capture(told)
    yield told
    client.close()
    server.stop(1)
    system.close()


def story_audit(story: Story) -> audit_service_pb2_grpc.AuditServiceStub:
    """AuditService as an auditor calls it."""
    return audit_service_pb2_grpc.AuditServiceStub(story.auditor_channel)


def at(position: int) -> audit_service_pb2.AsOf:
    return audit_service_pb2.AsOf(global_position=position)
