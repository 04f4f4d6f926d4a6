"""Stories the view store conformance suite applies, and what the pure projections make of them.

Each story is a `BatchLog` of real domain events with envelopes; the expected views come from the
pure projection code (`kpi_changes`, `timeline_changes`, projections.lineage, `build_report`), so
an adapter is held to the code production runs, not to numbers copied into a test.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from crm.vocabulary import Channel, Direction, Priority
from projections.catalogue import Batch, news
from projections.kpi_report import DIMENSIONS, KpiQuery, KpiReport
from projections.kpi_tally import build_report
from projections.kpis import kpi_changes
from projections.lineage import merged_into
from projections.timeline import timeline_changes
from services.case.escalation import CaseEscalationChanged, EscalationReason
from services.case.events import (
    CaseAssigned,
    CaseClosed,
    CasePendingOnCustomer,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseTransferred,
    ContactOutcome,
)
from services.case.sla_facts import (
    SlaApplied,
    SlaBreached,
    SlaDue,
    SlaFulfilled,
    SlaPaused,
    SlaTarget,
)
from services.customer.events import PurchaseRecorded, RenewalRecorded
from services.events import DomainEvent
from services.feedback.events import ReviewSubmitted, SurveySubmitted
from tests.support import (
    AGENT,
    BOT,
    T0,
    BatchLog,
    contact,
    merged,
    opened,
    registered,
    survey,
    unmerged,
)

FIRST, RESOLUTION = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
WEEK_START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WEEK = (date(2026, 3, 1), date(2026, 3, 8))
WEEK_CUSTOMERS = ["c-1", "c-2", "c-3", "c-9"]
WEEK_CASES = ["case-1", "case-2", "case-3", "case-4"]


def escalation(
    case_id: str, from_level: int, to_level: int, *reasons: EscalationReason
) -> CaseEscalationChanged:
    """A change of the case's escalation to `to_level` for `reasons` (all new, for brevity)."""
    return CaseEscalationChanged(case_id, from_level, to_level, reasons, (), reasons, "")


def sla_applied(case_id: str, first_due: datetime, resolution_due: datetime) -> SlaApplied:
    dues = (SlaDue(FIRST, first_due, first_due), SlaDue(RESOLUTION, resolution_due, resolution_due))
    return SlaApplied(case_id, "test-1", False, dues, "opened")


def week_story() -> BatchLog:
    """A week of support for four customers, one event every three hours: every kind of KPI fact
    (contacts, surveys, purchases and renewals, case facts with SLA outcomes, reopenings,
    transfers and escalations), escalated cases, negative feedback and a merge (c-9 into c-1)."""
    log = BatchLog(WEEK_START, timedelta(hours=3))

    def hours(n: int) -> datetime:
        """An SLA due `n` hours after the story's "now"."""
        return log.now + timedelta(hours=n)

    for customer_id in WEEK_CUSTOMERS:
        log.record(registered(customer_id))
    log.record_all(
        PurchaseRecorded("c-1", "o-1", "Gold", 1000, "JPY"),
        RenewalRecorded("c-2", "k-2", "Silver"),
        PurchaseRecorded("c-9", "o-9", "Gold", 1000, "JPY"),
        opened("case-1", "c-1"),
    )
    log.record(sla_applied("case-1", hours(4), hours(24)))
    log.record(contact("case-1", "ct-1", started_at=log.now))
    log.record_all(
        CaseAssigned("case-1", "a-17", "team-a", "", ""),
        opened("case-2", "c-2", channel=Channel.CHAT, priority=Priority.LOW),
        contact("case-2", "ct-2", Channel.CHAT, outcome=ContactOutcome.ABANDONED, handler=BOT),
        CaseAssigned("case-2", "a-2", "team-b", "", ""),
        escalation("case-2", 0, 1, EscalationReason.REPEAT_CONTACT),
        opened("case-3", "c-9", channel=Channel.EMAIL),
        CaseAssigned("case-3", "a-3", "team-a", "", ""),
    )
    log.record(sla_applied("case-3", hours(1), hours(48)))
    log.record_all(
        escalation("case-3", 0, 2, EscalationReason.VIP_COMPLAINT),
        *merged("c-9", "c-1"),
        SurveySubmitted("f-1", "c-1", "case-1", Channel.PHONE, 5, 6, 2, ""),
        SlaFulfilled("case-1", FIRST, True),
        CaseResolved("case-1", "refunded", ""),
        SlaFulfilled("case-1", RESOLUTION, True),
        CaseReopened("case-1", "refund never came"),
        contact("case-2", "ct-3", Channel.EMAIL, Direction.OUTBOUND),
        CaseTransferred("case-2", "billing", "development", "a bug"),
        escalation("case-2", 1, 3, EscalationReason.CRITICAL_DEPARTMENT),
        SlaBreached("case-3", FIRST, log.now),
        escalation("case-3", 2, 2, EscalationReason.VIP_COMPLAINT, EscalationReason.SLA_BREACHED),
        survey("f-2", "c-2", "case-2", csat=1, channel=Channel.CHAT),
        CaseResolved("case-1", "refunded again", ""),
        PurchaseRecorded("c-1", "o-2", "Gold", 1000, "JPY"),
        RenewalRecorded("c-2", "k-2", "Silver"),
        CaseClosed("case-1", "done"),
        opened("case-4", "c-3", channel=Channel.SOCIAL, priority=Priority.URGENT),
    )
    log.record(sla_applied("case-4", hours(2), hours(8)))
    log.record_all(
        escalation("case-4", 0, 1, EscalationReason.REQUESTED_WATCH),
        CasePendingOnCustomer("case-4", "waiting for a photo"),
        SlaPaused("case-4"),
        ReviewSubmitted("f-3", "c-3", "case-4", 5, "Lovely", "shop"),
        SurveySubmitted("f-4", "c-3", "", Channel.PHONE, None, 9, 3, ""),  # no case: no team
        PurchaseRecorded("c-9", "o-3", "Gold", 1000, "JPY"),
        contact("case-3", "ct-4", Channel.EMAIL, Direction.OUTBOUND),
        escalation("case-3", 2, 0),
        CaseResolved("case-3", "answered", ""),
    )
    return log


