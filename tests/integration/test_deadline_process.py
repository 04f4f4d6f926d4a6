"""The deadline process on a real SQLite store with a controlled clock: SLA facts, timers at the
due instant, pause arithmetic, escalation, and no double recording by a second process."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm.command_handling import CommandContext
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from projections.case_view import CaseView, apply_case_event
from projections.timeline import timeline_entry
from services.bootstrap import CODEC, build_applications
from services.case import domain as case_domain
from services.case.application import CaseApplication
from services.case.commands import (
    CaseCommand,
    ChangePriority,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    ResumeCase,
    SetPendingOnCustomer,
)
from services.case.escalation import EscalationReason
from services.case.events import CaseEvent, Category, ContactOutcome
from services.case.sla_facts import SlaApplied, SlaDue, SlaFulfilled, SlaResumed, SlaTarget
from services.customer.application import CustomerApplication
from services.customer.commands import ChangeTier, RegisterCustomer
from services.customer.events import Segment, Tier
from services.feedback.application import FeedbackApplication
from services.feedback.commands import SubmitSurvey
from services.sla.policy import DEFAULT_POLICY
from services.sla.process import DeadlineProcess
from tests.grpc_client import poll
from tests.support import FakeClock

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
FIRST, RESOLUTION = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
AGENT = Actor(ActorKind.AGENT, "agent-1")
_requests = itertools.count(1)


@dataclass
class World:
    store: SqliteEventStore
    clock: FakeClock
    customer_app: CustomerApplication
    case_app: CaseApplication
    feedback_app: FeedbackApplication

    def context(self) -> CommandContext:
        return CommandContext(f"req-{next(_requests)}", AGENT, self.clock())

    def process(self) -> DeadlineProcess:
        return DeadlineProcess(self.store, self.case_app, DEFAULT_POLICY, self.clock, CODEC)

    def register(self, customer_id: str, tier: Tier = Tier.STANDARD) -> None:
        command = RegisterCustomer(customer_id, "Kana Ito", (), "ja", Segment.B2C, tier=tier)
        self.customer_app.handle(command, self.context())

    def open(self, case_id: str, priority: Priority = Priority.NORMAL) -> None:
        command = OpenCase(
            case_id, "cust-1", Channel.EMAIL, Category.TECHNICAL_TROUBLE, priority, "App", ""
        )
        self.case_app.handle(command, self.context())

    def do(self, command: CaseCommand) -> None:
        self.case_app.handle(command, self.context())

    def types(self, case_id: str) -> list[str]:
        return [r.type.split(".")[2] for r in self.store.read_stream(f"case-{case_id}")]

    def events(self, case_id: str, kind: type) -> list[object]:
        decoded = [CODEC.decode(r.type, r.data) for r in self.store.read_stream(f"case-{case_id}")]
        return [e for e in decoded if isinstance(e, kind)]

    def dated(self, case_id: str, event_type: str) -> list[datetime]:
        """When each event of that type happened, as its envelope says."""
        records = self.store.read_stream(f"case-{case_id}")
        return [r.metadata.occurred_at for r in records if r.type.split(".")[2] == event_type]

    def case_view(self, case_id: str) -> CaseView:
        """The case view the projection folds from the case's stream."""
        view = None
        for recorded in self.store.read_stream(f"case-{case_id}"):
            event = CODEC.decode(recorded.type, recorded.data)
            assert isinstance(event, CaseEvent)
            view = apply_case_event(view, event, recorded)
        assert view is not None
        return view

    def case(self, case_id: str) -> case_domain.Case:
        state = self.case_app.get(case_id).state
        assert state is not None
        return state


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SqliteEventStore(tmp_path / "events.db")
    clock = FakeClock(T0)
    apps = build_applications(store, clock)
    built = World(store, clock, apps.customers, apps.cases, apps.feedback)
    built.register("cust-1")
    yield built
    store.close()


def test_opening_applies_the_policy_with_due_and_at_risk_instants(world: World) -> None:
    world.open("c1")
    assert world.process().run_once() == 1
    (applied,) = world.events("c1", SlaApplied)
    assert isinstance(applied, SlaApplied)
    assert (applied.policy_version, applied.vip, applied.trigger) == ("default-1", False, "opened")
    # normal priority: 4 h first response, 24 h resolution; at risk at 80 % of each
    assert applied.dues == (
        SlaDue(FIRST, T0 + timedelta(hours=3, minutes=12), T0 + timedelta(hours=4)),
        SlaDue(RESOLUTION, T0 + timedelta(hours=19, minutes=12), T0 + timedelta(hours=24)),
    )


