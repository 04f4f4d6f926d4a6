"""KPI facts and the report's arithmetic, without a store: given events, then facts and numbers."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from crm.errors import InvalidInput
from crm.vocabulary import Actor, ActorKind, Channel, Direction
from projections.case_kpis import SLA_MET, SLA_MISSED, Span
from projections.case_view import CaseView, apply_case_event
from projections.kpi_report import KpiGroup, KpiQuery, KpiReport, NetPromoter, Ratio
from projections.kpi_tally import build_report, percentile
from projections.kpis import (
    CaseFact,
    ContactFact,
    PurchaseFact,
    SurveyFact,
    case_fact,
    contact_fact,
    kpi_changes,
    purchase_fact,
    survey_fact,
    utc_day,
)
from services.case.escalation import CaseEscalationChanged, EscalationReason
from services.case.events import (
    CaseAssigned,
    CaseClosed,
    CaseEvent,
    CasePendingOnCustomer,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseTransferred,
    ContactOutcome,
    ContactRecorded,
)
from services.case.sla_facts import SlaBreached, SlaFulfilled, SlaTarget
from services.customer.events import CancellationRecorded, PurchaseRecorded, RenewalRecorded
from services.events import DomainEvent
from services.feedback.events import ReviewSubmitted, SurveySubmitted
from tests.support import AGENT, T0, contact, opened, recorded

CUSTOMER = "c-1"
CASE = "case-1"
BOT = Actor(ActorKind.BOT, "bot-1")
MINUTE = timedelta(minutes=1)


def story(*steps: tuple[int, CaseEvent]) -> CaseView:
    """Fold events into a case view; each step is (minutes after T0, event)."""
    view: CaseView | None = None
    for position, (minutes, event) in enumerate(steps, start=1):
        at = T0 + minutes * MINUTE
        view = apply_case_event(view, event, recorded(event, position, CUSTOMER, at=at))
    assert view is not None
    return view


OPENED = opened(CASE, CUSTOMER)  # phone, billing_payment
ASSIGNED = CaseAssigned(CASE, "a-17", "billing-1", "", "")


# ---------------------------------------------------------------- contact facts


def fact_of(event: ContactRecorded, view: CaseView, at: datetime = T0) -> ContactFact | None:
    return contact_fact(recorded(event, view.last_position + 1, CUSTOMER, at=at), event, view)


def test_an_answered_inbound_call_is_offered_answered_and_handled() -> None:
    view = story((0, OPENED), (1, ASSIGNED))
    event = contact(CASE, "ct-1")  # inbound phone, answered by agent a-17: 320 s talk, 30 s ACW

    fact = fact_of(event, view, at=T0 + 5 * MINUTE)

    assert fact is not None
    assert (fact.day, fact.channel, fact.direction) == ("2026-03-02", "phone", "inbound")
    assert (fact.team, fact.category) == ("billing-1", "billing_payment")
    assert (fact.offered, fact.answered, fact.handled) == (True, True, True)
    assert (fact.talk_seconds, fact.hold_seconds, fact.after_work_seconds) == (320, 0, 30)


@pytest.mark.parametrize(
    ("channel", "direction", "outcome", "handler", "expected"),
    [
        # (offered, answered, handled)
        (Channel.CHAT, Direction.INBOUND, ContactOutcome.ABANDONED, None, (1, 0, 0)),
        (Channel.PHONE, Direction.INBOUND, ContactOutcome.VOICEMAIL, None, (1, 0, 0)),
        (Channel.CHAT, Direction.INBOUND, ContactOutcome.BOT_RESOLVED, BOT, (1, 1, 0)),
        (Channel.PHONE, Direction.OUTBOUND, ContactOutcome.ANSWERED, None, (0, 0, 1)),
        (Channel.EMAIL, Direction.INBOUND, ContactOutcome.ANSWERED, None, (0, 0, 1)),
        (Channel.CHATBOT, Direction.INBOUND, ContactOutcome.HANDED_TO_HUMAN, BOT, (0, 0, 0)),
    ],
)
def test_offered_answered_and_handled_by_channel_outcome_and_handler(
    channel: Channel,
    direction: Direction,
    outcome: ContactOutcome,
    handler: Actor | None,
    expected: tuple[int, int, int],
) -> None:
    event = contact(CASE, "ct-1", channel, direction, outcome, handler or AGENT)

    fact = fact_of(event, story((0, OPENED)))

    assert fact is not None
    assert (fact.offered, fact.answered, fact.handled) == tuple(map(bool, expected))
    if not fact.handled:  # only a human's handling time counts towards AHT
        assert (fact.talk_seconds, fact.after_work_seconds) == (0, 0)
    assert fact.team == ""  # not assigned yet


def test_the_day_is_the_utc_day_the_contact_was_recorded() -> None:
    new_york = timezone(timedelta(hours=-5))
    late_evening = datetime(2026, 3, 2, 21, 30, tzinfo=new_york)  # 02:30 UTC on the 3rd

    fact = fact_of(contact(CASE, "ct-1"), story((0, OPENED)), at=late_evening)

    assert fact is not None and fact.day == "2026-03-03"
    assert utc_day(datetime(2026, 3, 2, 23, 59)) == "2026-03-02"  # naive: taken as UTC


def test_no_contact_fact_for_other_events_a_redelivery_or_an_unknown_case() -> None:
    view = story((0, OPENED), (1, contact(CASE, "ct-1")))
    again = contact(CASE, "ct-1")

    assert contact_fact(recorded(again, 2, CUSTOMER), again, view) is None  # position 2 applied
    assert contact_fact(recorded(again, 9, CUSTOMER), again, None) is None
    assert contact_fact(recorded(ASSIGNED, 9, CUSTOMER), ASSIGNED, view) is None


# ---------------------------------------------------------------- survey and purchase facts


def test_a_survey_fact_keeps_the_scores_and_no_text() -> None:
    event = SurveySubmitted("f-1", CUSTOMER, CASE, Channel.CHAT, 4, None, 3, "great")

    fact = survey_fact(recorded(event, 7, at=T0), event)

    assert fact == SurveyFact("f-1", CUSTOMER, CASE, "2026-03-02", "chat", 4, None, 3)
    review = ReviewSubmitted("f-2", CUSTOMER, "", 5, "", "store")
    assert survey_fact(recorded(review, 8), review) is None


def test_purchases_and_renewals_are_purchase_facts() -> None:
    bought = PurchaseRecorded(CUSTOMER, "o-1", "Gold", 1000, "JPY")
    renewed = RenewalRecorded(CUSTOMER, "k-1", "Gold")
    cancelled = CancellationRecorded(CUSTOMER, "k-1", "")

    first = purchase_fact(recorded(bought, 1), bought)
    second = purchase_fact(recorded(renewed, 2), renewed)

    assert first is not None and (first.customer_id, first.kind) == (CUSTOMER, "purchase")
    assert second is not None and second.kind == "renewal"
    assert purchase_fact(recorded(cancelled, 3), cancelled) is None


# ---------------------------------------------------------------- per-case measures


def test_pending_time_is_taken_out_of_the_resolution_time() -> None:
    view = story(
        (0, OPENED),
        (10, CasePendingOnCustomer(CASE, "waiting for a photo")),
        (70, CaseResumed(CASE, "")),
        (100, CasePendingOnCustomer(CASE, "again")),
        (130, CaseResolved(CASE, "fixed", "")),  # resolved while pending: the pause ends
    )

    assert view.kpis.pending_seconds == (60 + 30) * 60
    assert view.kpis.pending_since is None
    assert view.kpis.resolution_seconds == (130 - 90) * 60
    assert case_fact(view).resolution_seconds == 40 * 60


def test_reopening_keeps_the_first_resolution_and_records_the_inactive_stretch() -> None:
    view = story(
        (0, OPENED),
        (1, ASSIGNED),
        (30, CaseResolved(CASE, "fixed", "")),
        (90, CaseReopened(CASE, "came back")),
    )
    assert view.kpis.first_resolved_at == T0 + 30 * MINUTE
    assert view.kpis.resolution_seconds is None
    assert view.kpis.inactive == (Span(T0 + 30 * MINUTE, T0 + 90 * MINUTE),)
    fact = case_fact(view)
    assert (fact.resolved_day, fact.first_resolved_day, fact.reopened) == (None, "2026-03-02", True)
    assert fact.done_utc is None

    view = story(
        (0, OPENED),
        (1, ASSIGNED),
        (30, CaseResolved(CASE, "fixed", "")),
        (90, CaseReopened(CASE, "came back")),
        (100, CaseAssigned(CASE, "a-20", "tech-1", "a-17", "billing-1")),
        (120, CaseResolved(CASE, "fixed", "")),
        (200, CaseClosed(CASE, "")),  # closing a resolved case continues its stretch
    )
    assert view.kpis.inactive == (
        Span(T0 + 30 * MINUTE, T0 + 90 * MINUTE),
        Span(T0 + 120 * MINUTE),
    )
    fact = case_fact(view)
    assert fact.resolution_seconds == 120 * 60  # the last resolution, from the opening
    assert fact.team == "tech-1"  # the team at the last resolution
    assert fact.done_utc == "2026-03-02T11:00:00.000000"
    assert json.loads(fact.inactive) == [
        ["2026-03-02T09:30:00.000000", "2026-03-02T10:30:00.000000"],
        ["2026-03-02T11:00:00.000000", None],
    ]


def test_an_unresolved_case_closed_is_inactive_but_not_resolved() -> None:
    view = story((0, OPENED), (5, CaseClosed(CASE, "customer withdrew")))

    fact = case_fact(view)

    assert (fact.resolved_day, fact.fcr, fact.done_utc) == (
        None,
        False,
        "2026-03-02T09:05:00.000000",
    )


@pytest.mark.parametrize(
    ("extra", "fcr"),
    [
        ((), True),
        ((contact(CASE, "ct-2"),), False),  # two inbound contacts
        ((CaseTransferred(CASE, "billing", "technical", "x"),), False),
        ((contact(CASE, "ct-2", direction=Direction.OUTBOUND),), False),  # a callback
    ],
)
def test_first_contact_resolution_needs_one_inbound_contact_no_transfer_no_callback(
    extra: tuple[CaseEvent, ...], fcr: bool
) -> None:
    steps: list[tuple[int, CaseEvent]] = [(0, OPENED), (1, contact(CASE, "ct-1"))]
    steps += [(2, event) for event in extra]
    view = story(*steps, (10, CaseResolved(CASE, "fixed", "")))

    assert case_fact(view).fcr is fcr
    assert case_fact(story(*steps)).fcr is False  # not resolved: no FCR either way


def bot_session(contact_id: str, outcome: ContactOutcome) -> ContactRecorded:
    return contact(CASE, contact_id, Channel.CHATBOT, outcome=outcome, handler=BOT)


CHATBOT_HANDING_OVER = bot_session("ct-0", ContactOutcome.HANDED_TO_HUMAN)


@pytest.mark.parametrize(
    ("contacts", "fcr"),
    [
        ((CHATBOT_HANDING_OVER, contact(CASE, "ct-1", Channel.CHAT)), True),
        ((CHATBOT_HANDING_OVER,), False),  # nobody but the bot: no contact with a person
        (
            (
                contact(
                    CASE, "ct-0", Channel.CHATBOT, outcome=ContactOutcome.ANSWERED, handler=BOT
                ),
                contact(CASE, "ct-1", Channel.PHONE),
                contact(CASE, "ct-2", Channel.PHONE),
            ),
            False,
        ),
    ],
)
def test_a_bot_session_is_not_a_contact_of_its_own_for_first_contact_resolution(
    contacts: tuple[ContactRecorded, ...], fcr: bool
) -> None:
    steps: list[tuple[int, CaseEvent]] = [(0, OPENED)]
    steps += [(n + 1, c) for n, c in enumerate(contacts)]
    view = story(*steps, (10, CaseResolved(CASE, "fixed", "")))

    assert case_fact(view).fcr is fcr
    assert view.kpis.inbound_contacts == len(contacts)  # every contact still counts as one


def test_bot_containment_and_hand_over_rate_count_bot_sessions() -> None:
    contained = contact(
        CASE, "b-1", Channel.CHATBOT, outcome=ContactOutcome.BOT_RESOLVED, handler=BOT
    )
    left = contact(CASE, "b-3", Channel.CHATBOT, outcome=ContactOutcome.ABANDONED, handler=BOT)
    human = contact(CASE, "p-1", Channel.PHONE)
    view = story((0, OPENED))
    facts = [
        fact_of(event, view)
        for event in (contained, replace(CHATBOT_HANDING_OVER, contact_id="b-2"), left, human)
    ]
    assert all(fact is not None for fact in facts)

    report = build_report(
        KpiQuery(date(2026, 3, 2), date(2026, 3, 3)),
        contacts=[fact for fact in facts if fact is not None],
        surveys=(),
        cases=(),
        purchases=(),
        merges={},
    )

    group = report.groups[0]
    assert group.bot_containment == Ratio(1, 3)  # resolved by the bot / bot sessions
    assert group.hand_over_rate == Ratio(1, 3)  # handed to a human / bot sessions


def test_first_response_seconds_from_opening_never_negative() -> None:
    answered = contact(CASE, "ct-1", started_at=T0 + 42 * MINUTE)
    early = contact(CASE, "ct-1", started_at=T0 - 5 * MINUTE)  # the call that opened the case

    assert case_fact(story((0, OPENED), (43, answered))).first_response_seconds == 42 * 60
    assert case_fact(story((0, OPENED), (1, early))).first_response_seconds == 0.0
    assert case_fact(story((0, OPENED))).first_response_seconds is None


def test_sla_outcome_met_only_when_both_targets_were_met_and_a_miss_is_final() -> None:
    first = SlaFulfilled(CASE, SlaTarget.FIRST_RESPONSE, True)
    resolution = SlaFulfilled(CASE, SlaTarget.RESOLUTION, True)
    breach = SlaBreached(CASE, SlaTarget.RESOLUTION, T0)
    late = SlaFulfilled(CASE, SlaTarget.RESOLUTION, False)

    only_first = story((0, OPENED), (5, first))
    both = story((0, OPENED), (5, first), (60, resolution))
    breached = story((0, OPENED), (5, first), (60, breach), (90, late))

    assert only_first.kpis.sla_outcome == "" and only_first.kpis.sla_decided_at is None
    assert (both.kpis.sla_outcome, both.kpis.sla_decided_at) == (SLA_MET, T0 + 60 * MINUTE)
    assert breached.kpis.sla_outcome == SLA_MISSED
    assert breached.kpis.sla_decided_at == T0 + 60 * MINUTE  # the breach decided it
    assert case_fact(breached).sla_decided_day == "2026-03-02"


def test_ever_escalated_stays_after_the_escalation_is_cleared() -> None:
    reason = EscalationReason.REQUESTED_WATCH
    up = CaseEscalationChanged(CASE, 0, 1, (reason,), (), (reason,), "")
    down = CaseEscalationChanged(CASE, 1, 0, (), (reason,), (), "")

    view = story((0, OPENED), (1, up), (2, down))

    assert view.escalation_level == 0
    assert case_fact(view).escalated is True
    assert case_fact(story((0, OPENED))).escalated is False


# ---------------------------------------------------------------- the report's arithmetic


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(10, 0, -1)]  # 10 .. 1, unsorted on purpose

    assert (percentile(values, 50), percentile(values, 90)) == (5.0, 9.0)
    assert (percentile([7.0], 50), percentile([7.0], 90)) == (7.0, 7.0)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # rank ceil(0.5 * 4) = 2
    assert percentile([], 50) is None


def test_ratios_without_a_denominator_have_no_value() -> None:
    assert Ratio(0, 0).value is None
    assert Ratio(1, 4).value == 0.25
    assert NetPromoter(2, 1, 1).value == 25.0  # (2 - 1) / 4 responses


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"until": date(2026, 3, 1)}, "until"),
        ({"until": date(2040, 3, 1)}, "until"),
        ({"group_by": frozenset({"week"})}, "group_by"),
        ({"channel": "fax"}, "channel"),
        ({"category": "gossip"}, "category"),
    ],
)
def test_kpi_query_validation_names_the_field(changes: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"since": date(2026, 3, 1), "until": date(2026, 3, 8)}
    with pytest.raises(InvalidInput) as raised:
        KpiQuery(**{**base, **changes})  # type: ignore[arg-type]
    assert raised.value.field == field


def case_row(**fields: object) -> CaseFact:
    base = CaseFact(
        case_id="k",
        customer_id=CUSTOMER,
        channel="phone",
        category="billing_payment",
        team="t-1",
        opened_day="2026-03-01",
        opened_utc="2026-03-01T10:00:00.000000",
        first_response_seconds=None,
        resolved_day=None,
        resolution_seconds=None,
        first_resolved_day=None,
        reopened=False,
        fcr=False,
        transfers=0,
        escalated=False,
        sla_outcome="",
        sla_decided_day=None,
        inactive="[]",
        done_utc=None,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def report_of(
    query: KpiQuery, *cases_: CaseFact, purchases: tuple[PurchaseFact, ...] = ()
) -> KpiReport:
    return build_report(
        query, contacts=(), surveys=(), cases=cases_, purchases=purchases, merges={"c-9": "c-1"}
    )


def test_backlog_counts_cases_open_at_the_end_of_each_day() -> None:
    # Opened 03-01 10:00, resolved 03-02 12:00, reopened 03-04 08:00, closed 03-05 00:00 sharp.
    case = case_row(
        inactive=json.dumps(
            [
                ["2026-03-02T12:00:00.000000", "2026-03-04T08:00:00.000000"],
                ["2026-03-05T00:00:00.000000", None],
            ]
        ),
        done_utc="2026-03-05T00:00:00.000000",
    )
    by_day = KpiQuery(date(2026, 2, 28), date(2026, 3, 7), frozenset({"day"}))

    report = report_of(by_day, case)

    backlog = {group.day: group.backlog for group in report.groups}
    # Open at the end of 03-01 (opened at 10:00) and of 03-04 (reopened at 08:00): closed at
    # 03-05 00:00 sharp, i.e. not *before* the end of 03-04. Resolved at the ends of 03-02, 03-03.
    assert backlog == {"2026-03-01": 1, "2026-03-04": 1}
    whole = report_of(KpiQuery(date(2026, 3, 1), date(2026, 3, 3)), case)
    assert whole.groups[0].backlog == 0  # resolved before 03-03 00:00
    assert report_of(KpiQuery(date(2026, 3, 1), date(2026, 3, 2)), case).groups[0].backlog == 1


def test_retention_counts_customers_again_merged_profiles_as_one() -> None:
    purchases = (
        PurchaseFact("p1", "c-1", "2026-02-20", "purchase"),
        PurchaseFact("p2", "c-2", "2026-02-21", "purchase"),
        PurchaseFact("p3", "c-3", "2026-02-22", "renewal"),
        PurchaseFact("p4", "c-9", "2026-03-03", "purchase"),  # c-9 was merged into c-1
        PurchaseFact("p5", "c-3", "2026-03-04", "renewal"),
        PurchaseFact("p6", "c-4", "2026-03-05", "purchase"),  # new: not in the base
    )
    query = KpiQuery(date(2026, 3, 1), date(2026, 3, 11))  # previous: 02-19 .. 02-28

    retention = report_of(query, purchases=purchases).groups[0].retention

    assert (retention.numerator, retention.denominator) == (2, 3)  # c-1 and c-3 of c-1, c-2, c-3
    filtered = KpiQuery(date(2026, 3, 1), date(2026, 3, 11), channel="phone")
    assert report_of(filtered, purchases=purchases).groups[0].retention == Ratio(0, 0)


def test_grouping_and_filters_and_an_empty_period_still_has_a_total_row() -> None:
    phone = case_row(case_id="a", opened_day="2026-03-02", transfers=2, escalated=True)
    chat = case_row(case_id="b", channel="chat", team="t-2", opened_day="2026-03-02")
    query = KpiQuery(date(2026, 3, 2), date(2026, 3, 3), frozenset({"channel"}))

    report = report_of(query, phone, chat)

    assert [(g.channel, g.team, g.transfers_per_case) for g in report.groups] == [
        ("chat", "", Ratio(0, 1)),
        ("phone", "", Ratio(2, 1)),
    ]
    assert report.group_by == ("channel",)
    only_t2 = report_of(KpiQuery(date(2026, 3, 2), date(2026, 3, 3), team="t-2"), phone, chat)
    assert only_t2.groups[0].escalation_rate == Ratio(0, 1)
    empty = report_of(KpiQuery(date(2020, 1, 1), date(2020, 1, 2)))
    assert len(empty.groups) == 1 and empty.groups[0].answer_rate == Ratio(0, 0)


NO_BOT = (False, False, False)  # not a bot session, so neither contained nor handed over


def test_contacts_and_surveys_are_added_up_per_group() -> None:
    day = "2026-03-02"
    contacts = [
        ContactFact(
            "e1", "k", day, "phone", "inbound", "t", "c", *(True, True, True), *NO_BOT, 300, 20, 40
        ),
        ContactFact(
            "e2", "k", day, "phone", "inbound", "t", "c", *(True, False, False), *NO_BOT, 0, 0, 0
        ),
        ContactFact(
            "e3", "k", day, "email", "outbound", "t", "c", *(False, False, True), *NO_BOT, 100, 0, 0
        ),
    ]
    surveys = [
        (SurveyFact("f1", CUSTOMER, "k", day, "email", 5, 10, 2), "t", "c"),
        (SurveyFact("f2", CUSTOMER, "", day, "email", 2, 7, None), "", ""),
        (SurveyFact("f3", CUSTOMER, "", day, "email", None, 3, 6), "", ""),
    ]
    query = KpiQuery(date(2026, 3, 2), date(2026, 3, 3))

    group = build_report(
        query, contacts=contacts, surveys=surveys, cases=(), purchases=(), merges={}
    ).groups[0]

    assert group.answer_rate == Ratio(1, 2)
    aht = group.average_handling_time
    assert (aht.handled, aht.value) == (2, (300 + 20 + 40 + 100) / 2)
    assert group.csat == Ratio(1, 2)
    assert (group.nps.promoters, group.nps.passives, group.nps.detractors) == (1, 1, 1)
    assert group.nps.value == 0.0
    assert (group.ces.total, group.ces.count, group.ces.value) == (8, 2, 4.0)
    with_team = KpiQuery(date(2026, 3, 2), date(2026, 3, 3), team="t")
    only_team = build_report(
        with_team, contacts=(), surveys=surveys, cases=(), purchases=(), merges={}
    ).groups[0]
    assert only_team.csat == Ratio(1, 1)  # surveys without a case have no team


def survey_report(*scores: tuple[int | None, int | None]) -> KpiGroup:
    """The report over one day's surveys, each given as (CSAT, NPS)."""
    day = "2026-03-02"
    surveys = [
        (SurveyFact(f"f{n}", CUSTOMER, "", day, "email", csat, nps, None), "", "")
        for n, (csat, nps) in enumerate(scores)
    ]
    query = KpiQuery(date(2026, 3, 2), date(2026, 3, 3))
    report = build_report(query, contacts=(), surveys=surveys, cases=(), purchases=(), merges={})
    return report.groups[0]


