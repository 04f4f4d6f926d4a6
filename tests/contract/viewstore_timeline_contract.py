"""The view store contract, timeline part: order, paging, filters, merges and the live watch's
reads, and merge resolution proven equal to projections.lineage (a Hypothesis property)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crm.errors import InvalidInput
from crm.vocabulary import Channel
from projections.lineage import MergeLink, merge_link, merged_into, newer_link, timeline_members
from projections.store.port import ViewStore
from projections.store.queries import TimelinePage, TimelineQuery
from projections.timeline import TimelineEntry
from services.case.escalation import EscalationReason
from services.case.events import CaseOpened, ContactRecorded
from services.customer.events import CustomerMerged, CustomerMergeUndone
from services.events import DomainEvent
from tests.contract.viewstore_harness import ViewStoreHarness, chunks, property_settings
from tests.contract.viewstore_stories import escalation
from tests.support import (
    T0,
    BatchLog,
    contact,
    merged,
    opened,
    positions,
    recorded,
    registered,
    two_customer_story,
    unmerged,
    whole_timeline,
)

MERGEABLE = ("c-1", "c-2", "c-3", "c-4")


class TimelineContract(ViewStoreHarness):
    """Timelines, their merged members and the live watch's reads."""

    # --- order, paging, filters ---------------------------------------------------------------

    def test_timeline_in_global_order_across_profile_cases_and_feedback(
        self, store: ViewStore
    ) -> None:
        log = BatchLog()
        mine = two_customer_story(log)
        store.apply(log.batch)

        oldest_first = whole_timeline(store, "c-1")
        newest_first = whole_timeline(store, "c-1", newest_first=True)

        assert positions(oldest_first) == mine["c-1"]
        assert positions(newest_first) == mine["c-1"][::-1]
        assert positions(whole_timeline(store, "c-2")) == mine["c-2"]
        assert {entry.customer_id for entry in oldest_first} == {"c-1"}
        assert [entry.kind.value for entry in oldest_first[:4]] == [
            "customer",
            "case",
            "contact",
            "contact",
        ]
        assert oldest_first[5].summary == "Case transferred from billing to technical"
        assert oldest_first[5].actor == "agent:a-17"
        assert whole_timeline(store, "c-nobody") == []

    @pytest.mark.parametrize("newest_first", [False, True])
    @pytest.mark.parametrize("page_size", [1, 4, 5, 100])
    def test_paging_covers_every_entry_exactly_once(
        self, store: ViewStore, newest_first: bool, page_size: int
    ) -> None:
        log = BatchLog()
        log.record(registered("c-1"))
        log.record(opened("case-1", "c-1"))
        for n in range(18):
            log.record(contact("case-1", f"ct-{n}"))
        store.apply(log.batch)
        expected = positions(whole_timeline(store, "c-1", newest_first=newest_first))
        assert len(expected) == 20

        seen: list[int] = []
        pages: list[TimelinePage] = []
        token = ""
        while True:
            query = TimelineQuery("c-1", page_size, token, newest_first=newest_first)
            pages.append(store.timeline(query))
            seen += positions(pages[-1].entries)
            token = pages[-1].next_page_token
            if not token:
                break

        assert seen == expected
        assert all(len(page.entries) == page_size for page in pages[:-1])
        assert len(pages) == -(-20 // page_size)

    @pytest.mark.parametrize("newest_first", [False, True])
    def test_a_page_token_stays_valid_while_entries_are_added(
        self, store: ViewStore, newest_first: bool
    ) -> None:
        log = BatchLog()
        log.record(registered("c-1"))
        log.record(opened("case-1", "c-1"))
        log.record_all(*(contact("case-1", f"ct-{n}") for n in range(8)))
        store.apply(log.batch)

        def page(token: str = "") -> TimelinePage:
            return store.timeline(TimelineQuery("c-1", 5, token, newest_first=newest_first))

        token = page().next_page_token
        last = page(token)
        assert len(last.entries) == 5 and last.next_page_token == ""

        later = [log.record(contact("case-1", f"ct-later-{n}")).global_position for n in range(3)]
        store.apply(log.batch)
        again = page(token)

        if newest_first:  # new entries come before the token: the page after it is unchanged
            assert again == last
        else:  # the same page, which now leads on to the new entries
            assert again.entries == last.entries
            assert positions(page(again.next_page_token).entries) == later

    def test_a_contact_recorded_late_sits_where_it_happened(self, store: ViewStore) -> None:
        log = BatchLog()
        log.record(registered("c-1"), at=T0)
        log.record(opened("case-1", "c-1"), at=T0 + timedelta(minutes=1))
        log.record(contact("case-1", "ct-1"), at=T0 + timedelta(minutes=10))
        log.record(contact("case-1", "ct-2"), at=T0 + timedelta(minutes=20))
        # the mail gateway's batch, recorded last, about a mail of minute 5 (offset +09:00)
        late_at = (T0 + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=9)))
        late = log.record(contact("case-1", "ct-late", Channel.EMAIL), at=late_at)
        store.apply(log.batch)

        oldest_first = positions(whole_timeline(store, "c-1"))
        assert oldest_first == [1, 2, late.global_position, 3, 4]
        assert positions(whole_timeline(store, "c-1", newest_first=True)) == oldest_first[::-1]
        two = store.timeline(TimelineQuery("c-1", 2))
        rest = store.timeline(TimelineQuery("c-1", 10, two.next_page_token))
        assert positions(two.entries + rest.entries) == oldest_first
        in_range = whole_timeline(
            store, "c-1", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=15)
        )
        assert positions(in_range) == [late.global_position, 3]

    @pytest.mark.parametrize("newest_first", [False, True])
    @pytest.mark.parametrize("page_size", [1, 2, 3])
    def test_paging_across_entries_that_happened_at_the_same_instant(
        self, store: ViewStore, newest_first: bool, page_size: int
    ) -> None:
        log = BatchLog()
        log.record(registered("c-1"), at=T0)
        log.record(opened("case-1", "c-1"), at=T0 + timedelta(minutes=2))
        # five contacts of one instant, one recorded out of order between them
        for n in range(5):
            log.record(contact("case-1", f"ct-{n}"), at=T0 + timedelta(minutes=5))
        log.record(contact("case-1", "ct-early"), at=T0 + timedelta(minutes=1))
        log.record(contact("case-1", "ct-5"), at=T0 + timedelta(minutes=5))
        store.apply(log.batch)
        expected = [1, 8, 2, 3, 4, 5, 6, 7, 9]

        seen: list[int] = []
        token = ""
        while True:
            query = TimelineQuery("c-1", page_size, token, newest_first=newest_first)
            page = store.timeline(query)
            assert len(page.entries) <= page_size
            seen += positions(page.entries)
            token = page.next_page_token
            if not token:
                break

        assert seen == (expected[::-1] if newest_first else expected)

    def test_a_malformed_page_token_is_invalid_input(self, store: ViewStore) -> None:
        with pytest.raises(InvalidInput) as raised:
            store.timeline(TimelineQuery("c-1", page_token="not-a-token"))
        assert raised.value.field == "page_token"

    def test_filters_by_channel_kind_case_and_time(self, store: ViewStore) -> None:
        log = BatchLog()
        two_customer_story(log)
        store.apply(log.batch)
        everything = whole_timeline(store, "c-1")

        def matching(**filters: Any) -> list[TimelineEntry]:
            return whole_timeline(store, "c-1", **filters)

        phone = matching(channels=frozenset({"phone"}))
        assert {entry.channel for entry in phone} == {"phone"}
        assert len(phone) == 2  # case-1 opened on the phone, one phone contact
        chat_or_email = matching(channels=frozenset({"chat", "email"}))
        assert [entry.channel for entry in chat_or_email] == ["chat", "email", "chat"]
        feedback = matching(kinds=frozenset({"feedback"}))
        assert [entry.summary for entry in feedback] == ["CSAT 2/5 survey received by email"]
        contacts = matching(kinds=frozenset({"contact", "customer"}))
        assert {entry.kind.value for entry in contacts} == {"contact", "customer"}
        assert len(contacts) == 6
        case_2 = matching(case_id="case-2")
        assert [entry.event_type for entry in case_2] == [
            CaseOpened.TYPE,
            ContactRecorded.TYPE,
        ]
        assert matching(case_id="case-1", kinds=frozenset({"feedback"})) == feedback

        since, until = everything[3].occurred_at, everything[6].occurred_at
        window = matching(since=since, until=until)
        assert window == everything[3:6]  # since inclusive, until exclusive
        assert matching(since=since) == everything[3:]
        assert matching(until=until) == everything[:6]
        tokyo = since.astimezone(timezone(timedelta(hours=9)))
        assert matching(since=tokyo, until=until) == window
        filtered = TimelineQuery("c-1", 1, channels=frozenset({"chat", "email"}), newest_first=True)
        page = store.timeline(filtered)
        rest = store.timeline(replace(filtered, page_size=500, page_token=page.next_page_token))
        assert page.entries + rest.entries == chat_or_email[::-1]  # the token within the filters

    # --- merges -------------------------------------------------------------------------------

    def test_merged_customers_show_both_histories_and_undo_separates_them(
        self, store: ViewStore
    ) -> None:
        log = BatchLog()
        survivor = [log.record(registered("c-1")).global_position]
        duplicate = [log.record(registered("c-9", "H. Yamada")).global_position]
        duplicate.append(log.record(opened("case-9", "c-9", channel=Channel.EMAIL)).global_position)
        survivor.append(log.record(opened("case-1", "c-1")).global_position)
        merge_dup, merge_surv = (log.record(e).global_position for e in merged("c-9", "c-1"))
        survivor.append(log.record(contact("case-1", "ct-1")).global_position)
        store.apply(log.batch)

        together = sorted([*survivor, *duplicate, merge_dup, merge_surv])
        assert positions(whole_timeline(store, "c-1")) == together
        assert positions(whole_timeline(store, "c-9")) == [*duplicate, merge_dup]
        watched = store.entries_after("c-1", duplicate[0], 3)
        assert positions(watched) == together[2:5]
        assert all(entry.customer_id == "c-9" for entry in whole_timeline(store, "c-1")[1:3])
        assert store.timeline_members("c-1") == {"c-1", "c-9"}

        undo_dup, undo_surv = (log.record(e).global_position for e in unmerged("c-9", "c-1"))
        store.apply(log.batch)

        assert positions(whole_timeline(store, "c-1")) == sorted([*survivor, merge_surv, undo_surv])
        assert positions(whole_timeline(store, "c-9")) == [*duplicate, merge_dup, undo_dup]
        assert store.timeline_members("c-1") == {"c-1"}

    def test_chain_merges_resolve_recursively(self, store: ViewStore) -> None:
        log = BatchLog()
        own = {cid: log.record(registered(cid)).global_position for cid in ("c-a", "c-b", "c-c")}
        # Recorded directly (the customer service refuses this order): A -> B, then B -> C.
        log.record_all(*merged("c-a", "c-b", "m-1"), *merged("c-b", "c-c", "m-2"))
        store.apply(log.batch)

        on_c = {entry.customer_id for entry in whole_timeline(store, "c-c")}
        on_b = {entry.customer_id for entry in whole_timeline(store, "c-b")}
        assert on_c == {"c-a", "c-b", "c-c"}
        assert on_b == {"c-a", "c-b"}
        assert own["c-a"] in positions(whole_timeline(store, "c-c"))

        log.record_all(*unmerged("c-a", "c-b", "m-1"))
        store.apply(log.batch)

        assert {entry.customer_id for entry in whole_timeline(store, "c-c")} == {"c-b", "c-c"}
        assert {entry.customer_id for entry in whole_timeline(store, "c-a")} == {"c-a"}

    # --- what a live watch reads --------------------------------------------------------------

    def test_entries_after_a_position_oldest_first_up_to_a_limit(self, store: ViewStore) -> None:
        log = BatchLog()
        mine = two_customer_story(log)
        store.apply(log.batch)

        assert positions(store.entries_after("c-1", 0, 100)) == mine["c-1"]
        assert positions(store.entries_after("c-1", mine["c-1"][3], 2)) == mine["c-1"][4:6]
        assert store.entries_after("c-1", mine["c-1"][-1], 100) == []
        assert store.entries_after("c-1", 0, 0) == []

    def test_watermark_and_entries_applied_after_follow_the_order_of_writing(
        self, store: ViewStore
    ) -> None:
        # As on the Kafka path: the customer topic lags, so position 2 is written before 1.
        customer, case, later = registered("c-1"), opened("k-1", "c-1"), opened("k-2", "c-1")
        other = registered("c-2")
        store.apply([(recorded(case, 2, at=T0), case)], source="crm.case.v1#0")
        first_mark = store.timeline_watermark()
        entries, sequence = store.entries_applied_after("c-1", 0, 10)
        assert (positions(entries), sequence) == ([2], first_mark) and first_mark > 0

        store.apply([(recorded(customer, 1, at=T0), customer)], source="crm.customer.v1#0")
        store.apply([(recorded(other, 4, at=T0), other)], source="crm.customer.v1#0")
        store.apply([(recorded(later, 3, at=T0), later)], source="crm.case.v1#0")

        assert store.timeline_watermark() > first_mark
        entries, last = store.entries_applied_after("c-1", first_mark, 10)
        assert positions(entries) == [1, 3]  # written after the first, in the order written
        assert last == store.timeline_watermark()  # k-2 was written last
        assert store.entries_applied_after("c-1", last, 10) == ([], last)
        one, after_one = store.entries_applied_after("c-1", 0, 1)
        assert positions(one) == [2] and after_one == first_mark
        assert positions(store.entries_applied_after("c-2", 0, 10)[0]) == [4]

    def test_writers_after_name_each_timeline_written_in_the_order_of_writing(
        self, store: ViewStore
    ) -> None:
        customer, case, other = registered("c-1"), opened("k-1", "c-1"), registered("c-2")
        store.apply([(recorded(case, 2, at=T0), case)], source="crm.case.v1#0")
        mark = store.timeline_watermark()
        store.apply([(recorded(customer, 1, at=T0), customer)], source="crm.customer.v1#0")
        store.apply([(recorded(other, 3, at=T0), other)], source="crm.customer.v1#0")

        written = store.writers_after(0, 10)
        assert [(customer_id, kind) for _, customer_id, kind in written] == [
            ("c-1", case.TYPE),
            ("c-1", customer.TYPE),
            ("c-2", other.TYPE),
        ]
        assert written[0][0] == mark
        assert written[-1][0] == store.timeline_watermark()
        assert store.writers_after(mark, 1) == written[1:2]
        assert store.writers_after(written[-1][0], 10) == []

    # --- merge resolution: the adapter's form equals projections.lineage --------------------

    @property_settings(max_examples=100)
    @given(
        facts=st.lists(
            st.tuples(st.booleans(), st.sampled_from(MERGEABLE), st.sampled_from(MERGEABLE)),
            max_size=14,
        ),
        chunk=st.integers(min_value=1, max_value=6),
        order=st.randoms(use_true_random=False),
    )
    @example(  # a cycle of three, then one link of it undone
        facts=[
            (True, "c-1", "c-2"),
            (True, "c-2", "c-3"),
            (True, "c-3", "c-1"),
            (False, "c-2", "c-3"),
        ],
        chunk=1,
        order=random.Random(0),
    )
    @example(  # a chain, its middle undone and merged elsewhere, a profile merged into itself
        facts=[
            (True, "c-1", "c-2"),
            (True, "c-2", "c-3"),
            (False, "c-2", "c-3"),
            (True, "c-2", "c-4"),
            (True, "c-4", "c-4"),
        ],
        chunk=2,
        order=random.Random(0),
    )
    def test_merge_resolution_equals_the_pure_rule(
        self, facts: list[tuple[bool, str, str]], chunk: int, order: random.Random
    ) -> None:
        """Timeline members, timelines and customer risk all follow `lineage.timeline_members`,
        whatever the links (chains, cycles, undos) and however their batches are delivered."""
        log = BatchLog()
        for customer_id in MERGEABLE:  # one entry and one escalated case per profile
            log.record_all(
                registered(customer_id),
                opened(f"case-{customer_id}", customer_id),
                escalation(f"case-{customer_id}", 0, 1, EscalationReason.REQUESTED_WATCH),
            )
        setup = list(log.batch)
        for n, (active, duplicate, survivor) in enumerate(facts):
            fact: DomainEvent = (
                CustomerMerged(duplicate, survivor, f"m-{n}", "")
                if active
                else CustomerMergeUndone(duplicate, survivor, f"m-{n}", "")
            )
            log.record(fact)
        links: dict[str, MergeLink] = {}
        for recorded_event, event in log.batch:
            link = merge_link(recorded_event, event)
            if link is not None:
                links[link.duplicate_id] = newer_link(links.get(link.duplicate_id), link)
        merges = merged_into(links.values())
        # Batches of merge facts arrive from sources of their own, in any order.
        deliveries = chunks(log.batch[len(setup) :], chunk)
        order.shuffle(deliveries)

        with self.scratch_store() as store:
            store.apply(setup)
            for n, delivery in enumerate(deliveries):
                store.apply(delivery, source=f"crm.customer.v1#{n}")

            for customer_id in MERGEABLE:
                members = timeline_members(customer_id, merges)
                assert store.timeline_members(customer_id) == members, customer_id
                on_timeline = {e.customer_id for e in whole_timeline(store, customer_id)}
                assert on_timeline == members
                at_risk = {case for case, _ in store.customer_risk(customer_id).escalated_cases}
                assert at_risk == {f"case-{member}" for member in members}
