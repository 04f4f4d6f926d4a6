"""The SLA planner: its timer queue plans exactly what a full scan of the open cases plans, under
any history and any clock instants, and a planner restored from its saved state plans exactly
what the planner it was saved from plans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case.escalation import CaseEscalationChanged, EscalationReason, RaiseEscalation
from services.case.events import (
    CaseClosed,
    CaseOpened,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    Category,
    ContactOutcome,
    ContactRecorded,
)
from services.case.sla_facts import RecordSlaFact, SlaAtRisk, SlaBreached
from services.customer.events import Tier, TierChanged
from services.events import DomainEvent
from services.sla.planner import STATE_VERSION, Planner, _timer
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, load_policy
from services.sla.timers import AT_RISK, BREACHED
from services.sla.watch import CaseWatch, Planned
from tests.support import T0, recorded, registered, survey

EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "sla-policy.example.json"
POLICIES = [DEFAULT_POLICY, load_policy(EXAMPLE_POLICY.read_text())]
CUSTOMERS = ["cust-1", "cust-2"]
CASES = ["k1", "k2", "k3", "k4", "k5"]
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


# ---------------------------------------------------------------- the reference: a full scan


def scanned_timers(planner: Planner) -> Iterator[tuple[datetime, CaseWatch, Planned]]:
    """Every timer of every open case, in the order a scan finds them (the planner's old way)."""
    for watch in planner.watches.values():
        if not watch.active or watch.paused:
            continue
        for due in watch.dues:
            if due.target in watch.fulfilled:
                continue
            if due.target not in watch.at_risk | watch.breached:
                fact = SlaAtRisk(watch.case_id, due.target, due.due_at)
                yield due.at_risk_at, watch, _timer(watch, due, AT_RISK, fact, due.at_risk_at)
            if due.target not in watch.breached:
                fact_ = SlaBreached(watch.case_id, due.target, due.due_at)
                yield due.due_at, watch, _timer(watch, due, BREACHED, fact_, due.due_at)


def scanned_due(planner: Planner, now: datetime) -> list[Planned]:
    return [planned for instant, _, planned in scanned_timers(planner) if instant <= now]


def scanned_next(planner: Planner) -> datetime | None:
    return min((instant for instant, _, _ in scanned_timers(planner)), default=None)


# ---------------------------------------------------------------- generated histories

case_ids = st.sampled_from(CASES)
Step = tuple[Any, ...]
opening = st.tuples(
    st.just("open"), case_ids, st.sampled_from(CUSTOMERS), st.sampled_from(Priority)
)
carrying_out = st.tuples(st.just("carry_out"), st.integers(0, 3))
steps = st.one_of(  # opening and carrying out plans weigh more: without them no timer runs
    opening,
    opening,
    st.tuples(
        st.sampled_from(["pending", "resume", "respond", "resolve", "reopen", "close"]), case_ids
    ),
    st.tuples(st.just("priority"), case_ids, st.sampled_from(Priority)),
    st.tuples(st.just("tier"), st.sampled_from(CUSTOMERS), st.sampled_from(Tier)),
    st.tuples(st.just("feedback"), case_ids, st.integers(1, 5)),
    st.tuples(st.just("advance"), st.integers(1, 24 * 60)),
    carrying_out,
    carrying_out,
    carrying_out,
    st.tuples(st.just("fire"), st.integers(0, 3)),
    st.tuples(st.just("look"), st.integers(-12 * 60, 48 * 60)),
)


@dataclass
class History:
    """Feeds a story to planners as the deadline process would, carrying out some of their plans."""

    planners: list[Planner]
    now: datetime = T0
    position: int = 0
    opened: set[str] = field(default_factory=set)

    def feed(self, event: DomainEvent, request_id: str = "") -> None:
        self.position += 1
        record = recorded(event, self.position, "cust-1", self.now)
        if request_id:
            record = replace(record, metadata=replace(record.metadata, request_id=request_id))
        for planner in self.planners:
            planner.observe(record, event)

    def carry_out(self, planned: list[Planned], every: int) -> None:
        """Record every `every`-th plan as the case would (the rest stay due), 0: none."""
        for index, plan in enumerate(planned):
            if not every or index % every:
                continue
            command = plan.command
            if isinstance(command, RecordSlaFact):
                self.feed(command.fact, plan.request_id)
            elif isinstance(command, RaiseEscalation):
                reasons = (command.reason,)
                changed = CaseEscalationChanged(command.case_id, 0, 2, reasons, (), reasons, "")
                self.feed(changed, plan.request_id)

    def step(self, step: Step) -> None:
        opened, lead = self.opened, self.planners[0]
        match step:
            case ("open", case_id, customer_id, priority) if case_id not in opened:
                opened.add(case_id)
                category = Category.COMPLAINT if case_id == "k5" else Category.BILLING_PAYMENT
                self.feed(
                    CaseOpened(case_id, customer_id, Channel.EMAIL, category, priority, "s", "", "")
                )
            case ("pending", case_id) if case_id in lead.watches:
                self.feed(CasePendingOnCustomer(case_id, "waiting"))
            case ("resume", case_id) if case_id in lead.watches:
                self.feed(CaseResumed(case_id, "answered"))
            case ("respond", case_id) if case_id in lead.watches:
                self.feed(
                    ContactRecorded(
                        case_id,
                        f"contact-{self.position}",
                        Channel.PHONE,
                        Direction.OUTBOUND,
                        ActorKind.AGENT,
                        "agent-1",
                        ContactOutcome.ANSWERED,
                        self.now - timedelta(minutes=30),
                        60,
                        0,
                        0,
                    )
                )
            case ("resolve", case_id) if case_id in lead.watches:
                self.feed(CaseResolved(case_id, "fixed", ""))
            case ("reopen", case_id) if case_id in lead.watches:
                self.feed(CaseReopened(case_id, "again"))
            case ("close", case_id) if case_id in lead.watches:
                self.feed(CaseClosed(case_id, "done"))
            case ("priority", case_id, priority) if case_id in lead.watches:
                self.feed(CasePriorityChanged(case_id, Priority.NORMAL, priority, "why"))
            case ("tier", customer_id, tier):
                self.feed(TierChanged(customer_id, Tier.STANDARD, tier, "contract"))
            case ("feedback", case_id, csat) if case_id in opened:
                self.feed(survey(f"fb-{self.position}", "cust-1", case_id, csat=csat))
            case ("advance", minutes):
                self.now += timedelta(minutes=minutes)
            case ("carry_out", every):
                self.carry_out(lead.pending(), every)
            case ("fire", every):
                self.carry_out(lead.due_timers(self.now), every)
            case ("look", minutes):
                instant = self.now + timedelta(minutes=minutes)
                for planner in self.planners:
                    assert planner.due_timers(instant) == scanned_due(planner, instant)


def start(policy: SlaPolicy, *planners: Planner) -> History:
    history = History(list(planners))
    history.feed(registered("cust-1"))
    history.feed(replace(registered("cust-2"), tier=Tier.VIP))
    return history


@PROPERTY_SETTINGS
@given(st.sampled_from(POLICIES), st.lists(steps, min_size=5, max_size=60))
def test_the_timer_queue_plans_what_a_full_scan_plans(policy: SlaPolicy, story: list[Step]) -> None:
    planner = Planner(policy)
    history = start(policy, planner)
    for step in story:
        history.step(step)
        assert planner.next_timer() == scanned_next(planner)
        assert planner.due_timers(history.now) == scanned_due(planner, history.now)


def test_a_timer_stays_due_until_its_fact_is_recorded_and_then_is_gone() -> None:
    planner = Planner(DEFAULT_POLICY)
    history = start(DEFAULT_POLICY, planner)
    history.step(("open", "k1", "cust-1", Priority.NORMAL))
    history.carry_out(planner.pending(), 1)  # SlaApplied: at risk after 3 h 12 min
    history.now += timedelta(hours=3, minutes=12)
    (at_risk,) = planner.due_timers(history.now)
    assert planner.due_timers(history.now) == [at_risk]  # not recorded yet (the command failed)
    assert planner.next_timer() == history.now
    history.carry_out([at_risk], 1)
    assert planner.due_timers(history.now) == []
    assert planner.next_timer() == T0 + timedelta(hours=4)  # the breach of the first response


def saved_and_restored(planner: Planner) -> Planner:
    """Through JSON text, as the deadline process saves and loads it."""
    restored = Planner.restore(planner.policy, json.loads(json.dumps(planner.state())))
    assert restored is not None
    return restored


@PROPERTY_SETTINGS
@given(
    st.sampled_from(POLICIES),
    st.lists(steps, min_size=5, max_size=60),
    st.lists(steps, min_size=1, max_size=40),
)
def test_a_restored_planner_plans_what_the_planner_that_never_stopped_plans(
    policy: SlaPolicy, before: list[Step], after: list[Step]
) -> None:
    never_stopped = Planner(policy)
    history = start(policy, never_stopped)
    for step in before:
        history.step(step)
    restored = saved_and_restored(never_stopped)
    assert restored.watches == never_stopped.watches
    history.planners.append(restored)
    for step in after:
        history.step(step)
        assert restored.pending() == never_stopped.pending()
        assert restored.next_timer() == never_stopped.next_timer()
        assert restored.due_timers(history.now) == never_stopped.due_timers(history.now)
        assert restored.watches == never_stopped.watches


def test_the_state_keeps_only_open_cases_and_vip_customers() -> None:
    planner = Planner(DEFAULT_POLICY)
    history = start(DEFAULT_POLICY, planner)
    history.step(("open", "k1", "cust-1", Priority.NORMAL))
    history.step(("open", "k2", "cust-2", Priority.HIGH))
    history.step(("close", "k1"))
    state = planner.state()
    assert [watch["case_id"] for watch in state["watches"]] == ["k2"]
    assert state["vip"] == ["cust-2"]
    assert state["policy_version"] == DEFAULT_POLICY.version
    assert STATE_VERSION >= 1


def test_a_state_planned_under_another_policy_is_not_restored() -> None:
    planner = Planner(DEFAULT_POLICY)
    start(DEFAULT_POLICY, planner).step(("open", "k1", "cust-1", Priority.NORMAL))
    assert Planner.restore(POLICIES[1], planner.state()) is None


# ---------------------------------------------------------------- when planned facts happened


def test_planned_facts_are_dated_at_the_instant_they_describe() -> None:
    planner = Planner(DEFAULT_POLICY)
    history = start(DEFAULT_POLICY, planner)
    history.step(("open", "k1", "cust-1", Priority.NORMAL))
    (applied,) = planner.pending()
    assert applied.occurred_at == T0  # the opening started the clock
    history.carry_out([applied], 1)
    late = T0 + timedelta(hours=5)  # noticed an hour after the first response was due
    at_risk, breached = planner.due_timers(late)
    assert at_risk.occurred_at == T0 + timedelta(hours=3, minutes=12)
    assert breached.occurred_at == T0 + timedelta(hours=4)
    history.now = T0 + timedelta(hours=6)
    history.feed(CasePriorityChanged("k1", Priority.NORMAL, Priority.HIGH, "outage"))
    (reapplied,) = planner.pending()
    assert reapplied.occurred_at == T0 + timedelta(hours=6)
    assert saved_and_restored(planner).pending() == [reapplied]


# ---------------------------------------------------------------- feedback after resolution


def resolved_case(policy: SlaPolicy = DEFAULT_POLICY) -> tuple[Planner, History]:
    planner = Planner(policy)
    history = start(policy, planner)
    history.step(("open", "k1", "cust-1", Priority.NORMAL))
    history.carry_out(planner.pending(), 1)
    history.step(("resolve", "k1"))
    history.carry_out(planner.pending(), 1)
    assert planner.pending() == []
    return planner, history


def escalations(planner: Planner) -> list[tuple[RaiseEscalation, datetime]]:
    return [
        (p.command, p.occurred_at)
        for p in planner.pending()
        if isinstance(p.command, RaiseEscalation)
    ]


def test_negative_feedback_after_resolution_escalates_a_reopening_within_the_window() -> None:
    planner, history = resolved_case()
    history.now += timedelta(days=1)
    history.feed(survey("fb-late", "cust-1", "k1", csat=1))
    assert planner.pending() == []  # a resolved case escalates nothing
    history.now += timedelta(days=13)  # 13 days after the feedback: within the window
    reopened_at = history.now
    history.step(("reopen", "k1"))
    raised = RaiseEscalation(
        "k1", EscalationReason.NEGATIVE_FEEDBACK, "feedback fb-late after resolution"
    )
    assert escalations(planner) == [(raised, reopened_at)]


def test_negative_feedback_older_than_the_window_does_not_escalate_a_reopening() -> None:
    planner, history = resolved_case(
        replace(DEFAULT_POLICY, negative_feedback_window=timedelta(days=2))
    )
    history.feed(survey("fb-late", "cust-1", "k1", csat=2))
    history.now += timedelta(days=2, seconds=1)
    history.step(("reopen", "k1"))
    assert escalations(planner) == []


def test_positive_feedback_after_resolution_escalates_nothing_and_a_second_reopening_neither() -> (
    None
):
    planner, history = resolved_case()
    history.feed(survey("fb-good", "cust-1", "k1", csat=5))
    history.feed(survey("fb-bad", "cust-1", "k1", csat=1))
    history.now += timedelta(hours=1)
    history.step(("reopen", "k1"))
    assert len(escalations(planner)) == 1
    history.carry_out(planner.pending(), 1)
    history.step(("resolve", "k1"))
    history.carry_out(planner.pending(), 1)
    history.step(("reopen", "k1"))  # the feedback was answered by the first reopening
    assert escalations(planner) == []


def test_a_state_saved_under_other_rules_of_the_same_version_is_not_resumed() -> None:
    planner = Planner(DEFAULT_POLICY)
    start(DEFAULT_POLICY, planner)
    state = json.loads(json.dumps(planner.state()))
    edited = replace(DEFAULT_POLICY, negative_feedback_window=timedelta(days=30))
    assert edited.version == DEFAULT_POLICY.version
    assert Planner.restore(edited, state) is None
    assert Planner.restore(DEFAULT_POLICY, state) is not None


def test_a_state_saved_before_policy_digests_were_kept_is_not_resumed() -> None:
    state = json.loads(json.dumps(Planner(DEFAULT_POLICY).state()))
    del state["policy_digest"]
    assert Planner.restore(DEFAULT_POLICY, state) is None
