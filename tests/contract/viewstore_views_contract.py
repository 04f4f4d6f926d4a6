"""The view store contract, views part: case views and the escalation list, customer risk and
KPIs equal to what the pure projections compute, and each projection applied alone."""

from __future__ import annotations

import random
from datetime import timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crm.vocabulary import Channel
from projections.case_view import case_view_changes
from projections.catalogue import PROJECTION_NAMES, Batch, news
from projections.follow_ups import FollowUp, NegativeFeedback, follow_up, negative_feedback
from projections.risk import CustomerRisk
from projections.store.port import ViewStore
from projections.store.queries import EscalationQuery, FollowUpQuery
from services.case.escalation import EscalationReason
from services.case.events import CaseClosed, CaseReopened, CaseResolved, CaseStatus
from services.feedback.events import SentimentLabel, SurveySubmitted, VoiceOfCustomerRecorded
from tests.contract.viewstore_harness import (
    ViewStoreHarness,
    all_views,
    chunks,
    property_settings,
)
from tests.contract.viewstore_stories import (
    ESCALATED_IN_ORDER,
    WEEK_CASES,
    WEEK_CUSTOMERS,
    WEEK_QUERIES,
    escalation,
    escalation_story,
    pure_report,
    random_history,
    random_kpi_query,
    week_story,
)
from tests.support import (
    T0,
    BatchLog,
    merged,
    opened,
    registered,
    survey,
    two_customer_story,
    unmerged,
    whole_timeline,
)