WEEK_QUERIES = [
    KpiQuery(*WEEK),
    KpiQuery(*WEEK, group_by=frozenset({"day"})),
    KpiQuery(*WEEK, group_by=frozenset({"channel", "team"})),
    KpiQuery(*WEEK, group_by=frozenset({"day", "channel", "team", "category"})),
    KpiQuery(*WEEK, group_by=frozenset({"category"}), team="team-a"),
    KpiQuery(*WEEK, group_by=frozenset({"day"}), channel="phone"),
    KpiQuery(date(2026, 3, 3), date(2026, 3, 5)),  # cuts the story: cases and retention straddle
    KpiQuery(date(2026, 3, 3), date(2026, 3, 5), group_by=frozenset({"day", "team"})),
    KpiQuery(date(2026, 3, 5), date(2026, 3, 6)),
    KpiQuery(date(2020, 1, 1), date(2020, 1, 2)),  # nothing happened
]


def pure_report(batch: Batch, query: KpiQuery, merges_from: Batch | None = None) -> KpiReport:
    """The report the pure code gives for a whole history: facts from `kpi_changes`, survivors
    from the timeline's merge links (of `merges_from`, default the same history), added up by
    `build_report`."""
    history = news(batch, 0)
    facts = kpi_changes(history, lambda case_id: None)
    cases = {fact.case_id: fact for fact in facts.cases}
    surveys = [
        (s, cases[s.case_id].team, cases[s.case_id].category) if s.case_id in cases else (s, "", "")
        for s in facts.surveys
    ]
    links = timeline_changes(news(batch if merges_from is None else merges_from, 0)).merge_links
    merges = merged_into(links.values())
    return build_report(
        query,
        contacts=facts.contacts,
        surveys=surveys,
        cases=facts.cases,
        purchases=facts.purchases,
        merges=merges,
    )


ESCALATED_IN_ORDER = ["k-c", "k-b", "k-a", "k-e", "k-d", "k-f"]


def escalation_story() -> BatchLog:
    """Escalated cases one minute apart, in the order supervisors should see them:
    level 3 first; at level 2 the nearest SLA due, then those without one (k-d is paused)
    escalated longest ago; then level 1. k-g was escalated and cleared."""
    log = BatchLog()
    log.record_all(
        opened("k-a", "c-1"),
        CaseAssigned("k-a", "a-1", "team-a", "", ""),
        sla_applied("k-a", T0 + timedelta(hours=5), T0 + timedelta(hours=9)),
        escalation("k-a", 0, 2, EscalationReason.REQUESTED_ESCALATION),
        opened("k-e", "c-2"),
        escalation("k-e", 0, 2, EscalationReason.VIP_COMPLAINT),
        opened("k-c", "c-2"),
        CaseAssigned("k-c", "a-2", "team-b", "", ""),
        escalation("k-c", 0, 3, EscalationReason.CRITICAL_DEPARTMENT),
        opened("k-b", "c-3"),
        CaseAssigned("k-b", "a-2", "team-b", "", ""),
        sla_applied("k-b", T0 + timedelta(hours=2), T0 + timedelta(hours=6)),
        escalation("k-b", 0, 2, EscalationReason.REOPENED),
        opened("k-d", "c-3"),
        sla_applied("k-d", T0 + timedelta(hours=1), T0 + timedelta(hours=3)),
        escalation("k-d", 0, 2, EscalationReason.REQUESTED_ESCALATION),
        SlaPaused("k-d"),
        opened("k-f", "c-1"),
        CaseAssigned("k-f", "a-1", "team-b", "", ""),
        escalation("k-f", 0, 1, EscalationReason.NEGATIVE_SENTIMENT),
        opened("k-g", "c-1"),
        escalation("k-g", 0, 2, EscalationReason.REQUESTED_ESCALATION),
        escalation("k-g", 2, 0),
        escalation(
            "k-a",
            2,
            2,
            EscalationReason.REQUESTED_ESCALATION,
            EscalationReason.NEGATIVE_FEEDBACK,
        ),
    )
    return log