@pytest.mark.parametrize(
    ("score", "counted_as"),
    [
        (0, "detractor"),
        (6, "detractor"),
        (7, "passive"),
        (8, "passive"),
        (9, "promoter"),
        (10, "promoter"),
    ],
)
def test_nps_promoters_score_9_or_10_detractors_0_to_6(score: int, counted_as: str) -> None:
    # given one survey with this NPS score, when the report adds it up
    nps = survey_report((None, score)).nps
    # then it is counted once, in the class DOMAIN.md gives that score
    counts = {"promoter": nps.promoters, "passive": nps.passives, "detractor": nps.detractors}
    assert counts == {kind: int(kind == counted_as) for kind in counts}
    assert nps.value == {"promoter": 100.0, "passive": 0.0, "detractor": -100.0}[counted_as]


def test_nps_over_every_score_from_0_to_10() -> None:
    nps = survey_report(*((None, score) for score in range(11))).nps

    assert (nps.promoters, nps.passives, nps.detractors) == (2, 2, 7)
    assert nps.value == (2 - 7) * 100 / 11


@pytest.mark.parametrize(("score", "satisfied"), [(1, 0), (3, 0), (4, 1), (5, 1)])
def test_csat_counts_4_and_5_as_satisfied(score: int, satisfied: int) -> None:
    assert survey_report((score, None)).csat == Ratio(satisfied, 1)


