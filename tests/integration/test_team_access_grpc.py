"""Agents work the cases of their teams, through gRPC with real tokens carrying teams.

One case goes from nobody's (any agent may take it) to billing's (a technical agent is refused,
naming the team, and nothing is recorded), is transferred away by billing, and taken by technical.
Supervisors, and a bot acting for an agent, are not kept to teams; reads stay open to agents.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.identity import Role
from crm.settings import Settings
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    case_service_pb2_grpc,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    customer_service_pb2_grpc,
)
from services.bootstrap import System, build_system
from tests.grpc_client import stamp

NAME = "Mio Sasaki"
SUBJECT = "Charged twice in May"
_ids = itertools.count(1)


@dataclass
class Desk:
    system: System
    server: ServerThread
    case_id: str

    def cases(
        self, role: Role, subject: str, teams: tuple[str, ...] = (), acting_for: str = ""
    ) -> case_service_pb2_grpc.CaseServiceStub:
        token = self.server.access.token(role, subject, teams=teams, acting_for=acting_for)
        return case_service_pb2_grpc.CaseServiceStub(self.server.access.channel(fixed_token=token))

    def stream_length(self) -> int:
        return len(self.system.store.read_stream(f"case-{self.case_id}"))


def context() -> common_pb2.CommandContext:
    """A context naming no actor: the token says who calls."""
    return common_pb2.CommandContext(
        request_id=f"teams-{next(_ids)}",
        occurred_at=stamp(datetime.now(UTC) - timedelta(minutes=1)),
    )


BILLING_AGENT = (Role.AGENT, "agent-7", ("billing",))
TECHNICAL_AGENT = (Role.AGENT, "agent-9", ("technical", "vip"))


@pytest.fixture
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    system = build_system(Settings.defaults(data_dir=tmp_path_factory.mktemp("teams")))
    server = ServerThread(system)
    shop = server.access.channel(fixed_token=server.access.token(Role.SERVICE, "shop"))
    customer_id = (
        customer_service_pb2_grpc.CustomerServiceStub(shop)
        .RegisterCustomer(
            customer_service_pb2.RegisterCustomerRequest(
                context=context(), name=NAME, language="ja", segment=customer_events_pb2.SEGMENT_B2C
            )
        )
        .aggregate_id
    )
    case_id = (
        case_service_pb2_grpc.CaseServiceStub(shop)
        .OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=context(),
                customer_id=customer_id,
                channel=common_pb2.CHANNEL_PHONE,
                category=case_events_pb2.CATEGORY_BILLING_PAYMENT,
                subject=SUBJECT,
            )
        )
        .aggregate_id
    )
    shop.close()
    yield Desk(system, server, case_id)
    server.stop(1)
    system.close()


def assign(desk: Desk, agent_id: str, team: str) -> case_service_pb2.AssignCaseRequest:
    return case_service_pb2.AssignCaseRequest(
        context=context(), case_id=desk.case_id, agent_id=agent_id, team=team
    )


def note(desk: Desk) -> case_service_pb2.AddNoteRequest:
    return case_service_pb2.AddNoteRequest(
        context=context(), case_id=desk.case_id, note_id=f"note-{next(_ids)}", text="called back"
    )


def transfer(desk: Desk, to: str) -> case_service_pb2.TransferCaseRequest:
    return case_service_pb2.TransferCaseRequest(
        context=context(), case_id=desk.case_id, to_department=to, reason="not ours"
    )


def refused_for(desk: Desk, call: Callable[[Any], object], request: Any, team: str) -> None:
    """`call(request)` is PERMISSION_DENIED naming the case's team, and it recorded nothing."""
    request_id = request.context.request_id
    before = desk.stream_length()
    with pytest.raises(grpc.RpcError) as refused:
        call(request)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = refused.value.details() or ""
    assert f"case {desk.case_id} is worked by team {team}" in details
    assert NAME not in details and SUBJECT not in details
    assert desk.stream_length() == before
    assert desk.system.store.find_request(request_id) == []


def test_any_agent_takes_a_case_of_no_team_and_another_team_is_refused(desk: Desk) -> None:
    newcomer = desk.cases(Role.AGENT, "agent-5")  # no team at all
    newcomer.AddNote(note(desk))
    billing = desk.cases(*BILLING_AGENT)
    billing.AssignCase(assign(desk, "agent-7", "billing"))
    billing.AddNote(note(desk))

    technical = desk.cases(*TECHNICAL_AGENT)
    for request in (note(desk), assign(desk, "agent-9", "technical"), transfer(desk, "technical")):
        method = getattr(technical, type(request).__name__.removesuffix("Request"))
        refused_for(desk, method, request, "billing")
    refused_for(desk, newcomer.AddNote, note(desk), "billing")

    # Reading stays open to every agent: they read timelines and cases.
    case = technical.GetCase(case_service_pb2.GetCaseRequest(case_id=desk.case_id))
    assert (case.team, case.working_team, case.assignee) == ("billing", "billing", "agent-7")


def test_a_transfer_gives_the_case_away_and_the_new_team_takes_it(desk: Desk) -> None:
    billing = desk.cases(*BILLING_AGENT)
    technical = desk.cases(*TECHNICAL_AGENT)
    billing.AssignCase(assign(desk, "agent-7", "billing"))
    billing.TransferCase(transfer(desk, "technical"))
    case = technical.GetCase(case_service_pb2.GetCaseRequest(case_id=desk.case_id))
    assert (case.department, case.working_team, case.assignee) == ("technical", "", "")

    technical.AssignCase(assign(desk, "agent-9", "technical"))
    technical.AddNote(note(desk))
    refused_for(desk, billing.AddNote, note(desk), "technical")


def test_supervisors_admins_and_systems_acting_for_an_agent_are_not_kept_to_teams(
    desk: Desk,
) -> None:
    desk.cases(*BILLING_AGENT).AssignCase(assign(desk, "agent-7", "billing"))
    desk.cases(Role.SUPERVISOR, "sup-1", ("technical",)).AddNote(note(desk))
    desk.cases(Role.ADMIN, "root").AddNote(note(desk))
    # The bot's credential proves the bot, not agent-9's teams: the bot answers for that.
    bot = desk.cases(Role.BOT, "chatbot", acting_for="agent:agent-9")
    bot.TransferCase(transfer(desk, "technical"))
    case = desk.cases(Role.SUPERVISOR, "sup-1").GetCase(
        case_service_pb2.GetCaseRequest(case_id=desk.case_id)
    )
    assert (case.department, case.transfer_count) == ("technical", 1)
