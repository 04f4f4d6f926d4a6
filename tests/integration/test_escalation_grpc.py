"""Escalation, SLA timers, compensation and summaries driven through gRPC with a controlled clock.

The deadline process is not started as a thread here: the test moves the clock and asks it to
run once, so every timer fires exactly when the test says, without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
    timeline_service_pb2,
)
from services.bootstrap import System, build_system
from services.sla.process import DeadlineProcess
from tests.grpc_client import Client
from tests.support import FakeClock

R = case_events_pb2


@dataclass
class Running:
    system: System
    client: Client
    clock: FakeClock

    @property
    def deadlines(self) -> DeadlineProcess:
        assert self.system.deadlines is not None
        return self.system.deadlines

    def tick(self, **delta: float) -> None:
        """Move the clock, let the deadline process act, and wait for the views to catch up."""
        self.clock.now += timedelta(**delta)
        self.deadlines.run_once()
        self.settle()

    def settle(self) -> None:
        assert self.system.projector is not None
        position = self.system.store.last_position()
        assert self.system.projector.wait_until(position, timeout=10)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    clock = FakeClock(datetime.now(UTC))
    system = build_system(Settings.defaults(data_dir=tmp_path), clock=clock)
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system)
    # The agents of this file work in tier1, the team the SLA story assigns its case to.
    server.access.teams.update({"agent-1": ("tier1",), "agent-2": ("tier1",)})
    client = Client(server.access, prefix="esc", history=timedelta(minutes=10))
    yield Running(system, client, clock)
    client.close()
    server.stop(1)
    system.close()


def register(r: Running, tier: int = customer_events_pb2.TIER_STANDARD) -> str:
    reply = r.client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=r.client.context(),
            name="Rin Okada",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
            tier=tier,  # type: ignore[arg-type]
        )
    )
    return reply.aggregate_id


def open_case(r: Running, customer_id: str, category: int = R.CATEGORY_TECHNICAL_TROUBLE) -> str:
    reply = r.client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=r.client.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_PHONE,
            category=category,  # type: ignore[arg-type]
            priority=common_pb2.PRIORITY_HIGH,
            subject="Router keeps rebooting",
        )
    )
    return reply.aggregate_id


def escalated(r: Running, **fields: object) -> list[tuple[str, int]]:
    request = timeline_service_pb2.ListEscalatedCasesRequest(**fields)  # type: ignore[arg-type]
    reply = r.client.timeline.ListEscalatedCases(request)
    return [(view.case_id, view.escalation_level) for view in reply.cases]


def risk(r: Running, customer_id: str) -> timeline_service_pb2.CustomerRisk:
    request = timeline_service_pb2.GetCustomerRiskRequest(customer_id=customer_id)
    return r.client.timeline.GetCustomerRisk(request)


def test_sla_timers_escalate_and_the_lists_follow(running: Running) -> None:
    r = running
    customer = register(r)
    case_id = open_case(r, customer)
    r.client.cases.AssignCase(
        case_service_pb2.AssignCaseRequest(
            context=r.client.context(), case_id=case_id, agent_id="agent-2", team="tier1"
        )
    )
    r.tick()  # the SLA is applied: high priority, 1 h first response
    view = r.client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id=case_id))
    assert view.next_due_at.ToDatetime(tzinfo=UTC) > r.clock.now
    assert escalated(r) == []
    first = next(d for d in view.sla_dues if d.target == R.SLA_TARGET_FIRST_RESPONSE)
    # the facts are dated when the clock crossed each instant, not when the process noticed
    at_risk_since, due = (
        first.at_risk_at.ToDatetime(tzinfo=UTC),
        first.due_at.ToDatetime(tzinfo=UTC),
    )

    r.tick(minutes=48)  # 80 % of the first-response hour
    assert escalated(r) == [(case_id, 1)]
    assert escalated(r, team="tier1") == [(case_id, 1)]
    assert escalated(r, team="tier2") == []
    assert escalated(r, reason=R.ESCALATION_REASON_SLA_AT_RISK) == [(case_id, 1)]
    assert escalated(r, reason=R.ESCALATION_REASON_NEGATIVE_FEEDBACK) == []
    assert escalated(r, min_level=2) == []
    assert escalated(r, min_age=Duration(seconds=600)) == []

    r.tick(minutes=12)  # due
    assert escalated(r) == [(case_id, 2)]
    view = r.client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id=case_id))
    started = {a.reason: a.since.ToDatetime(tzinfo=UTC) for a in view.escalation_reasons}
    assert started == {
        R.ESCALATION_REASON_SLA_AT_RISK: at_risk_since,
        R.ESCALATION_REASON_SLA_BREACHED: due,
    }
    assert view.escalated_since.ToDatetime(tzinfo=UTC) == at_risk_since
    assert escalated(r, min_age=Duration(seconds=600)) == [(case_id, 2)]
    at_risk = risk(r, customer)
    assert at_risk.at_risk and [c.case_id for c in at_risk.escalated_cases] == [case_id]

    kinds = (timeline_service_pb2.ENTRY_KIND_SLA, timeline_service_pb2.ENTRY_KIND_ESCALATION)
    summaries = [e.summary for e in r.client.whole_timeline(customer, kinds)]
    assert summaries[1].startswith("SLA first response at risk")
    assert summaries[2] == "Escalation level 0 -> 1 (+sla at risk)"
    assert summaries[3].startswith("SLA first response breached")
    assert summaries[4] == "Escalation level 1 -> 2 (+sla breached)"

    r.client.cases.ResolveCase(
        case_service_pb2.ResolveCaseRequest(
            context=r.client.context(), case_id=case_id, resolution_code="firmware"
        )
    )
    r.tick()
    assert escalated(r) == []
    assert not risk(r, customer).at_risk


def test_urgency_order_explicit_requests_and_vip_complaints(running: Running) -> None:
    r = running
    vip = register(r, customer_events_pb2.TIER_VIP)
    other = register(r)
    complaint = open_case(r, vip, R.CATEGORY_COMPLAINT)
    watched = open_case(r, other)
    critical = open_case(r, other)
    r.client.cases.EscalateCase(
        case_service_pb2.EscalateCaseRequest(
            context=r.client.context(), case_id=watched, level=1, note="keep an eye"
        )
    )
    r.client.cases.EscalateCase(
        case_service_pb2.EscalateCaseRequest(
            context=r.client.context(), case_id=critical, level=3, note="press is asking"
        )
    )
    r.settle()
    assert escalated(r) == [(critical, 3), (complaint, 2), (watched, 1)]
    assert escalated(r, reason=R.ESCALATION_REASON_VIP_COMPLAINT) == [(complaint, 2)]

    with pytest.raises(grpc.RpcError) as refused:
        r.client.cases.EscalateCase(
            case_service_pb2.EscalateCaseRequest(
                context=r.client.context(), case_id=watched, level=4, note="x"
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    r.client.cases.DeEscalateCase(
        case_service_pb2.DeEscalateCaseRequest(
            context=r.client.supervisor_context(), case_id=watched, note="supervisor called back"
        )
    )
    r.settle()
    assert escalated(r) == [(critical, 3), (complaint, 2)]


def test_negative_feedback_puts_the_customer_at_risk(running: Running) -> None:
    r = running
    customer = register(r)
    case_id = open_case(r, customer)
    r.client.feedback.SubmitSurvey(
        feedback_service_pb2.SubmitSurveyRequest(
            context=r.client.context(),
            customer_id=customer,
            case_id=case_id,
            channel=common_pb2.CHANNEL_EMAIL,
            nps=3,
        )
    )
    r.tick()
    assert escalated(r) == [(case_id, 2)]
    assert risk(r, customer).latest_feedback_reason == R.ESCALATION_REASON_NEGATIVE_FEEDBACK


def test_compensation_within_and_above_the_limit(running: Running) -> None:
    r = running
    case_id = open_case(r, register(r))

    def offer(amount: int) -> common_pb2.CommandResult:
        return r.client.cases.OfferCompensation(
            case_service_pb2.OfferCompensationRequest(
                context=r.client.context(),
                case_id=case_id,
                kind=R.COMPENSATION_KIND_REFUND,
                amount_minor=amount,
                currency="JPY",
            )
        )

    offer(3000)  # the default limit is 10,000 JPY
    requested = offer(50_000)
    compensation_id = _compensation_id(r, case_id)

    def decide(kind: int) -> common_pb2.CommandResult:
        return r.client.cases.DecideCompensation(
            case_service_pb2.DecideCompensationRequest(
                context=r.client.context(kind=kind),  # type: ignore[arg-type]
                case_id=case_id,
                compensation_id=compensation_id,
                approve=True,
                reason="long-standing customer",
            )
        )

    with pytest.raises(grpc.RpcError) as refused:
        decide(common_pb2.ACTOR_KIND_AGENT)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    decide(common_pb2.ACTOR_KIND_SUPERVISOR)
    assert requested.event_ids
    summary = r.client.cases.GetCaseSummary(case_service_pb2.GetCaseSummaryRequest(case_id=case_id))
    assert "Compensation granted: refund 3000 JPY, refund 50000 JPY." in summary.text
    assert "Router" not in summary.text
    r.settle()
    case = r.client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case_id))
    texts = [e.summary for e in r.client.whole_timeline(case.customer_id)]
    assert any("above the agent's limit" in t for t in texts)
    assert any("approved by a supervisor" in t for t in texts)


def _compensation_id(r: Running, case_id: str) -> str:
    case = r.client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case_id))
    (pending,) = case.compensations.pending
    return pending.compensation_id


def test_triggers_from_the_case_itself_through_grpc(running: Running) -> None:
    r = running
    r.client.clock = r.clock.now - timedelta(hours=1)  # room for the many commands below
    customer = register(r)
    repeat, reopened, critical = (open_case(r, customer) for _ in range(3))
    for _ in range(3):  # three inbound calls about the same open case within a week
        r.client.cases.RecordContact(
            case_service_pb2.RecordContactRequest(
                context=r.client.context(),
                case_id=repeat,
                channel=common_pb2.CHANNEL_PHONE,
                direction=common_pb2.DIRECTION_INBOUND,
                handled_by=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-3"),
                outcome=R.CONTACT_OUTCOME_ANSWERED,
                started_at=r.client.context().occurred_at,
            )
        )
    for _ in range(2):  # resolved and reopened twice
        r.client.cases.ResolveCase(
            case_service_pb2.ResolveCaseRequest(
                context=r.client.context(), case_id=reopened, resolution_code="done"
            )
        )
        r.client.cases.ReopenCase(
            case_service_pb2.ReopenCaseRequest(
                context=r.client.context(), case_id=reopened, reason="back again"
            )
        )
    r.client.cases.TransferCase(
        case_service_pb2.TransferCaseRequest(
            context=r.client.context(), case_id=critical, to_department="development", reason="bug"
        )
    )
    r.settle()
    assert escalated(r) == [(critical, 3), (reopened, 2), (repeat, 1)]
    assert escalated(r, reason=R.ESCALATION_REASON_REPEAT_CONTACT) == [(repeat, 1)]
    assert escalated(r, reason=R.ESCALATION_REASON_REOPENED) == [(reopened, 2)]
    assert escalated(r, reason=R.ESCALATION_REASON_CRITICAL_DEPARTMENT) == [(critical, 3)]
    at_risk = risk(r, customer)
    assert [(c.case_id, c.level) for c in at_risk.escalated_cases] == [
        (critical, 3),
        (reopened, 2),
        (repeat, 1),
    ]


def test_a_survivor_is_at_risk_for_the_cases_of_a_merged_duplicate(running: Running) -> None:
    r = running
    survivor, duplicate = register(r), register(r)
    case_id = open_case(r, duplicate)
    r.client.cases.EscalateCase(
        case_service_pb2.EscalateCaseRequest(
            context=r.client.context(), case_id=case_id, level=2, note="angry on the phone"
        )
    )
    r.settle()
    assert not risk(r, survivor).at_risk
    r.client.customers.MergeCustomers(
        customer_service_pb2.MergeCustomersRequest(
            context=r.client.supervisor_context(),
            duplicate_customer_id=duplicate,
            survivor_customer_id=survivor,
            reason="same phone number",
        )
    )
    r.settle()
    merged = risk(r, survivor)
    assert merged.at_risk and [(c.case_id, c.level) for c in merged.escalated_cases] == [
        (case_id, 2)
    ]


def follow_ups(r: Running, **fields: object) -> list[str]:
    request = timeline_service_pb2.ListFollowUpsRequest(**fields)  # type: ignore[arg-type]
    reply = r.client.timeline.ListFollowUps(request)
    return [listed.case.case_id for listed in reply.follow_ups]


def survey(r: Running, customer_id: str, case_id: str, **scores: int) -> str:
    reply = r.client.feedback.SubmitSurvey(
        feedback_service_pb2.SubmitSurveyRequest(
            context=r.client.context(),
            customer_id=customer_id,
            case_id=case_id,
            channel=common_pb2.CHANNEL_EMAIL,
            **scores,  # type: ignore[arg-type]
        )
    )
    return reply.aggregate_id


def resolve(r: Running, case_id: str) -> None:
    r.client.cases.ResolveCase(
        case_service_pb2.ResolveCaseRequest(
            context=r.client.context(), case_id=case_id, resolution_code="done"
        )
    )


def test_negative_feedback_after_resolution_is_followed_up_and_escalates_a_reopening(
    running: Running,
) -> None:
    r = running
    r.client.clock = r.clock.now - timedelta(hours=1)
    customer = register(r)
    rude, fine, detractor = (open_case(r, customer) for _ in range(3))
    for case_id in (rude, fine, detractor):
        resolve(r, case_id)
    poor = survey(r, customer, rude, csat=1)
    survey(r, customer, fine, csat=5)
    survey(r, customer, detractor, nps=2)
    r.tick()
    # nothing escalates a resolved case; the negative ones wait for a supervisor, newest first
    assert escalated(r) == []
    assert follow_ups(r) == [detractor, rude]
    assert follow_ups(r, limit=1) == [detractor]
    listed = r.client.timeline.ListFollowUps(timeline_service_pb2.ListFollowUpsRequest())
    first_rude = listed.follow_ups[1]
    assert first_rude.case.status == R.CASE_STATUS_RESOLVED
    assert [(f.feedback_id, f.negativity) for f in first_rude.feedback] == [
        (poor, R.ESCALATION_REASON_NEGATIVE_FEEDBACK)
    ]
    assert first_rude.since == first_rude.feedback[0].at

    r.client.cases.ReopenCase(
        case_service_pb2.ReopenCaseRequest(
            context=r.client.context(), case_id=rude, reason="still rude"
        )
    )
    r.tick()
    assert follow_ups(r) == [detractor]  # reopened: off the list, and escalated for the feedback
    assert escalated(r) == [(rude, 2)]
    assert escalated(r, reason=R.ESCALATION_REASON_NEGATIVE_FEEDBACK) == [(rude, 2)]

    with pytest.raises(grpc.RpcError) as refused:
        r.client.timeline.ListFollowUps(timeline_service_pb2.ListFollowUpsRequest(limit=501))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