def test_timers_fire_at_the_instant_and_escalate(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    assert process.planner.next_timer() == T0 + timedelta(hours=3, minutes=12)
    world.clock.advance(hours=3, minutes=11, seconds=59)
    assert process.run_once() == 0
    world.clock.advance(seconds=1)
    assert process.run_once() == 1
    assert world.types("c1")[-2:] == ["SlaAtRisk", "CaseEscalationChanged"]
    assert world.case("c1").escalation == (EscalationReason.SLA_AT_RISK,)
    world.clock.advance(minutes=48)
    assert process.run_once() == 1
    assert world.types("c1")[-2:] == ["SlaBreached", "CaseEscalationChanged"]
    assert world.case("c1").escalation_level == 2
    assert process.run_once() == 0


def test_a_breach_is_recorded_once_with_two_processes(world: World) -> None:
    world.open("c1")
    first, second = world.process(), world.process()
    first.run_once()
    second.run_once()
    world.clock.advance(hours=5)
    recorded = first.run_once() + second.run_once()
    assert world.types("c1").count("SlaBreached") == 1
    assert world.types("c1").count("SlaAtRisk") == 1
    assert recorded == 2  # at risk and breach, each by one of the two


def test_a_restarted_process_records_nothing_again(world: World) -> None:
    world.open("c1")
    world.process().run_once()
    world.clock.advance(hours=4)
    world.process().run_once()
    before = world.types("c1")
    assert world.process().run_once() == 0
    assert world.types("c1") == before


def test_time_pending_on_the_customer_does_not_count(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=1)
    world.do(SetPendingOnCustomer("c1", "waiting for a screenshot"))
    process.run_once()
    world.clock.advance(hours=3)  # past the original at-risk instant, but paused
    assert process.run_once() == 0
    assert "SlaAtRisk" not in world.types("c1")
    world.do(ResumeCase("c1", "screenshot received"))
    process.run_once()
    resumed = world.events("c1", SlaResumed)[-1]
    assert isinstance(resumed, SlaResumed)
    # 1 h of the 4 h used before the pause: 3 h left from the resume at T0 + 4 h
    first = next(d for d in resumed.dues if d.target is FIRST)
    assert first.due_at == T0 + timedelta(hours=7)
    assert first.at_risk_at == T0 + timedelta(hours=6, minutes=12)


def test_first_response_in_time_is_fulfilled_and_stops_its_timers(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=1)
    world.do(
        RecordContact(
            "c1",
            "k1",
            Channel.EMAIL,
            Direction.OUTBOUND,
            ActorKind.AGENT,
            "agent-1",
            ContactOutcome.ANSWERED,
            world.clock(),
        )
    )
    process.run_once()
    fulfilled = world.events("c1", SlaFulfilled)
    assert fulfilled == [SlaFulfilled("c1", FIRST, True)]
    world.clock.advance(hours=4)
    process.run_once()
    assert "SlaAtRisk" not in world.types("c1")
    assert process.planner.next_timer() == T0 + timedelta(hours=19, minutes=12)


def test_a_priority_change_recomputes_the_due_instants(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=1)
    world.do(ChangePriority("c1", Priority.URGENT, "outage"))
    process.run_once()
    reapplied = world.events("c1", SlaApplied)[-1]
    assert isinstance(reapplied, SlaApplied) and reapplied.trigger == "priority_changed"
    # urgent: 15 min first response is already used up; 4 h resolution minus the 1 h used
    assert reapplied.dues == (
        SlaDue(FIRST, T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
        SlaDue(RESOLUTION, T0 + timedelta(hours=3, minutes=12), T0 + timedelta(hours=4)),
    )
    process.run_once()
    assert world.types("c1").count("SlaBreached") == 1


def test_a_breach_noticed_late_is_dated_when_the_clock_crossed_the_due_instant(
    world: World,
) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=5)  # the process was down: first response was due at T0 + 4 h
    process.run_once()
    due, at_risk = T0 + timedelta(hours=4), T0 + timedelta(hours=3, minutes=12)
    assert world.dated("c1", "SlaBreached") == [due]
    assert world.dated("c1", "SlaAtRisk") == [at_risk]
    assert world.dated("c1", "CaseEscalationChanged") == [at_risk, due]
    assert world.dated("c1", "SlaApplied") == [T0]  # the opening started the clock
    breach = next(r for r in world.store.read_stream("case-c1") if "SlaBreached" in r.type)
    entry = timeline_entry(breach, CODEC.decode(breach.type, breach.data))
    assert entry.occurred_at == due
    view = world.case_view("c1")
    assert view.kpis.sla_decided_at == due


def test_an_sla_reapplied_after_a_priority_change_is_dated_at_the_change(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=1)
    world.do(ChangePriority("c1", Priority.HIGH, "outage"))
    world.clock.advance(minutes=30)  # noticed half an hour later
    process.run_once()
    assert world.dated("c1", "SlaApplied") == [T0, T0 + timedelta(hours=1)]


def test_vip_customers_get_the_tighter_targets(world: World) -> None:
    world.register("vip-1", Tier.VIP)
    command = OpenCase(
        "c1", "vip-1", Channel.PHONE, Category.BILLING_PAYMENT, Priority.NORMAL, "x", ""
    )
    world.case_app.handle(command, world.context())
    world.process().run_once()
    (applied,) = world.events("c1", SlaApplied)
    assert isinstance(applied, SlaApplied) and applied.vip
    standard = DEFAULT_POLICY.targets_for(Priority.NORMAL, False).first_response
    vip = DEFAULT_POLICY.targets_for(Priority.NORMAL, True).first_response
    assert vip < standard
    assert applied.dues[0].due_at == T0 + vip


def test_negative_feedback_on_a_case_escalates_it(world: World) -> None:
    world.open("c1")
    survey = SubmitSurvey("fb-1", "cust-1", Channel.EMAIL, case_id="c1", csat=1)
    world.feedback_app.handle(survey, world.context())
    world.process().run_once()
    assert world.case("c1").escalation == (EscalationReason.NEGATIVE_FEEDBACK,)
    assert world.case("c1").escalation_level == 2


def test_resolution_fulfils_the_target_and_clears_the_escalation(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=5)
    process.run_once()
    world.do(ResolveCase("c1", "fixed"))
    process.run_once()
    assert world.events("c1", SlaFulfilled) == [SlaFulfilled("c1", RESOLUTION, True)]
    assert world.case("c1").escalation == ()
    assert process.planner.next_timer() is None


def test_a_customer_becoming_vip_tightens_the_targets_of_open_cases(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(minutes=30)
    world.customer_app.handle(
        ChangeTier("cust-1", Tier.VIP, "enterprise contract"), world.context()
    )
    process.run_once()
    reapplied = world.events("c1", SlaApplied)[-1]
    assert isinstance(reapplied, SlaApplied)
    assert (reapplied.trigger, reapplied.vip) == ("tier_changed", True)
    # VIP normal: 2 h first response, 12 h resolution, counted from the opening at T0
    assert [d.due_at for d in reapplied.dues] == [T0 + timedelta(hours=2), T0 + timedelta(hours=12)]


def test_a_reopened_case_gets_a_fresh_resolution_outcome(world: World) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.do(ResolveCase("c1", "fixed"))
    process.run_once()
    world.clock.advance(hours=30)
    world.do(ReopenCase("c1", "broke again"))
    process.run_once()
    world.clock.advance(hours=1)
    world.do(ResolveCase("c1", "fixed-for-good"))
    process.run_once()
    fulfilled = world.events("c1", SlaFulfilled)
    assert fulfilled == [
        SlaFulfilled("c1", RESOLUTION, True),
        SlaFulfilled("c1", RESOLUTION, True),  # 1 h of the fresh 24 h after the reopening
    ]


def test_becoming_vip_reapplies_every_open_case_and_escalates_a_complaint(world: World) -> None:
    world.open("c1")
    complaint = OpenCase(
        "c2", "cust-1", Channel.PHONE, Category.COMPLAINT, Priority.NORMAL, "rude agent", ""
    )
    world.case_app.handle(complaint, world.context())
    process = world.process()
    process.run_once()
    world.customer_app.handle(ChangeTier("cust-1", Tier.VIP, "key account"), world.context())
    process.run_once()
    for case_id in ("c1", "c2"):
        reapplied = world.events(case_id, SlaApplied)[-1]
        assert isinstance(reapplied, SlaApplied)
        assert (reapplied.trigger, reapplied.vip) == ("tier_changed", True)
    assert world.case("c1").escalation == ()
    assert world.case("c2").escalation == (EscalationReason.VIP_COMPLAINT,)


def test_a_response_dated_before_the_due_but_recorded_after_the_breach_is_late(
    world: World,
) -> None:
    world.open("c1")
    process = world.process()
    process.run_once()
    world.clock.advance(hours=5)
    process.run_once()  # first response breached at T0 + 4 h
    world.do(
        RecordContact(
            "c1",
            "k-late",
            Channel.PHONE,
            Direction.OUTBOUND,
            ActorKind.AGENT,
            "agent-1",
            ContactOutcome.ANSWERED,
            T0 + timedelta(hours=1),  # the call happened in time but was logged late
        )
    )
    process.run_once()
    assert world.events("c1", SlaFulfilled) == [SlaFulfilled("c1", FIRST, False)]


def test_the_running_process_acts_on_appends_and_timers_and_stops_promptly(world: World) -> None:
    process = world.process()
    process.start()
    try:
        world.open("c1")  # an append in this process wakes the follow loop at once
        poll(lambda: "SlaApplied" in world.types("c1"))
        world.clock.advance(hours=3, minutes=12)  # the loop waits at most MAX_WAIT_SECONDS
        poll(lambda: world.types("c1")[-2:] == ["SlaAtRisk", "CaseEscalationChanged"])
    finally:
        started = time.monotonic()
        process.stop()
        assert time.monotonic() - started < 2.0
    assert world.types("c1").count("SlaAtRisk") == 1
