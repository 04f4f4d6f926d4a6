"""Given/when/then tests of the timer queue the SLA planner keeps, and of the timers a case arms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm.vocabulary import Priority
from services.case.events import CaseStatus, Category
from services.case.sla_facts import SlaDue, SlaTarget
from services.sla.timers import AT_RISK, BREACHED, Timer, TimerQueue
from services.sla.watch import CaseWatch, watch_timers

T0 = datetime(2026, 7, 6, 9, 0, tzinfo=UTC)
FIRST = SlaDue(SlaTarget.FIRST_RESPONSE, T0 + timedelta(minutes=48), T0 + timedelta(hours=1))
RESOLUTION = SlaDue(SlaTarget.RESOLUTION, T0 + timedelta(hours=6), T0 + timedelta(hours=8))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def timer(at_minute: float, kind: str = AT_RISK, due: SlaDue = FIRST) -> Timer:
    return Timer(minutes(at_minute), due, kind)


# ---------------------------------------------------------------- the queue


def test_an_empty_queue_has_nothing_due_and_no_next_instant() -> None:
    queue = TimerQueue()

    assert queue.due(minutes(10_000)) == []
    assert queue.next_instant() is None
    assert list(queue) == []


def test_timers_fall_due_at_their_instant_not_before() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10), timer(20, BREACHED)))

    assert queue.due(minutes(9.99)) == []
    assert queue.due(minutes(10)) == [("case-1", timer(10))]
    assert queue.due(minutes(20)) == [("case-1", timer(10)), ("case-1", timer(20, BREACHED))]


def test_due_timers_come_by_case_rank_then_by_their_order_in_the_case() -> None:
    queue = TimerQueue()
    # Case b ranks before case a; within a case the arming order holds whatever the instants.
    queue.arm("case-a", 2, (timer(5), timer(1, BREACHED)))
    queue.arm("case-b", 1, (timer(9),))

    assert queue.due(minutes(10)) == [
        ("case-b", timer(9)),
        ("case-a", timer(5)),
        ("case-a", timer(1, BREACHED)),
    ]


def test_a_fired_timer_stays_due_until_its_case_is_armed_again() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10),))
    assert queue.due(minutes(10)) == [("case-1", timer(10))]

    # The command it led to failed: the timer is offered again.
    assert queue.due(minutes(11)) == [("case-1", timer(10))]
    assert queue.next_instant() == minutes(10)

    queue.arm("case-1", 0, ())
    assert queue.due(minutes(11)) == []
    assert queue.next_instant() is None


def test_arming_again_replaces_the_case_timers() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10), timer(30, BREACHED)))

    queue.arm("case-1", 0, (timer(40),))

    assert queue.due(minutes(35)) == []
    assert queue.next_instant() == minutes(40)
    assert list(queue) == [("case-1", timer(40))]


def test_arming_the_same_timers_again_keeps_a_fired_one_due() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10),))
    queue.due(minutes(10))

    queue.arm("case-1", 0, (timer(10),))

    assert queue.due(minutes(10)) == [("case-1", timer(10))]


def test_a_new_rank_reorders_the_due_timers() -> None:
    queue = TimerQueue()
    queue.arm("case-a", 1, (timer(5),))
    queue.arm("case-b", 2, (timer(5),))

    queue.arm("case-a", 3, (timer(5),))

    assert [case for case, _ in queue.due(minutes(5))] == ["case-b", "case-a"]


def test_a_disarmed_case_fires_nothing() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10),))
    queue.arm("case-2", 1, (timer(20),))

    queue.disarm("case-1")
    queue.disarm("case-unknown")

    assert queue.due(minutes(30)) == [("case-2", timer(20))]
    assert list(queue) == [("case-2", timer(20))]


def test_next_instant_skips_timers_of_cases_armed_since() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10),))
    queue.arm("case-2", 1, (timer(20),))

    queue.arm("case-1", 0, (timer(30),))

    assert queue.next_instant() == minutes(20)


def test_next_instant_is_the_earliest_of_fired_and_waiting_timers() -> None:
    queue = TimerQueue()
    queue.arm("case-1", 0, (timer(10), timer(50, BREACHED)))
    queue.arm("case-2", 1, (timer(20),))
    queue.due(minutes(15))

    assert queue.next_instant() == minutes(10)


# ---------------------------------------------------------------- the heap's size


def test_stale_entries_are_kept_while_live_timers_outnumber_them() -> None:
    queue = TimerQueue()
    for n in range(600):
        queue.arm(f"case-{n}", n, (timer(1_000 + n),))

    for n in range(900):
        queue.arm("case-0", 0, (timer(2_000 + n),))

    # 600 live entries and 900 stale ones: below twice the live ones plus the slack, so the heap
    # is not rebuilt (rebuilding it on every arming would cost a linear pass each time).
    assert len(queue._heap) == 1_500


def test_stale_entries_are_dropped_once_they_exceed_twice_the_live_ones_plus_a_slack() -> None:
    queue = TimerQueue()
    for n in range(600):
        queue.arm(f"case-{n}", n, (timer(1_000 + n),))
    for n in range(600):
        queue.disarm(f"case-{n}")

    sizes = []
    for n in range(2_000):
        queue.arm("case-busy", 0, (timer(3_000 + n),))
        sizes.append(len(queue._heap))

    bound = 2 * len(list(queue)) + 1024
    assert max(sizes) == bound  # grows to the bound, never past it
    assert queue.due(minutes(10_000)) == [("case-busy", timer(3_000 + 1_999))]


# ---------------------------------------------------------------- the timers of one case


def watching(**changes: object) -> CaseWatch:
    watch = CaseWatch(
        "case-1",
        "cust-1",
        Priority.HIGH,
        Category.CONTRACT,
        CaseStatus.OPEN,
        starts={SlaTarget.FIRST_RESPONSE: T0, SlaTarget.RESOLUTION: T0},
        dues=(FIRST, RESOLUTION),
    )
    for name, value in changes.items():
        setattr(watch, name, value)
    return watch


def test_an_open_case_arms_at_risk_then_breach_for_each_due() -> None:
    assert watch_timers(watching()) == (
        Timer(FIRST.at_risk_at, FIRST, AT_RISK),
        Timer(FIRST.due_at, FIRST, BREACHED),
        Timer(RESOLUTION.at_risk_at, RESOLUTION, AT_RISK),
        Timer(RESOLUTION.due_at, RESOLUTION, BREACHED),
    )


def test_a_pending_case_still_arms_its_timers_until_the_clock_is_paused() -> None:
    assert len(watch_timers(watching(status=CaseStatus.PENDING_CUSTOMER))) == 4
    assert watch_timers(watching(paused=True)) == ()


def test_a_resolved_or_closed_case_arms_nothing() -> None:
    assert watch_timers(watching(status=CaseStatus.RESOLVED)) == ()
    assert watch_timers(watching(status=CaseStatus.CLOSED)) == ()


def test_a_target_at_risk_arms_only_its_breach_and_a_breached_one_nothing() -> None:
    at_risk = watching(at_risk={SlaTarget.FIRST_RESPONSE}, breached={SlaTarget.RESOLUTION})

    assert watch_timers(at_risk) == (Timer(FIRST.due_at, FIRST, BREACHED),)


def test_a_breached_target_not_marked_at_risk_arms_nothing() -> None:
    breached = watching(breached={SlaTarget.FIRST_RESPONSE})

    assert watch_timers(breached) == (
        Timer(RESOLUTION.at_risk_at, RESOLUTION, AT_RISK),
        Timer(RESOLUTION.due_at, RESOLUTION, BREACHED),
    )


def test_a_fulfilled_target_arms_nothing() -> None:
    fulfilled = watching(fulfilled={SlaTarget.FIRST_RESPONSE})

    assert watch_timers(fulfilled) == (
        Timer(RESOLUTION.at_risk_at, RESOLUTION, AT_RISK),
        Timer(RESOLUTION.due_at, RESOLUTION, BREACHED),
    )
