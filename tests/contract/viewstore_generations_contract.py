"""The view store contract for blue/green rebuilds: generations of a projection's tables.

A new generation fills beside the active one without changing any answer; the switch brings it up
to the active one's head and makes it active at once; a live writer that commits after the switch
writes the new generation, from its checkpoint there, so nothing it writes is lost; a writer that
insists on a replaced generation is refused; one rebuild per projection at a time.
"""

from __future__ import annotations

import pytest

from crm.errors import InvalidInput, InvariantViolated
from projections.catalogue import PROJECTION_NAMES, Batch
from projections.store.port import CatchUp, Generations, ViewStore
from tests.contract.viewstore_harness import ViewStoreHarness, all_views
from tests.contract.viewstore_stories import WEEK_CASES, WEEK_CUSTOMERS, week_story

PARTITION = "crm.case.v1#0"


def _reader(batch: Batch, calls: list[tuple[int, int]]) -> CatchUp:
    """A catch-up that serves the batch's events in (after, upto] and records each call."""

    def catch_up(after: int, upto: int) -> Batch:
        calls.append((after, upto))
        return [item for item in batch if after < item[0].global_position <= upto]

    return catch_up


class GenerationsContract(ViewStoreHarness):
    """Generations, the switch, and the rebuild lock, through the port alone."""

    def _whole(self, batch: Batch) -> dict[str, object]:
        """The views of a fresh store that applied `batch` in one go."""
        fresh = self.open_store()
        fresh.apply(batch)
        return all_views(fresh, WEEK_CUSTOMERS, WEEK_CASES)

    def test_a_fresh_store_builds_no_generation(self, store: ViewStore) -> None:
        for name in PROJECTION_NAMES:
            assert store.generations(name).building is None

    @pytest.mark.parametrize("projection", PROJECTION_NAMES)
    def test_a_generation_fills_beside_the_live_one_without_changing_an_answer(
        self, store: ViewStore, projection: str
    ) -> None:
        batch = week_story().batch
        store.apply(batch[:30])
        before = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)
        live = store.generations(projection).active

        building = store.begin_generation(projection)
        store.apply(batch, projections=[projection], generation=building)

        assert building == live + 1
        assert store.generations(projection) == Generations(live, building)
        assert store.begin_generation(projection) == building  # a rerun resumes it
        assert store.checkpoint(projection, generation=building) == len(batch)
        assert store.checkpoint(projection) == 30
        assert all_views(store, WEEK_CUSTOMERS, WEEK_CASES) == before

    @pytest.mark.parametrize("projection", PROJECTION_NAMES)
    def test_the_switch_catches_up_with_the_live_head_and_the_live_writer_follows(
        self, store: ViewStore, projection: str
    ) -> None:
        """The live writer is at 40 when the rebuilt generation, at 25, is switched in: the switch
        applies 26..40 to it; the live writer's next batches land in the new generation."""
        batch = week_story().batch
        store.apply(batch[:25])
        building = store.begin_generation(projection)
        store.apply(batch[:25], projections=[projection], generation=building)
        store.apply(batch[:40])  # the live writer goes on meanwhile
        calls: list[tuple[int, int]] = []

        replaced = store.switch(projection, building, _reader(batch, calls))

        assert (replaced, calls) == (building - 1, [(25, 40)])
        assert store.generations(projection) == Generations(building)
        assert store.checkpoint(projection) == 40
        store.apply(batch[:60])  # redelivers 1..40, then 41..60
        store.apply(batch)
        store.drop_generation(projection, replaced)
        assert all_views(store, WEEK_CUSTOMERS, WEEK_CASES) == self._whole(batch)

    def test_a_generation_ahead_of_the_live_one_is_switched_in_as_it_is(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        store.apply(batch[:10])
        building = store.begin_generation("case_views")
        store.apply(batch, projections=["case_views"], generation=building)
        calls: list[tuple[int, int]] = []

        store.switch("case_views", building, _reader(batch, calls))
        store.apply(batch)

        assert calls == []
        assert store.checkpoint("case_views") == len(batch)
        assert all_views(store, WEEK_CUSTOMERS, WEEK_CASES) == self._whole(batch)

    @pytest.mark.parametrize("projection", PROJECTION_NAMES)
    def test_a_partition_writer_skips_what_the_rebuild_applied_and_loses_nothing(
        self, store: ViewStore, projection: str
    ) -> None:
        """A Kafka worker writes by partition: after the switch to a generation rebuilt from the
        store up to 35, its partition's checkpoint there is 0, so it redelivers 1..35, which
        change nothing (every projection is idempotent by event, whatever the source), and the
        rest apply."""
        batch = week_story().batch
        store.apply(batch[:15], source=PARTITION)
        building = store.begin_generation("timeline")
        store.apply(batch[:35], projections=["timeline"], generation=building)
        store.switch("timeline", building, _reader(batch, []))

        store.apply(batch, source=PARTITION)

        assert store.checkpoint("timeline", PARTITION) == len(batch)
        assert (
            all_views(store, WEEK_CUSTOMERS, WEEK_CASES)["timelines"]
            == (self._whole(batch)["timelines"])
        )

    def test_entries_written_after_a_timeline_switch_are_numbered_after_the_old_ones(
        self, store: ViewStore
    ) -> None:
        """A live watch holds the number of the last entry it read: what is written after the
        switch must come after it, or the watch would wait for nothing or skip entries."""
        batch = week_story().batch

        def live(views: ViewStore) -> int:
            """Redelivery from another source may use up numbers (PostgreSQL's identity)."""
            views.apply(batch[:20])
            views.apply(batch[:20], source=PARTITION)
            views.apply(batch[:30])
            return views.timeline_watermark()

        seen = live(store)  # a watch's last number before the switch
        building = store.begin_generation("timeline")
        store.apply(batch[:20], projections=["timeline"], generation=building)
        store.switch("timeline", building, _reader(batch, []))

        store.apply(batch)

        unswitched = self.open_store()
        expected = live(unswitched)
        unswitched.apply(batch)
        assert [row[1:] for row in store.writers_after(seen, 1_000)] == [
            row[1:] for row in unswitched.writers_after(expected, 1_000)
        ]
        assert store.writers_after(seen, 1_000)

    def test_a_replaced_generation_is_refused_to_writers_and_dropped_on_request(
        self, store: ViewStore
    ) -> None:
        batch = week_story().batch
        building = store.begin_generation("kpi_facts")
        replaced = store.switch("kpi_facts", building, _reader(batch, []))

        with pytest.raises(InvariantViolated):
            store.apply(batch, projections=["kpi_facts"], generation=replaced)
        with pytest.raises(InvariantViolated):
            store.drop_generation("kpi_facts", building)  # the active one
        with pytest.raises(InvariantViolated):
            store.switch("kpi_facts", building, _reader(batch, []))
        with pytest.raises(InvalidInput):
            store.apply(batch, generation=building)  # a generation is one projection's
        store.drop_generation("kpi_facts", replaced)
        assert store.begin_generation("kpi_facts") == building + 1
        assert store.checkpoint("kpi_facts", generation=building + 1) == 0

    def test_generations_survive_reopening(self, store: ViewStore) -> None:
        batch = week_story().batch
        building = store.begin_generation("timeline")
        store.apply(batch, projections=["timeline"], generation=building)
        store.switch("timeline", building, _reader(batch, []))
        store.apply(batch)
        before = all_views(store, WEEK_CUSTOMERS, WEEK_CASES)

        again = self.reopen(store)

        assert again.generations("timeline") == Generations(building)
        assert all_views(again, WEEK_CUSTOMERS, WEEK_CASES) == before

    def test_one_rebuild_of_a_projection_at_a_time(self, store: ViewStore) -> None:
        other = self.reopen_store(store)  # a second handle, as another process opens it
        self._opened.append(other)
        with store.rebuild_lock("timeline"):
            with (
                pytest.raises(InvariantViolated, match="another rebuild"),
                other.rebuild_lock("timeline"),
            ):
                pass
            with other.rebuild_lock("case_views"):  # another projection is free
                pass
        with other.rebuild_lock("timeline"):  # freed when the first ended
            pass
