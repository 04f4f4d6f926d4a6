"""The SLA planner without a store or a clock: given history, then the facts and timers it plans.

`Desk` stands for the case service and the deadline process together: every event goes to the
planner, and each SLA fact the planner asks for is recorded as the case records it (under the
planned request id), so the planner sees its own facts come back as it does in production.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm.envelope import RecordedEvent
from crm.vocabulary import Channel, Direction, Priority
from services.case.escalation import CaseEscalationChanged, EscalationReason, RaiseEscalation
from services.case.events import (
    CaseClosed,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    Category,
    ContactRecorded,
)
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaClock,
    SlaDue,
    SlaEvent,
    SlaFulfilled,
    SlaResumed,
    SlaTarget,
    decide_fact,
    evolve_clock,
)
from services.customer.events import Tier, TierChanged
from services.events import DomainEvent
from services.feedback.events import SentimentLabel, SurveySubmitted, VoiceOfCustomerRecorded
from services.sla.calendar import BusinessCalendar
from services.sla.planner import Planner
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, Targets, load_policy
from services.sla.watch import Planned
from tests.support import contact, opened, recorded, registered, survey

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
CUSTOMER, CASE = "cust-1", "case-1"
FIRST, RESOLUTION = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
MINUTE = timedelta(minutes=1)
# DOMAIN.md's targets for a normal-priority case of a standard customer, on the 24/7 calendar
NORMAL_FIRST_RESPONSE, NORMAL_RESOLUTION = timedelta(hours=4), timedelta(hours=24)


class Desk:
    """History as the deadline process sees it, with every planned SLA fact carried out."""

    def __init__(self, policy: SlaPolicy = DEFAULT_POLICY) -> None:
        self.planner = Planner(policy)
        self.history: list[DomainEvent] = []
        self.clocks: dict[str, SlaClock] = defaultdict(SlaClock)

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
                # as the case service does: refuse a fact that does not fit the case's clock
                case_id = plan.command.case_id
                fact = decide_fact(plan.command, self.clocks[case_id])
                self.clocks[case_id] = evolve_clock(self.clocks[case_id], fact)
                self.record(fact, at, plan.request_id)

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


# ---------------------------------------------------------------- fulfilment


def response(minutes: float) -> ContactRecorded:
    """An agent's outbound call to the customer, started `minutes` after T0."""
    started = T0 + timedelta(minutes=minutes)
    return contact(CASE, f"ct-{minutes}", Channel.PHONE, Direction.OUTBOUND, started_at=started)


@pytest.mark.parametrize(("minutes", "met"), [(240, True), (240.01, False)])
def test_a_response_is_in_time_up_to_and_including_the_due_instant(
    minutes: float, met: bool
) -> None:
    desk = opened_normal()

    plans = desk.happen(response(minutes), T0 + timedelta(hours=5))

    assert facts_of(plans) == [SlaFulfilled(CASE, FIRST, met)]


def test_a_breach_recorded_before_an_earlier_dated_response_stays_a_miss() -> None:
    desk = opened_normal()
    desk.carry_out(desk.planner.due_timers(T0 + NORMAL_FIRST_RESPONSE), T0 + NORMAL_FIRST_RESPONSE)

    plans = desk.happen(response(60), T0 + timedelta(hours=5))

    assert facts_of(plans) == [SlaFulfilled(CASE, FIRST, False)]


def test_only_the_first_response_fulfils_and_resolution_timers_keep_running() -> None:
    desk = opened_normal()
    desk.happen(response(10), T0 + timedelta(minutes=10))

    assert desk.happen(response(20), T0 + timedelta(minutes=20)) == []
    assert facts_of(desk.planner.due_timers(T0 + NORMAL_RESOLUTION)) == [
        SlaAtRisk(CASE, RESOLUTION, T0 + NORMAL_RESOLUTION),
        SlaBreached(CASE, RESOLUTION, T0 + NORMAL_RESOLUTION),
    ]


