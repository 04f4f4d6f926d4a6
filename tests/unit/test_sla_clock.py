"""Given/when/then tests of a case's SLA clock: how each fact folds, and which facts it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm.errors import InvalidInput, InvariantViolated
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaClock,
    SlaDue,
    SlaEvent,
    SlaFulfilled,
    SlaPaused,
    SlaResumed,
    SlaTarget,
    decide_fact,
    evolve_clock,
)

T0 = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
CASE = "case-4"
FIRST, RESOLUTION = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
FIRST_DUE = SlaDue(FIRST, T0 + timedelta(minutes=48), T0 + timedelta(hours=1))
RESOLUTION_DUE = SlaDue(RESOLUTION, T0 + timedelta(hours=6), T0 + timedelta(hours=8))
APPLIED = SlaApplied(CASE, "policy-7", False, (FIRST_DUE, RESOLUTION_DUE), "opened")


def clock(*facts: SlaEvent) -> SlaClock:
    """The clock after facts, each decided on the clock before it."""
    state = SlaClock()
    for fact in facts:
        state = evolve_clock(state, decide_fact(RecordSlaFact(CASE, fact), state))
    return state


def refusal(fact: SlaEvent, *before: SlaEvent) -> str:
    with pytest.raises(InvariantViolated) as refused:
        decide_fact(RecordSlaFact(CASE, fact), clock(*before))
    return str(refused.value)


# ---------------------------------------------------------------- the fold


def test_applying_records_the_policy_and_its_dues_and_runs_the_clock() -> None:
    state = clock(APPLIED)

    assert (state.policy_version, state.dues, state.paused) == (
        "policy-7",
        (FIRST_DUE, RESOLUTION_DUE),
        False,
    )
    assert state.due(RESOLUTION) == RESOLUTION_DUE


def test_a_pause_stops_the_clock_and_a_resumption_restarts_it_with_new_dues() -> None:
    later = SlaDue(RESOLUTION, T0 + timedelta(hours=9), T0 + timedelta(hours=11))

    paused = clock(APPLIED, SlaPaused(CASE))
    resumed = clock(
        APPLIED, SlaAtRisk(CASE, RESOLUTION, T0), SlaPaused(CASE), SlaResumed(CASE, (later,))
    )

    assert paused.paused is True
    assert (resumed.paused, resumed.dues, resumed.at_risk) == (False, (later,), frozenset())


def test_applying_again_runs_a_paused_clock_and_clears_the_risk() -> None:
    state = clock(APPLIED, SlaAtRisk(CASE, FIRST, T0), SlaPaused(CASE), APPLIED)

    assert (state.paused, state.at_risk) == (False, frozenset())


def test_applying_again_starts_fresh_outcomes_only_for_the_targets_it_applies() -> None:
    reapplied = SlaApplied(CASE, "policy-8", True, (RESOLUTION_DUE,), "reopened")

    state = clock(
        APPLIED,
        SlaBreached(CASE, FIRST, T0),
        SlaFulfilled(CASE, FIRST, False),
        SlaBreached(CASE, RESOLUTION, T0),
        SlaFulfilled(CASE, RESOLUTION, False),
        reapplied,
    )

    assert (state.breached, state.fulfilled) == (frozenset({FIRST}), frozenset({FIRST}))
    assert (state.policy_version, state.dues) == ("policy-8", (RESOLUTION_DUE,))


def test_risk_and_breach_are_kept_per_target() -> None:
    state = clock(APPLIED, SlaAtRisk(CASE, FIRST, T0), SlaBreached(CASE, RESOLUTION, T0))

    assert (state.at_risk, state.breached) == (frozenset({FIRST}), frozenset({RESOLUTION}))


def test_fulfilling_a_target_closes_its_due_and_its_risk_only() -> None:
    state = clock(
        APPLIED,
        SlaAtRisk(CASE, FIRST, T0),
        SlaAtRisk(CASE, RESOLUTION, T0),
        SlaFulfilled(CASE, FIRST, True),
    )

    assert state.dues == (RESOLUTION_DUE,)
    assert (state.at_risk, state.fulfilled) == (frozenset({RESOLUTION}), frozenset({FIRST}))
    assert state.due(FIRST) is None


def test_the_fold_refuses_what_is_no_sla_fact() -> None:
    with pytest.raises(InvariantViolated) as refused:
        evolve_clock(SlaClock(), "SlaPaused")  # type: ignore[arg-type]

    assert str(refused.value) == "unknown SLA event 'SlaPaused'"


# ---------------------------------------------------------------- the refusals


@pytest.mark.parametrize(
    ("fact", "before", "text"),
    [
        (
            SlaPaused(CASE),
            (APPLIED, SlaPaused(CASE)),
            "the SLA clock of case case-4 is paused already",
        ),
        (SlaResumed(CASE, ()), (APPLIED,), "the SLA clock of case case-4 is not paused"),
        (SlaAtRisk(CASE, FIRST, T0), (), "case case-4 has no open first_response target"),
        (
            SlaBreached(CASE, RESOLUTION, T0),
            (APPLIED, SlaFulfilled(CASE, RESOLUTION, True)),
            "case case-4 has no open resolution target",
        ),
        (
            SlaAtRisk(CASE, FIRST, T0),
            (APPLIED, SlaAtRisk(CASE, FIRST, T0)),
            "first_response of case case-4 is at risk already",
        ),
        (
            SlaBreached(CASE, FIRST, T0),
            (APPLIED, SlaBreached(CASE, FIRST, T0)),
            "first_response of case case-4 is breached already",
        ),
        (
            SlaFulfilled(CASE, RESOLUTION, True),
            (APPLIED, SlaFulfilled(CASE, RESOLUTION, True)),
            "resolution of case case-4 is fulfilled already",
        ),
        (SlaPaused("case-5"), (APPLIED,), "an SLA fact must name the case it is recorded on"),
    ],
)
def test_a_fact_that_contradicts_the_clock_is_refused_saying_why(
    fact: SlaEvent, before: tuple[SlaEvent, ...], text: str
) -> None:
    assert refusal(fact, *before) == text


@pytest.mark.parametrize(
    ("fact", "before"),
    [
        (SlaPaused(CASE), (APPLIED,)),
        (SlaResumed(CASE, ()), (APPLIED, SlaPaused(CASE))),
        (SlaAtRisk(CASE, RESOLUTION, T0), (APPLIED, SlaAtRisk(CASE, FIRST, T0))),
        (SlaBreached(CASE, FIRST, T0), (APPLIED, SlaAtRisk(CASE, FIRST, T0))),
        (SlaFulfilled(CASE, FIRST, False), (APPLIED, SlaBreached(CASE, FIRST, T0))),
        (SlaFulfilled(CASE, FIRST, True), (APPLIED, SlaFulfilled(CASE, RESOLUTION, True))),
    ],
)
def test_a_fact_consistent_with_the_clock_is_recorded_as_given(
    fact: SlaEvent, before: tuple[SlaEvent, ...]
) -> None:
    assert decide_fact(RecordSlaFact(CASE, fact), clock(*before)) == fact


def test_a_malformed_case_id_is_named() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide_fact(RecordSlaFact("case 4", SlaPaused("case 4")), clock(APPLIED))

    assert refused.value.field == "case_id"
