"""The view store contract, timeline paging part: the store's indexed query pages exactly as the
in-memory rule the as-of timeline uses (projections/store/memory_timeline.py), page by page and
token by token, whatever the filters, order, page size and ties in time (a Hypothesis property)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from crm.vocabulary import Channel
from projections.store.memory_timeline import timeline_page
from projections.store.queries import TimelineQuery
from projections.timeline import EntryKind, timeline_changes
from services.events import DomainEvent
from tests.contract.viewstore_harness import ViewStoreHarness, property_settings
from tests.support import T0, BatchLog, contact, opened, registered, survey

CHANNELS = (Channel.PHONE, Channel.EMAIL, Channel.CHAT)
CASES = ("case-1", "case-2")


def _event(kind: int, n: int, channel: Channel) -> DomainEvent:
    case_id = CASES[n % len(CASES)]
    if kind == 0:
        return contact(case_id, f"ct-{n}", channel=channel)
    if kind == 1:
        return survey(f"f-{n}", "c-1", case_id, channel=channel)
    return opened(f"case-x{n}", "c-1", channel=channel)


class TimelinePageContract(ViewStoreHarness):
    """GetTimeline's query over the store equals the as-of timeline's pager over the entries."""

    @property_settings(30, shrink=False)
    @given(
        st.lists(
            st.tuples(st.integers(0, 2), st.sampled_from(CHANNELS), st.integers(0, 5)),
            min_size=1,
            max_size=25,
        ),
        st.data(),
    )
    def test_the_store_pages_as_the_in_memory_rule(
        self, drawn: list[tuple[int, Channel, int]], data: st.DataObject
    ) -> None:
        log = BatchLog()
        log.record(registered("c-1"), at=T0)
        log.record_all(opened(CASES[0], "c-1"), opened(CASES[1], "c-1"))
        for n, (kind, channel, minutes) in enumerate(drawn):
            # Few distinct instants, recorded out of order: ties and late entries on purpose.
            log.record(_event(kind, n, channel), at=T0 + timedelta(minutes=minutes))
        entries = timeline_changes(log.batch).entries
        for _ in range(3):
            channels = st.sets(st.sampled_from([c.value for c in CHANNELS]))
            query = TimelineQuery(
                "c-1",
                page_size=data.draw(st.integers(1, 6)),
                newest_first=data.draw(st.booleans()),
                channels=frozenset(data.draw(channels)),
                kinds=frozenset(data.draw(st.sets(st.sampled_from(list(EntryKind)), max_size=2))),
                case_id=data.draw(st.sampled_from(["", *CASES])),
                since=data.draw(st.none() | st.just(T0 + timedelta(minutes=1))),
                until=data.draw(st.none() | st.just(T0 + timedelta(minutes=4))),
            )
            with self.scratch_store() as store:
                store.apply(log.batch)
                while True:
                    stored = store.timeline(query)
                    in_memory = timeline_page(entries, query)
                    assert in_memory == stored, query
                    if not stored.next_page_token:
                        break
                    query = replace(query, page_token=stored.next_page_token)