def test_resolving_fulfils_the_resolution_and_closing_stops_every_timer() -> None:
    desk = opened_normal()

    resolved = desk.happen(CaseResolved(CASE, "fixed", ""), T0 + timedelta(hours=30))
    assert facts_of(resolved) == [SlaFulfilled(CASE, RESOLUTION, False)]
    assert desk.planner.due_timers(T0 + timedelta(days=9)) == []  # resolved: no timer runs

    desk.happen(CaseClosed(CASE, "done"), T0 + timedelta(hours=31))
    assert desk.planner.next_timer() is None
    assert CASE not in desk.planner.watches


# ---------------------------------------------------------------- the clock applied again


def test_a_reopened_case_gets_a_fresh_resolution_clock_from_the_reopening() -> None:
    desk = opened_normal()
    desk.happen(response(10), T0 + timedelta(minutes=10))
    desk.happen(CaseResolved(CASE, "fixed", ""), T0 + timedelta(hours=1))
    reopened_at = T0 + timedelta(hours=2)

    plans = desk.happen(CaseReopened(CASE, "not fixed"), reopened_at)

    assert facts_of(plans) == [
        SlaApplied(
            CASE,
            "default-1",
            False,
            (
                SlaDue(
                    RESOLUTION,
                    reopened_at + NORMAL_RESOLUTION * 0.8,
                    reopened_at + NORMAL_RESOLUTION,
                ),
            ),
            "reopened",
        )
    ]
    resolved_again = desk.happen(CaseResolved(CASE, "fixed", ""), reopened_at + timedelta(hours=1))
    assert facts_of(resolved_again) == [SlaFulfilled(CASE, RESOLUTION, True)]


def test_a_priority_change_applies_the_clock_again_with_the_new_targets() -> None:
    desk = opened_normal()

    plans = desk.happen(
        CasePriorityChanged(CASE, Priority.NORMAL, Priority.URGENT, "outage"), T0 + MINUTE
    )

    (applied,) = facts_of(plans)
    assert isinstance(applied, SlaApplied) and applied.trigger == "priority_changed"
    assert applied.dues[0] == SlaDue(FIRST, T0 + timedelta(minutes=12), T0 + timedelta(minutes=15))


def test_a_priority_change_while_paused_waits_for_the_resumption() -> None:
    desk = opened_normal()
    desk.happen(CasePendingOnCustomer(CASE, "waiting"), T0 + MINUTE)

    plans = desk.happen(
        CasePriorityChanged(CASE, Priority.NORMAL, Priority.URGENT, "outage"), T0 + 2 * MINUTE
    )
    assert plans == []
    (resumed,) = facts_of(desk.happen(CaseResumed(CASE, "answered"), T0 + 3 * MINUTE))
    assert isinstance(resumed, SlaResumed)
    assert resumed.dues[0] == SlaDue(FIRST, T0 + timedelta(minutes=14), T0 + timedelta(minutes=17))


def test_a_vip_customer_gets_half_of_each_target_from_the_built_in_policy() -> None:
    desk = Desk()
    desk.happen(replace(registered(CUSTOMER), tier=Tier.VIP), T0)

    (applied,) = facts_of(desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0))

    assert isinstance(applied, SlaApplied) and applied.vip is True
    assert [d.due_at for d in applied.dues] == [T0 + timedelta(hours=2), T0 + timedelta(hours=12)]


def test_becoming_vip_applies_the_clock_of_each_open_case_and_escalates_a_complaint() -> None:
    desk = Desk()
    desk.happen(registered(CUSTOMER), T0)
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)
    complaint = replace(opened("case-2", CUSTOMER), category=Category.COMPLAINT)
    desk.happen(complaint, T0)
    desk.happen(opened("case-3", "cust-other"), T0)

    plans = desk.happen(TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "spent a lot"), T0 + MINUTE)

    applied = [f for f in facts_of(plans) if isinstance(f, SlaApplied)]
    assert sorted((f.case_id, f.vip, f.trigger) for f in applied) == [
        (CASE, True, "tier_changed"),
        ("case-2", True, "tier_changed"),
    ]
    escalations = [p.command for p in plans if isinstance(p.command, RaiseEscalation)]
    assert escalations == [
        RaiseEscalation("case-2", EscalationReason.VIP_COMPLAINT, "customer is VIP now")
    ]
    assert len({p.request_id for p in plans}) == len(plans) == 3


