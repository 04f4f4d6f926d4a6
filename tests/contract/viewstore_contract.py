"""The view store conformance suite: written once, subclassed by every adapter's test module.

A subclass named `Test<Adapter>` provides `make_store()` returning a fresh, empty store (called
again for every store a test needs) and `reopen_store(store)` opening the same data again. The
suite speaks only through the ViewStore port and holds the adapter to the pure projection code:
expected views are computed by it, never copied into the tests. Its parts:

- here: checkpoints per projection and source, redelivery, interleaved sources, durability;
- viewstore_timeline_contract.py: timeline order, paging, filters, merges, the watch's reads, and
  merge resolution equal to projections.lineage;
- viewstore_views_contract.py: case views, the escalation list, customer risk, KPIs, and each
  projection applied alone;
- viewstore_generations_contract.py: generations for blue/green rebuilds, the switch, the lock.
"""

from __future__ import annotations

import random
import threading

import pytest

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput
from projections.catalogue import PROJECTION_NAMES
from projections.store.port import ViewStore
from services.events import DomainEvent
from tests.contract.viewstore_generations_contract import GenerationsContract
from tests.contract.viewstore_harness import all_views, chunks
from tests.contract.viewstore_stories import WEEK_CASES, WEEK_CUSTOMERS, week_story
from tests.contract.viewstore_timeline_contract import TimelineContract
from tests.contract.viewstore_timeline_page_contract import TimelinePageContract
from tests.contract.viewstore_views_contract import ViewsContract
from tests.support import (
    BatchLog,
    positions,
    recorded,
    registered,
    snapshot,
    stream_of,
    two_customer_story,
    whole_timeline,
)

DEADLINE = 10.0
SOURCES = ("", "crm.case.v1#0", "crm.customer.v1#3")


