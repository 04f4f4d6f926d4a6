"""The SLA planner without a store or a clock: given history, then the facts and timers it plans.

`Desk` stands for the case service and the deadline process together: every event goes to the
planner, and each SLA fact the planner asks for is recorded as the case records it (under the
planned request id), so the planner sees its own facts come back as it does in production.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from crm.envelope import RecordedEvent
from crm.vocabulary import Channel, Direction, Priority
from services.case.events import CasePendingOnCustomer, CaseResumed
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaEvent,
    SlaTarget,
)
from services.events import DomainEvent
from services.sla.calendar import BusinessCalendar
from services.sla.planner import Planned, Planner
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, Targets, load_policy
from tests.support import contact, opened, recorded

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
CUSTOMER, CASE = "cust-1", "case-1"
FIRST, RESOLUTION = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
# DOMAIN.md's targets for a normal-priority case of a standard customer, on the 24/7 calendar
NORMAL_FIRST_RESPONSE, NORMAL_RESOLUTION = timedelta(hours=4), timedelta(hours=24)


class Desk:
    """History as the deadline process sees it, with every planned SLA fact carried out."""

    def __init__(self, policy: SlaPolicy = DEFAULT_POLICY) -> None:
        self.planner = Planner(policy)
        self.history: list[DomainEvent] = []

    def record(self, event: DomainEvent, at: datetime, request_id: str = "") -> RecordedEvent:
        rec = recorded(event, len(self.history) + 1, CUSTOMER, at=at)
        if request_id:
            rec = replace(rec, metadata=replace(rec.metadata, request_id=request_id))
        self.history.append(event)
        self.planner.observe(rec, event)
        return rec

    def happen(self, event: DomainEvent, at: datetime) -> list[Planned]:
        """Record an event; carry out the SLA facts it calls for; return every plan it made."""
        self.record(event, at)
        plans = self.planner.pending()
        self.carry_out(plans, at)
        return plans

    def carry_out(self, plans: list[Planned], at: datetime) -> None:
        for plan in plans:
            if isinstance(plan.command, RecordSlaFact):
                self.record(plan.command.fact, at, plan.request_id)

    def facts(self, kind: type[SlaEvent]) -> list[SlaEvent]:
        return [e for e in self.history if isinstance(e, kind)]


def facts_of(plans: list[Planned]) -> list[SlaEvent]:
    return [p.command.fact for p in plans if isinstance(p.command, RecordSlaFact)]


def opened_normal(at: datetime = T0) -> Desk:
    desk = Desk()
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), at)
    return desk


# ---------------------------------------------------------------- at risk at 80 %


def test_opening_applies_the_clock_with_at_risk_at_80_percent_of_each_target() -> None:
    desk = opened_normal()

    (applied,) = desk.facts(SlaApplied)
    assert applied == SlaApplied(
        CASE,
        "default-1",
        False,
        (
            SlaDue(FIRST, T0 + NORMAL_FIRST_RESPONSE * 0.8, T0 + NORMAL_FIRST_RESPONSE),
            SlaDue(RESOLUTION, T0 + NORMAL_RESOLUTION * 0.8, T0 + NORMAL_RESOLUTION),
        ),
        "opened",
    )


def test_a_case_is_at_risk_at_exactly_80_percent_of_its_business_time_and_not_at_79() -> None:
    # given a normal case of a standard customer: 4 h to the first response
    desk = opened_normal()
    at_80, at_79 = T0 + NORMAL_FIRST_RESPONSE * 0.80, T0 + NORMAL_FIRST_RESPONSE * 0.79
    # when the clock reaches 79 %, then nothing is due
    assert desk.planner.due_timers(at_79) == []
    assert desk.planner.due_timers(at_80 - timedelta(microseconds=1)) == []
    # when it reaches 80 %, then the first response is at risk, and only that
    assert facts_of(desk.planner.due_timers(at_80)) == [
        SlaAtRisk(CASE, FIRST, T0 + NORMAL_FIRST_RESPONSE)
    ]
    assert desk.planner.next_timer() == at_80 == T0 + timedelta(hours=3, minutes=12)


def test_the_built_in_policy_and_any_policy_that_omits_it_use_80_percent() -> None:
    from_document = load_policy('{"version": "v-2"}')
    by_hand = SlaPolicy(
        "v-3", BusinessCalendar.always("UTC"), DEFAULT_POLICY.standard, DEFAULT_POLICY.vip
    )

    for policy in (DEFAULT_POLICY, from_document):
        assert policy.at_risk_fraction == 0.8
        assert policy.at_risk(T0, timedelta(hours=10)) == T0 + timedelta(hours=8)
    assert by_hand.at_risk_fraction == 0.8


def test_the_clock_is_at_risk_once_then_breached_at_the_due_instant() -> None:
    desk = opened_normal()
    desk.carry_out(desk.planner.due_timers(T0 + NORMAL_FIRST_RESPONSE * 0.8), T0)

    assert desk.planner.due_timers(T0 + NORMAL_FIRST_RESPONSE - timedelta(microseconds=1)) == []
    assert facts_of(desk.planner.due_timers(T0 + NORMAL_FIRST_RESPONSE)) == [
        SlaBreached(CASE, FIRST, T0 + NORMAL_FIRST_RESPONSE)
    ]


def test_time_pending_on_the_customer_does_not_count_towards_the_80_percent() -> None:
    # given a normal case that waits on the customer for one hour after 30 minutes
    desk = opened_normal()
    desk.happen(
        CasePendingOnCustomer(CASE, "waiting for the invoice number"), T0 + timedelta(minutes=30)
    )
    assert desk.planner.due_timers(T0 + timedelta(days=30)) == []  # no timer runs while paused
    # when it resumes
    plans = desk.happen(CaseResumed(CASE, "the customer answered"), T0 + timedelta(minutes=90))
    # then the at-risk instant moved by the hour of the pause
    (resumed,) = facts_of(plans)
    first = next(d for d in resumed.dues if d.target is FIRST)  # type: ignore[union-attr]
    assert first == SlaDue(FIRST, T0 + timedelta(hours=4, minutes=12), T0 + timedelta(hours=5))
    assert desk.planner.next_timer() == T0 + timedelta(hours=4, minutes=12)


def test_a_response_before_the_due_instant_fulfils_the_first_response_in_time() -> None:
    desk = opened_normal()
    answered = contact(
        CASE, "ct-1", Channel.PHONE, Direction.OUTBOUND, started_at=T0 + timedelta(hours=1)
    )

    plans = desk.happen(answered, T0 + timedelta(hours=1, minutes=5))

    assert [(f.target, f.met) for f in facts_of(plans)] == [(FIRST, True)]  # type: ignore[union-attr]
    assert desk.planner.next_timer() == T0 + NORMAL_RESOLUTION * 0.8


def test_a_vip_customer_gets_half_of_each_target() -> None:
    policy = SlaPolicy(
        "p-1",
        BusinessCalendar.always("UTC"),
        DEFAULT_POLICY.standard,
        {p: Targets(timedelta(hours=1), timedelta(hours=2)) for p in Priority},
    )
    assert policy.targets_for(Priority.NORMAL, True) == Targets(
        timedelta(hours=1), timedelta(hours=2)
    )
    assert policy.targets_for(Priority.NORMAL, False) == Targets(
        NORMAL_FIRST_RESPONSE, NORMAL_RESOLUTION
    )