def test_losing_vip_applies_the_standard_targets_again() -> None:
    desk = Desk()
    desk.happen(replace(registered(CUSTOMER), tier=Tier.VIP), T0)
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)

    plans = desk.happen(TierChanged(CUSTOMER, Tier.VIP, Tier.STANDARD, "lapsed"), T0)

    (applied,) = facts_of(plans)
    assert isinstance(applied, SlaApplied) and applied.vip is False
    assert applied.dues[0].due_at == T0 + NORMAL_FIRST_RESPONSE
    assert [p.command for p in plans if isinstance(p.command, RaiseEscalation)] == []


# ---------------------------------------------------------------- several cases


def test_a_paused_or_fulfilled_case_does_not_hold_up_the_timers_of_others() -> None:
    desk = Desk()
    desk.happen(opened("case-a", CUSTOMER, priority=Priority.NORMAL), T0)
    desk.happen(CasePendingOnCustomer("case-a", "waiting"), T0)
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)
    desk.happen(response(1), T0 + MINUTE)  # first response of CASE fulfilled

    due = facts_of(desk.planner.due_timers(T0 + NORMAL_RESOLUTION * 0.8))

    assert due == [SlaAtRisk(CASE, RESOLUTION, T0 + NORMAL_RESOLUTION)]


# ---------------------------------------------------------------- feedback


def test_poor_feedback_on_an_open_case_asks_for_an_escalation_once() -> None:
    desk = opened_normal()

    plans = desk.happen(survey("f-1", CUSTOMER, CASE, csat=1), T0 + MINUTE)

    assert [p.command for p in plans] == [
        RaiseEscalation(CASE, EscalationReason.NEGATIVE_FEEDBACK, "feedback f-1")
    ]
    escalated = CaseEscalationChanged(
        CASE,
        0,
        2,
        (EscalationReason.NEGATIVE_FEEDBACK,),
        (),
        (EscalationReason.NEGATIVE_FEEDBACK,),
        "",
    )
    desk.record(escalated, T0 + MINUTE, plans[0].request_id)
    assert desk.planner.pending() == []
    assert desk.happen(survey("f-2", CUSTOMER, CASE, csat=1), T0 + 2 * MINUTE) == []


@pytest.mark.parametrize(
    "feedback",
    [
        survey("f-1", CUSTOMER, CASE, csat=5),  # not negative
        survey("f-1", CUSTOMER, "", csat=1),  # about no case
        survey("f-1", CUSTOMER, "case-unknown", csat=1),
    ],
)
def test_feedback_that_calls_for_no_escalation(feedback: SurveySubmitted) -> None:
    desk = opened_normal()

    assert desk.happen(feedback, T0 + MINUTE) == []


def test_poor_feedback_on_a_resolved_case_asks_for_nothing() -> None:
    desk = opened_normal()
    desk.happen(CaseResolved(CASE, "fixed", ""), T0 + MINUTE)

    assert desk.happen(survey("f-1", CUSTOMER, CASE, csat=1), T0 + 2 * MINUTE) == []


# ---------------------------------------------------------------- idempotent request ids


def test_request_ids_name_their_cause_so_a_second_process_asks_for_the_same() -> None:
    desk = Desk()
    cause = desk.record(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)

    (plan,) = desk.planner.pending()

    assert (plan.request_id, plan.causation_id) == (f"supervise:{cause.event_id}:0", cause.event_id)
    desk.planner.forget(plan.request_id)
    assert desk.planner.pending() == []


def test_a_fulfilment_and_a_tier_change_have_ids_of_their_own() -> None:
    desk = opened_normal()
    cause = desk.record(response(5), T0 + 5 * MINUTE)

    (plan,) = desk.planner.pending()
    assert plan.request_id == f"supervise:{cause.event_id}:1"

    desk.carry_out([plan], T0)
    tier = desk.record(TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "x"), T0)
    (applied,) = desk.planner.pending()
    suffix = hashlib.sha256(CASE.encode()).hexdigest()[:16]
    assert applied.request_id == f"supervise:{tier.event_id}:0:{suffix}"