class ViewsContract(ViewStoreHarness):
    """Case views, escalations, customer risk and KPIs."""

    # --- case views and the escalation list ---------------------------------------------------

    def test_case_view_is_kept_up_to_date(self, store: ViewStore) -> None:
        log = BatchLog()
        two_customer_story(log)
        store.apply(log.batch)

        view = store.case_view("case-1")

        assert view is not None
        assert (view.customer_id, view.status, view.department) == (
            "c-1",
            CaseStatus.RESOLVED,
            "technical",
        )
        assert (view.contact_count, view.transfer_count) == (2, 1)
        assert view.first_response_at == T0 + timedelta(minutes=30)
        assert view.resolved_at is not None
        assert store.case_view("no-such-case") is None

    def test_case_views_equal_the_pure_fold(self, store: ViewStore) -> None:
        batch = week_story().batch
        for part in chunks(batch, 7):
            store.apply(part)

        expected = case_view_changes(news(batch, 0), lambda case_id: None)
        assert sorted(expected) == WEEK_CASES
        assert {case_id: store.case_view(case_id) for case_id in WEEK_CASES} == expected

    def test_escalated_cases_most_urgent_first(self, store: ViewStore) -> None:
        store.apply(escalation_story().batch)

        def listed(**query: Any) -> list[str]:
            return [view.case_id for view in store.escalated_cases(EscalationQuery(**query))]

        assert listed() == ESCALATED_IN_ORDER
        assert store.escalated_cases(EscalationQuery()) == [
            store.case_view(case_id) for case_id in ESCALATED_IN_ORDER
        ]
        assert listed(min_level=2) == ESCALATED_IN_ORDER[:-1]
        assert listed(min_level=3) == ["k-c"]
        assert listed(team="team-b") == ["k-c", "k-b", "k-f"]
        assert listed(team="team-b", min_level=2) == ["k-c", "k-b"]
        assert listed(reason="negative_feedback") == ["k-a"]
        assert listed(reason="critical_department", min_level=2) == ["k-c"]
        assert listed(reason="sla_breached") == []
        assert listed(limit=2) == ["k-c", "k-b"]
        k_e = store.case_view("k-e")
        assert k_e is not None and k_e.escalated_since is not None
        assert listed(escalated_before=k_e.escalated_since) == ["k-a", "k-e"]  # inclusive
        tokyo = k_e.escalated_since.astimezone(timezone(timedelta(hours=9)))
        assert listed(escalated_before=tokyo - timedelta(seconds=1)) == ["k-a"]

    # --- customer risk and KPIs ---------------------------------------------------------------

    # --- the follow-up list ---------------------------------------------------------------------

    def test_follow_ups_list_resolved_cases_with_negative_feedback_since(
        self, store: ViewStore
    ) -> None:
        log = follow_up_story()
        store.apply(log.batch)

        listed = store.follow_ups(FollowUpQuery())
        assert [f.case.case_id for f in listed] == ["k4", "k2"]  # most recent feedback first
        k4, k2 = listed
        assert [f.feedback_id for f in k2.feedback] == ["fb-k2-a", "fb-k2-b"]
        assert k2.since == k2.feedback[-1].at and k2.case.status is CaseStatus.RESOLVED
        assert k4.case.status is CaseStatus.CLOSED
        assert [f.case.case_id for f in store.follow_ups(FollowUpQuery(limit=1))] == ["k4"]
        assert store.follow_ups(FollowUpQuery(team="nobody")) == []
        assert listed == pure_follow_ups(log.batch)

        log.record(CaseReopened("k2", "still charged twice"))  # off the list
        log.record(CaseResolved("k2", "refunded", ""))  # the old feedback does not bring it back
        store.apply(log.batch)
        assert [f.case.case_id for f in store.follow_ups(FollowUpQuery())] == ["k4"]
        assert store.follow_ups(FollowUpQuery()) == pure_follow_ups(log.batch)

    def test_follow_ups_do_not_depend_on_whether_feedback_or_case_arrives_first(
        self, store: ViewStore
    ) -> None:
        batch = follow_up_story().batch
        feedback = [item for item in batch if isinstance(item[1], SurveySubmitted)]
        rest = [item for item in batch if not isinstance(item[1], SurveySubmitted)]
        store.apply(feedback, source="crm.feedback.v1#0")
        store.apply(rest, source="crm.case.v1#0")
        assert store.follow_ups(FollowUpQuery()) == pure_follow_ups(batch)

    def test_an_old_escalation_change_redelivered_from_another_source_changes_no_risk(
        self, store: ViewStore
    ) -> None:
        log = BatchLog()
        log.record_all(
            registered("c-1"),
            opened("case-1", "c-1"),
            escalation("case-1", 0, 1, EscalationReason.REPEAT_CONTACT),
            escalation("case-1", 1, 3, EscalationReason.CRITICAL_DEPARTMENT),
        )
        store.apply(log.batch)
        assert store.customer_risk("c-1") == CustomerRisk("c-1", (("case-1", 3),), "")

        store.apply(log.batch[:3], source="crm.case.v1#5")  # as a re-partitioned topic would

        assert store.customer_risk("c-1") == CustomerRisk("c-1", (("case-1", 3),), "")

    def test_customer_risk_counts_merged_profiles_and_the_latest_feedback(
        self, store: ViewStore
    ) -> None:
        log = BatchLog()
        log.record_all(
            registered("c-1"),
            registered("c-9"),
            opened("case-1", "c-1"),
            opened("case-9", "c-9"),
            escalation("case-1", 0, 1, EscalationReason.REPEAT_CONTACT),
            escalation("case-9", 0, 2, EscalationReason.VIP_COMPLAINT),
            survey("f-1", "c-1", "case-1", csat=5),
        )
        store.apply(log.batch)
        assert store.customer_risk("c-1") == CustomerRisk("c-1", (("case-1", 1),), "")

        log.record_all(
            *merged("c-9", "c-1"),
            survey("f-9", "c-9", "case-9", csat=1),
            opened("case-0", "c-9"),
            escalation("case-0", 0, 1, EscalationReason.REQUESTED_WATCH),
        )
        store.apply(log.batch)
        # Highest level first, then the longest escalated (case-1 before the later case-0).
        assert store.customer_risk("c-1") == CustomerRisk(
            "c-1", (("case-9", 2), ("case-1", 1), ("case-0", 1)), "negative_feedback"
        )
        assert store.customer_risk("c-9") == CustomerRisk(
            "c-9", (("case-9", 2), ("case-0", 1)), "negative_feedback"
        )

        log.record_all(
            survey("f-2", "c-1", csat=5),  # then c-9's negative voice: the latest of both counts
            VoiceOfCustomerRecorded(
                "f-3", "c-9", "", Channel.CHAT, "meh", SentimentLabel.NEGATIVE, -0.6, "vader"
            ),
        )
        store.apply(log.batch)
        assert store.customer_risk("c-1").latest_feedback_reason == "negative_sentiment"
        log.record(survey("f-4", "c-1", csat=4))
        store.apply(log.batch)
        assert store.customer_risk("c-1").latest_feedback_reason == ""
        assert store.customer_risk("c-9").latest_feedback_reason == "negative_sentiment"

        log.record_all(escalation("case-9", 2, 0), *unmerged("c-9", "c-1"))
        store.apply(log.batch)
        assert store.customer_risk("c-1") == CustomerRisk("c-1", (("case-1", 1),), "")
        assert store.customer_risk("c-9") == CustomerRisk(
            "c-9", (("case-0", 1),), "negative_sentiment"
        )
        nobody = store.customer_risk("c-nobody")
        assert nobody == CustomerRisk("c-nobody", (), "") and not nobody.at_risk

    def test_kpis_equal_the_pure_report_over_the_pure_facts(self, store: ViewStore) -> None:
        batch = week_story().batch
        for part in chunks(batch, 5):
            store.apply(part)

        for query in WEEK_QUERIES:
            assert store.kpis(query) == pure_report(batch, query), query

    @property_settings(max_examples=25, shrink=False)
    @given(rng=st.randoms(use_true_random=False))
    def test_kpis_equal_the_pure_report_for_any_history(self, rng: random.Random) -> None:
        """The SQL only narrows the facts a period can touch; whatever it narrows, the report
        must equal the pure one (backlog and reopenings straddling periods, merges, filters)."""
        batch = random_history(rng).batch
        with self.scratch_store() as store:
            for part in chunks(batch, rng.randint(1, 20)):
                store.apply(part)
            for _ in range(6):
                query = random_kpi_query(rng)
                assert store.kpis(query) == pure_report(batch, query), query

    # --- each projection alone --------------------------------------------------------------

    def test_kpi_facts_alone_leave_the_other_views_empty(self, store: ViewStore) -> None:
        batch = week_story().batch
        store.apply(batch, projections=["kpi_facts"])

        for customer_id in WEEK_CUSTOMERS:
            assert whole_timeline(store, customer_id) == []
            assert store.customer_risk(customer_id) == CustomerRisk(customer_id, (), "")
            assert store.timeline_members(customer_id) == {customer_id}
        assert [store.case_view(case_id) for case_id in WEEK_CASES] == [None] * 4
        assert store.escalated_cases(EscalationQuery()) == []
        assert store.timeline_watermark() == 0
        # Without the timeline's merge links, retention counts c-9 apart from c-1.
        for query in WEEK_QUERIES:
            assert store.kpis(query) == pure_report(batch, query, merges_from=[]), query

    def test_the_timeline_alone_leaves_the_other_views_empty(self, store: ViewStore) -> None:
        batch = week_story().batch
        store.apply(batch, projections=["timeline"])

        assert len(whole_timeline(store, "c-1")) > 0
        assert store.timeline_members("c-1") == {"c-1", "c-9"}
        assert [store.case_view(case_id) for case_id in WEEK_CASES] == [None] * 4
        assert store.escalated_cases(EscalationQuery()) == []
        assert store.customer_risk("c-1") == CustomerRisk("c-1", (), "")
        for query in WEEK_QUERIES:
            assert store.kpis(query) == pure_report([], query)

    def test_projections_applied_together_or_one_at_a_time_give_the_same_views(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        store.apply(batch)
        apart = self.open_store()
        for name in reversed(PROJECTION_NAMES):
            for part in chunks(batch, 9):
                apart.apply(part, projections=[name])

        assert all_views(apart, WEEK_CUSTOMERS, WEEK_CASES) == all_views(
            store, WEEK_CUSTOMERS, WEEK_CASES
        )


def follow_up_story() -> BatchLog:
    """Four resolved cases of one customer; two got negative feedback after they were settled."""
    log = BatchLog()
    log.record(registered("c-1"))
    for case_id in ("k1", "k2", "k3", "k4"):
        log.record(opened(case_id, "c-1"))
    log.record(survey("fb-k1", "c-1", "k1", csat=1))  # while open: escalates then, not listed
    for case_id in ("k1", "k2", "k3", "k4"):
        log.record(CaseResolved(case_id, "fixed", ""))
    log.record(survey("fb-k2-a", "c-1", "k2", csat=2))
    log.record(survey("fb-k3", "c-1", "k3", csat=5))  # positive: not listed
    log.record(survey("fb-k2-b", "c-1", "k2", csat=1))
    log.record(CaseClosed("k4", ""))
    log.record(survey("fb-k4", "c-1", "k4", csat=1))  # after the close: listed
    return log


def pure_follow_ups(batch: Batch) -> list[FollowUp]:
    """The list as projections.follow_ups' rule makes it from the pure case views."""
    views = case_view_changes(batch, lambda case_id: None)
    found: dict[str, list[NegativeFeedback]] = {}
    for case_id, feedback in negative_feedback(batch):
        found.setdefault(case_id, []).append(feedback)
    listed = [follow_up(view, found.get(view.case_id, ())) for view in views.values()]
    chosen = [f for f in listed if f is not None]
    return sorted(chosen, key=lambda f: (-f.since.timestamp(), f.case.case_id))