class ViewStoreContract(TimelineContract, TimelinePageContract, ViewsContract, GenerationsContract):
    """What every view store adapter must do; subclasses only say how to make and reopen one."""

    # --- checkpoints per projection and source ------------------------------------------------

    def test_every_checkpoint_starts_at_zero(self, store: ViewStore) -> None:
        for name in PROJECTION_NAMES:
            for source in SOURCES:
                assert store.checkpoint(name, source) == 0
        assert store.timeline_watermark() == 0

    def test_apply_moves_the_checkpoint_of_every_projection_for_its_source_only(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        store.apply(batch[:10], source="crm.case.v1#0")
        store.apply(batch, source="crm.customer.v1#3")

        for name in PROJECTION_NAMES:
            assert store.checkpoint(name, "crm.case.v1#0") == 10
            assert store.checkpoint(name, "crm.customer.v1#3") == len(batch)
            assert store.checkpoint(name) == 0

    def test_applying_some_projections_moves_only_their_checkpoints(self, store: ViewStore) -> None:
        batch = week_story().batch
        store.apply(batch[:20], projections=["timeline", "kpi_facts"])
        store.apply(batch, projections=["case_views"])

        assert {name: store.checkpoint(name) for name in PROJECTION_NAMES} == {
            "timeline": 20,
            "case_views": len(batch),
            "customer_risk": 0,
            "kpi_facts": 20,
        }

    def test_events_at_or_below_a_projections_checkpoint_are_skipped(
        self, store: ViewStore
    ) -> None:
        log = BatchLog()
        mine = two_customer_story(log)
        batch = log.batch
        store.apply(batch[6:], projections=["timeline"])
        store.apply(batch)  # the timeline skips 1..15; the other projections apply them all

        assert positions(whole_timeline(store, "c-1")) == [p for p in mine["c-1"] if p > 6]
        view = store.case_view("case-1")
        assert view is not None and view.contact_count == 2
        # A different event claiming the checkpoint's own position is skipped too.
        late = registered("c-late")
        store.apply([(recorded(late, len(batch)), late)])
        assert whole_timeline(store, "c-late") == []

    def test_unknown_projection_names_are_refused_and_nothing_is_applied(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        for names in (["timeline", "views"], ["Timeline"], []):
            with pytest.raises(InvalidInput):
                store.apply(batch, projections=names)
        with pytest.raises(InvalidInput):
            store.apply([], projections=["nope"])
        with pytest.raises(InvalidInput):
            store.checkpoint("views")  # a typo must not read as "at 0"

        assert {store.checkpoint(name) for name in PROJECTION_NAMES} == {0}
        assert whole_timeline(store, "c-1") == []

    def test_an_empty_batch_changes_nothing(self, store: ViewStore) -> None:
        store.apply([])
        assert {store.checkpoint(name) for name in PROJECTION_NAMES} == {0}
        batch = week_story().batch
        store.apply(batch)
        before = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)

        store.apply([])
        store.apply([], source="crm.case.v1#0")

        assert all_views(store, WEEK_CUSTOMERS, WEEK_CASES) == before
        assert store.checkpoint("timeline", "crm.case.v1#0") == 0

    # --- redelivery and interleaving ----------------------------------------------------------

    def test_redelivering_a_batch_changes_nothing(self, store: ViewStore) -> None:
        log = BatchLog()
        two_customer_story(log)
        events = log.batch
        first, second = events[:9], events[9:]
        store.apply(first)
        store.apply(second)
        before = snapshot(store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"])

        store.apply(second)
        store.apply(first)
        store.apply([*first[4:], *second[:3]])

        assert snapshot(store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"]) == before
        assert before[0] == events[-1][0].global_position
        assert sum(len(entries) for entries in before[1].values()) == len(events)

    def test_shuffled_overlapping_and_repeated_batches_give_the_same_views(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        straight = self.open_store()
        straight.apply(batch)
        shuffle = random.Random(7).shuffle
        prefix = [*batch[:20], *batch[:5]]  # five events twice in one batch
        shuffle(prefix)
        whole = list(batch)
        shuffle(whole)

        store.apply(prefix)
        store.apply(batch[30:10:-1])  # overlaps the first, newest first
        store.apply(whole)
        store.apply(batch[::-1])

        assert all_views(store, WEEK_CUSTOMERS, WEEK_CASES) == all_views(
            straight, WEEK_CUSTOMERS, WEEK_CASES
        )

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_the_views_do_not_depend_on_how_sources_interleave(
        self, store: ViewStore, seed: int
    ) -> None:
        """As on the Kafka path: each partition of each topic (keyed by customer) is a source
        in global order of its own, and sources interleave freely."""
        batch = week_story().batch
        straight = self.open_store()
        straight.apply(batch)
        partitions: dict[str, list[tuple[RecordedEvent, DomainEvent]]] = {}
        for recorded_event, event in batch:
            topic = stream_of(event).split("-")[0]
            partition = WEEK_CUSTOMERS.index(recorded_event.metadata.customer_id) % 2
            partitions.setdefault(f"crm.{topic}.v1#{partition}", []).append((recorded_event, event))
        rng = random.Random(seed)
        pending = {source: chunks(items, rng.randint(1, 4)) for source, items in partitions.items()}
        while pending:
            source = rng.choice(sorted(pending))
            store.apply(pending[source].pop(0), source=source)
            if not pending[source]:
                del pending[source]

        interleaved = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
        expected = all_views(straight, WEEK_CUSTOMERS, WEEK_CASES)
        del interleaved["checkpoints"], expected["checkpoints"]
        assert interleaved == expected
        for source, events in partitions.items():
            assert store.checkpoint("customer_risk", source) == events[-1][0].global_position

    def test_the_same_events_from_another_source_never_double_a_timeline_entry(
        self, store: ViewStore
    ) -> None:
        log = BatchLog()
        two_customer_story(log)
        store.apply(log.batch)
        before = snapshot(store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"])

        store.apply(log.batch, source="crm.customer.v1#3")  # past that source's checkpoint (0)

        assert snapshot(store, ["c-1", "c-2"], ["case-1", "case-2", "case-9"]) == before
        timelines = before[1].values()
        assert sum(len(entries) for entries in timelines) == len(log.batch)

    # --- schema versions --------------------------------------------------------------------

    @pytest.mark.parametrize("changed", PROJECTION_NAMES)
    def test_a_projection_whose_schema_version_changed_is_rebuilt_alone(
        self, store: ViewStore, changed: str
    ) -> None:
        """Reopened by code of another schema version for one projection, the store empties that
        projection and resets its checkpoints; the others keep their views and checkpoints, and
        applying the history again refills exactly what was emptied."""
        batch = week_story().batch
        store.apply(batch[:20], source=SOURCES[0])
        store.apply(batch, source=SOURCES[1])
        before = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
        empty = all_views(self.open_store(), WEEK_CUSTOMERS, WEEK_CASES)
        emptied = {
            "timeline": {"timelines", "members"},
            "case_views": {"cases", "escalated"},
            "customer_risk": {"risk"},
            "kpi_facts": {"kpis"},
        }[changed]
        # Risk and retention read the timeline's merge links: without them c-9 counts apart.
        reads_merges = {"risk", "kpis"} if changed == "timeline" else set()
        self.record_schema_version(store, changed, 0)

        again = self.reopen(store)

        for source in SOURCES[:2]:
            for name in PROJECTION_NAMES:
                position = again.checkpoint(name, source)
                assert (position == 0) == (name == changed), (name, source)
        after = all_views(again, WEEK_CUSTOMERS, WEEK_CASES)
        for view in after.keys() - {"checkpoints"} - reads_merges:
            assert after[view] == (empty[view] if view in emptied else before[view]), view
        assert all(before[view] != empty[view] for view in emptied)  # there was something
        again.apply(batch, source=SOURCES[1])
        refilled = all_views(again, WEEK_CUSTOMERS, WEEK_CASES)
        del refilled["checkpoints"], before["checkpoints"]
        assert refilled == before

    def test_reopening_with_the_same_schema_versions_keeps_everything(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        store.apply(batch)
        before = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)

        again = self.reopen(self.reopen(store))

        assert all_views(again, WEEK_CUSTOMERS, WEEK_CASES) == before

    # --- durability and the change signal -----------------------------------------------------

    def test_views_and_checkpoints_survive_reopening(self, store: ViewStore) -> None:
        batch = week_story().batch
        store.apply(batch[:30])
        store.apply(batch[30:], source="crm.case.v1#0")
        before = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
        watermark = store.timeline_watermark()

        again = self.reopen(store)

        assert all_views(again, WEEK_CUSTOMERS, WEEK_CASES) == before
        assert again.checkpoint("kpi_facts", "crm.case.v1#0") == len(batch)
        assert again.timeline_watermark() == watermark

    def test_wait_for_change_wakes_on_notify(self, store: ViewStore) -> None:
        woke = threading.Event()

        def watch() -> None:
            store.wait_for_change(DEADLINE)
            woke.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        while not woke.is_set():
            store.notify_changed()
            woke.wait(0.01)
        watcher.join(DEADLINE)
        assert woke.is_set()