HISTORY_CUSTOMERS = ("c-1", "c-2", "c-3", "c-4")
HISTORY_START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def random_history(rng: random.Random) -> BatchLog:
    """Any mix of what projections see, over a month: cases opened on every channel and taken
    through every case event in any order (projections do not judge transitions), SLA facts,
    escalations, surveys with or without a case, purchases, renewals, merges and undos; gaps
    from a minute to over a day, so facts straddle days and periods."""
    log = BatchLog(HISTORY_START)
    for customer_id in HISTORY_CUSTOMERS:
        log.record(registered(customer_id))
    cases: list[str] = []
    levels: dict[str, int] = {}
    for n in range(rng.randint(10, 60)):
        log.now += timedelta(minutes=rng.choice([1, 30, 300, 1440, 2000]))
        customer_id = rng.choice(HISTORY_CUSTOMERS)
        if not cases or rng.random() < 0.1:
            case_id = f"k-{len(cases)}"
            channel, priority = rng.choice(list(Channel)), rng.choice(list(Priority))
            log.record(opened(case_id, customer_id, channel, priority))
            cases.append(case_id)
            levels[case_id] = 0
            continue
        case_id = rng.choice(cases)
        roll = rng.random()
        if roll < 0.08:
            to_level = rng.randint(0, 3)
            reasons = [EscalationReason.REQUESTED_WATCH] if to_level else []
            log.record(escalation(case_id, levels[case_id], to_level, *reasons))
            levels[case_id] = to_level
        elif roll < 0.14:
            duplicate, survivor = rng.sample(HISTORY_CUSTOMERS, 2)
            change = merged if rng.random() < 0.6 else unmerged
            log.record_all(*change(duplicate, survivor, f"m-{n}"))
        else:
            log.record(rng.choice(_facts(rng, case_id, customer_id, log.now, f"{n}")))
    return log


def _facts(
    rng: random.Random, case_id: str, customer_id: str, now: datetime, n: str
) -> list[DomainEvent]:
    """One of each other fact a history may hold next, with random details."""
    target = rng.choice([FIRST, RESOLUTION])
    return [
        contact(
            case_id,
            f"ct-{n}",
            rng.choice(list(Channel)),
            rng.choice(list(Direction)),
            rng.choice(list(ContactOutcome)),
            rng.choice([BOT, AGENT]),
            started_at=now - timedelta(minutes=rng.choice([0, 5, 3000])),
        ),
        CaseAssigned(case_id, "a-1", rng.choice(["t-1", "t-2"]), "", ""),
        CaseTransferred(case_id, "billing", "technical", ""),
        CaseResolved(case_id, "fixed", ""),
        CaseReopened(case_id, ""),
        CaseClosed(case_id, ""),
        CasePendingOnCustomer(case_id, ""),
        CaseResumed(case_id, ""),
        sla_applied(
            case_id,
            now + timedelta(hours=rng.randint(1, 50)),
            now + timedelta(hours=rng.randint(1, 80)),
        ),
        SlaFulfilled(case_id, target, rng.random() < 0.5),
        SlaBreached(case_id, target, now),
        SurveySubmitted(
            f"f-{n}",
            customer_id,
            rng.choice(["", case_id]),
            rng.choice(list(Channel)),
            rng.choice([None, 1, 3, 5]),
            rng.choice([None, 0, 7, 10]),
            rng.choice([None, 1, 7]),
            "",
        ),
        PurchaseRecorded(customer_id, f"o-{n}", "Gold", 1000, "JPY"),
        RenewalRecorded(customer_id, f"r-{n}", "Silver"),
    ]


def random_kpi_query(rng: random.Random) -> KpiQuery:
    """A period that may start before the history and end after it, grouped and filtered
    any way."""
    since = HISTORY_START.date() + timedelta(days=rng.randint(-3, 40))
    return KpiQuery(
        since,
        since + timedelta(days=rng.randint(1, 20)),
        frozenset(d for d in DIMENSIONS if rng.random() < 0.4),
        channel=rng.choice(["", "", "phone", "email"]),
        team=rng.choice(["", "", "t-1", "t-2"]),
        category=rng.choice(["", "", "billing_payment"]),
    )