def test_utc_day_of_an_aware_instant() -> None:
    assert utc_day(datetime(2026, 3, 3, 1, 0, tzinfo=timezone(timedelta(hours=9)))) == "2026-03-02"
    assert utc_day(datetime(2026, 3, 3, 1, 0, tzinfo=UTC)) == "2026-03-03"


def test_kpi_changes_file_each_fact_with_the_case_as_it_was_before_the_event() -> None:
    before, after = contact(CASE, "ct-1"), contact(CASE, "ct-2")
    survey = SurveySubmitted("f-1", CUSTOMER, CASE, Channel.PHONE, 5, None, None, "")
    bought = PurchaseRecorded(CUSTOMER, "o-1", "Gold", 1000, "JPY")
    events: list[DomainEvent] = [OPENED, before, ASSIGNED, after, survey, bought]
    batch = [(recorded(e, n, CUSTOMER), e) for n, e in enumerate(events, start=1)]

    changes = kpi_changes(batch, lambda case_id: None)

    assert [(c.event_id, c.team) for c in changes.contacts] == [
        (batch[1][0].event_id, ""),
        (batch[3][0].event_id, "billing-1"),
    ]
    assert [s.feedback_id for s in changes.surveys] == ["f-1"]
    assert [p.kind for p in changes.purchases] == ["purchase"]
    again = kpi_changes(batch[3:], lambda case_id: changes.case_views[case_id])
    assert again.contacts == []  # the case view has seen position 4 already