def test_timer_ids_are_the_same_for_the_same_timer_and_differ_by_kind() -> None:
    desk = opened_normal()
    twin = opened_normal()

    plans = desk.planner.due_timers(T0 + NORMAL_FIRST_RESPONSE)
    assert [p.request_id for p in plans] == [
        p.request_id for p in twin.planner.due_timers(T0 + NORMAL_FIRST_RESPONSE)
    ]
    ids = [p.request_id for p in plans]
    assert len(set(ids)) == len(ids) == 2
    about = f"{CASE}|first_response|at_risk|{(T0 + NORMAL_FIRST_RESPONSE).isoformat()}"
    assert ids[0] == f"sla-at_risk-{hashlib.sha256(about.encode()).hexdigest()[:32]}"
    assert ids[1].startswith("sla-breached-") and len(ids[1]) == len("sla-breached-") + 32
    assert all(p.causation_id == "" for p in plans)


def test_a_restarted_process_on_a_newer_release_asks_with_the_same_request_ids() -> None:
    # The ids are stored with the facts; a process rebuilding from event 0 recognises the facts
    # an older one recorded only if every kind of plan keeps its id.
    desk = Desk()
    desk.happen(registered(CUSTOMER), T0)
    desk.happen(replace(opened(CASE, CUSTOMER), category=Category.COMPLAINT), T0)
    desk.happen(replace(opened("case-2", CUSTOMER), category=Category.COMPLAINT), T0)
    ids: dict[str, str] = {}
    steps: list[tuple[str, DomainEvent]] = [
        ("pause", CasePendingOnCustomer(CASE, "waiting")),
        ("resume", CaseResumed(CASE, "answered")),
        ("feedback", survey("f-1", CUSTOMER, CASE, csat=1)),
        ("vip", TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "x")),
    ]
    for name, event in steps:
        cause = desk.record(event, T0 + MINUTE)
        for plan in desk.planner.pending():
            kind = type(
                plan.command.fact if isinstance(plan.command, RecordSlaFact) else plan.command
            )
            about = getattr(plan.command, "case_id", "")
            ids[f"{name} {kind.__name__} {about}"] = plan.request_id.replace(cause.event_id, "E")
        desk.carry_out(desk.planner.pending(), T0 + MINUTE)
        for plan in desk.planner.pending():
            desk.planner.forget(plan.request_id)

    case_1 = hashlib.sha256(CASE.encode()).hexdigest()[:16]
    case_2 = hashlib.sha256(b"case-2").hexdigest()[:16]
    assert ids == {
        f"pause SlaPaused {CASE}": "supervise:E:0",
        f"resume SlaResumed {CASE}": "supervise:E:0",
        f"feedback RaiseEscalation {CASE}": "supervise:E:0",
        f"vip SlaApplied {CASE}": f"supervise:E:0:{case_1}",
        f"vip RaiseEscalation {CASE}": f"supervise:E:1:{case_1}",
        "vip SlaApplied case-2": f"supervise:E:0:{case_2}",
        "vip RaiseEscalation case-2": f"supervise:E:1:{case_2}",
    }


def test_no_timer_fires_while_the_pause_is_being_recorded() -> None:
    desk = opened_normal()

    desk.record(CasePendingOnCustomer(CASE, "waiting"), T0 + MINUTE)  # SlaPaused not yet recorded

    assert desk.planner.due_timers(T0 + timedelta(days=3)) == []


def test_poor_feedback_while_the_case_waits_on_the_customer_still_escalates() -> None:
    desk = opened_normal()
    desk.happen(CasePendingOnCustomer(CASE, "waiting"), T0 + MINUTE)

    plans = desk.happen(survey("f-1", CUSTOMER, CASE, csat=1), T0 + 2 * MINUTE)

    assert [type(p.command) for p in plans] == [RaiseEscalation]


