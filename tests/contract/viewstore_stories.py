"""Stories the view store conformance suite applies, and what the pure projections make of them.

Each story is a `BatchLog` of real domain events with envelopes; the expected views come from the
pure projection code (`kpi_changes`, `timeline_changes`, projections.lineage, `build_report`), so
an adapter is held to the code production runs, not to numbers copied into a test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from crm.vocabulary import Channel, Direction, Priority
from projections.catalogue import Batch, news
from projections.kpi_report import KpiQuery, KpiReport
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
from services.feedback.events import ReviewSubmitted, SurveySubmitted
from tests.support import BOT, T0, BatchLog, contact, merged, opened, registered, survey

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