def test_business_time_used_excludes_a_finished_pause_when_the_clock_is_applied_later() -> None:
    # given 30 min running, a pause of one hour, then 90 min running again
    desk = opened_normal()
    desk.happen(CasePendingOnCustomer(CASE, "waiting"), T0 + timedelta(minutes=30))
    desk.happen(CaseResumed(CASE, "answered"), T0 + timedelta(minutes=90))
    # when the priority changes at 3 h, then 2 h of the urgent 4 h resolution target are used
    changed_at = T0 + timedelta(hours=3)
    plans = desk.happen(
        CasePriorityChanged(CASE, Priority.NORMAL, Priority.URGENT, "x"), changed_at
    )
    (applied,) = facts_of(plans)
    assert isinstance(applied, SlaApplied)
    resolution = next(d for d in applied.dues if d.target is RESOLUTION)
    assert resolution.due_at == changed_at + timedelta(hours=2)


def test_a_reopened_case_runs_its_timers_again_and_can_be_breached_again() -> None:
    desk = opened_normal()
    desk.happen(response(1), T0 + MINUTE)
    breach_at = T0 + NORMAL_RESOLUTION
    desk.carry_out(desk.planner.due_timers(breach_at), breach_at)
    desk.happen(CaseResolved(CASE, "fixed", ""), breach_at + MINUTE)
    reopened_at = breach_at + timedelta(hours=1)

    desk.happen(CaseReopened(CASE, "not fixed"), reopened_at)

    assert desk.planner.next_timer() == reopened_at + NORMAL_RESOLUTION * 0.8
    assert facts_of(desk.planner.due_timers(reopened_at + NORMAL_RESOLUTION)) == [
        SlaAtRisk(CASE, RESOLUTION, reopened_at + NORMAL_RESOLUTION),
        SlaBreached(CASE, RESOLUTION, reopened_at + NORMAL_RESOLUTION),
    ]


def test_a_second_response_before_the_first_is_recorded_as_fulfilment_is_no_news() -> None:
    desk = opened_normal()
    desk.record(response(1), T0 + MINUTE)
    desk.record(response(2), T0 + 2 * MINUTE)

    assert facts_of(desk.planner.pending()) == [SlaFulfilled(CASE, FIRST, True)]
    # and while that fulfilment is being recorded, the resolution timers still run
    assert facts_of(desk.planner.due_timers(T0 + NORMAL_RESOLUTION)) == [
        SlaAtRisk(CASE, RESOLUTION, T0 + NORMAL_RESOLUTION),
        SlaBreached(CASE, RESOLUTION, T0 + NORMAL_RESOLUTION),
    ]


def test_a_response_before_the_clock_is_recorded_counts_as_in_time() -> None:
    desk = Desk()
    desk.record(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)  # SlaApplied not recorded

    desk.record(response(1), T0 + MINUTE)

    assert SlaFulfilled(CASE, FIRST, True) in facts_of(desk.planner.pending())


def test_forgetting_a_plan_that_was_already_carried_out_is_harmless() -> None:
    desk = opened_normal()

    desk.planner.forget("supervise:no-such-event:0")

    assert desk.planner.pending() == []


def test_a_tier_change_while_the_case_waits_on_the_customer_keeps_the_clock_paused() -> None:
    desk = Desk()
    desk.happen(registered(CUSTOMER), T0)
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)
    desk.happen(CasePendingOnCustomer(CASE, "waiting"), T0 + timedelta(minutes=30))

    desk.happen(TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "x"), T0 + timedelta(hours=1))

    assert desk.planner.due_timers(T0 + timedelta(days=3)) == []
    applied = [fact for fact in desk.facts(SlaApplied) if isinstance(fact, SlaApplied)]
    assert [fact.vip for fact in applied] == [False]  # nothing re-applied while paused
    (resumed,) = facts_of(desk.happen(CaseResumed(CASE, "answered"), T0 + timedelta(hours=2)))
    assert isinstance(resumed, SlaResumed)
    normal = DEFAULT_POLICY.targets_for(Priority.NORMAL, False)
    vip = DEFAULT_POLICY.targets_for(Priority.NORMAL, True)
    assert vip != normal
    first = next(d for d in resumed.dues if d.target is SlaTarget.FIRST_RESPONSE)
    # VIP targets from the resume on: 30 min used before the pause, the rest of the VIP target after
    assert first.due_at == T0 + timedelta(hours=2) + (vip.first_response - timedelta(minutes=30))


# ---------------------------------------------------------------- feedback after resolution


def resolved_normal() -> Desk:
    desk = opened_normal()
    desk.happen(CaseResolved(CASE, "fixed", ""), T0 + MINUTE)
    return desk


def late_escalations(plans: list[Planned]) -> list[tuple[str, RaiseEscalation]]:
    return [(p.request_id, p.command) for p in plans if isinstance(p.command, RaiseEscalation)]


@pytest.mark.parametrize("window", [timedelta(0), timedelta(days=14)])
def test_feedback_exactly_the_window_before_the_reopening_escalates_it(window: timedelta) -> None:
    desk = Desk(replace(DEFAULT_POLICY, negative_feedback_window=window))
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)
    desk.happen(CaseResolved(CASE, "fixed", ""), T0)
    desk.happen(survey("f-1", CUSTOMER, CASE, csat=1), T0 + MINUTE)

    plans = desk.happen(CaseReopened(CASE, "not fixed"), T0 + MINUTE + window)

    assert [command for _, command in late_escalations(plans)] == [
        RaiseEscalation(CASE, EscalationReason.NEGATIVE_FEEDBACK, "feedback f-1 after resolution")
    ]


def test_each_late_reason_escalates_a_reopening_under_a_request_id_of_its_own() -> None:
    desk = resolved_normal()
    desk.happen(
        VoiceOfCustomerRecorded(
            "f-2", CUSTOMER, CASE, Channel.SOCIAL, "Still broken.", SentimentLabel.NEGATIVE, -0.8
        ),
        T0 + 2 * MINUTE,
    )
    desk.happen(survey("f-1", CUSTOMER, CASE, csat=1), T0 + 3 * MINUTE)

    cause = desk.record(CaseReopened(CASE, "not fixed"), T0 + 4 * MINUTE)
    plans = desk.planner.pending()

    # slot 0 re-applies the clock; the reasons follow from slot 2, in the order of their names
    assert [p.request_id for p in plans if isinstance(p.command, RecordSlaFact)] == [
        f"supervise:{cause.event_id}:0"
    ]
    assert late_escalations(plans) == [
        (
            f"supervise:{cause.event_id}:2",
            RaiseEscalation(
                CASE, EscalationReason.NEGATIVE_FEEDBACK, "feedback f-1 after resolution"
            ),
        ),
        (
            f"supervise:{cause.event_id}:3",
            RaiseEscalation(
                CASE, EscalationReason.NEGATIVE_SENTIMENT, "feedback f-2 after resolution"
            ),
        ),
    ]


# ---------------------------------------------------------------- a customer's cases


def test_a_tier_change_reaches_the_open_cases_of_a_customer_whose_other_case_closed() -> None:
    desk = Desk()
    desk.happen(opened("case-a", CUSTOMER, priority=Priority.NORMAL), T0)
    desk.happen(opened(CASE, CUSTOMER, priority=Priority.NORMAL), T0)
    desk.happen(CaseClosed("case-a", "duplicate"), T0 + MINUTE)

    plans = desk.happen(TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "x"), T0 + 2 * MINUTE)

    assert [(f.case_id, f.trigger) for f in facts_of(plans) if isinstance(f, SlaApplied)] == [
        (CASE, "tier_changed")
    ]


def test_a_tier_change_plans_for_the_customer_cases_in_the_order_they_were_opened() -> None:
    desk = Desk()
    for case_id in ("case-c", "case-a", "case-b"):
        desk.happen(opened(case_id, CUSTOMER, priority=Priority.NORMAL), T0)

    plans = desk.happen(TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "x"), T0 + MINUTE)

    assert [f.case_id for f in facts_of(plans)] == ["case-c", "case-a", "case-b"]


def test_a_customer_whose_only_case_closed_changes_tier_without_plans() -> None:
    desk = opened_normal()
    desk.happen(CaseClosed(CASE, "duplicate"), T0 + MINUTE)

    assert desk.happen(TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, "x"), T0 + MINUTE) == []


def test_closing_a_case_that_was_never_resolved_stops_its_timers() -> None:
    desk = opened_normal()

    desk.happen(CaseClosed(CASE, "opened by mistake"), T0 + MINUTE)

    assert desk.planner.next_timer() is None
    assert desk.planner.due_timers(T0 + NORMAL_RESOLUTION) == []
