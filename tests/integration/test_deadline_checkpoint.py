"""The deadline process resumes from its checkpoint: a restart reads only the events after the
saved position and plans exactly what a process that never stopped plans; a state saved by
another planner version, or for another store, is ignored; a crash between saves records nothing
twice."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bench.history import HistoryWriter
from crm.envelope import RecordedEvent
from crm.eventstore.port import EventStore
from crm.eventstore.sqlite import SqliteEventStore
from services.bootstrap import CODEC, build_applications
from services.case.application import CaseApplication
from services.sla.checkpoint import DeadlineCheckpoint, SavedState
from services.sla.planner import STATE_VERSION, Planner
from services.sla.policy import DEFAULT_POLICY
from services.sla.process import DeadlineProcess
from tests.grpc_client import poll


@dataclass
class CountingStore:
    """The event store, counting the events each `read_all` hands out and where it started."""

    store: EventStore
    reads: list[tuple[int, int]] = field(default_factory=list)  # (after, events returned)

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        batch = self.store.read_all(after=after, limit=limit)
        self.reads.append((after, len(batch)))
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    @property
    def events_read(self) -> int:
        return sum(count for _, count in self.reads)


@dataclass
class World:
    """A realistic history (bench.history) with the deadline process following it on its clock."""

    path: Path
    store: SqliteEventStore
    writer: HistoryWriter
    cases: CaseApplication

    def clock(self) -> datetime:
        return self.writer.now

    def process(
        self, checkpoint: DeadlineCheckpoint | None = None, **options: Any
    ) -> DeadlineProcess:
        return self.process_on(self.store, checkpoint, **options)

    def process_on(
        self, store: object, checkpoint: DeadlineCheckpoint | None, **options: Any
    ) -> DeadlineProcess:
        return DeadlineProcess(
            cast(EventStore, store),
            self.cases,
            DEFAULT_POLICY,
            self.clock,
            CODEC,
            checkpoint=checkpoint,
            **options,
        )

    def checkpoint(self) -> DeadlineCheckpoint:
        return DeadlineCheckpoint(self.path / "deadlines.db")

    def grow(self, process: DeadlineProcess | None, until_position: int) -> None:
        """Commands, with the process (if running) catching up and acting every ten."""
        while self.store.last_position() < until_position:
            self.writer.write(10)
            if process is not None:
                process.run_once()

    def recorded_twice(self) -> list[tuple[str, str]]:
        """(request id, event type) of the deadline process's facts recorded more than once (a
        command records several events under one request id, but each type once)."""
        seen: Counter[tuple[str, str]] = Counter()
        position = 0
        while batch := self.store.read_all(after=position, limit=1000):
            seen.update((r.metadata.request_id, r.type) for r in batch)
            position = batch[-1].global_position
        ours = ("supervise:", "sla-")
        return [key for key, n in seen.items() if n > 1 and key[0].startswith(ours)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SqliteEventStore(tmp_path / "events.db")
    writer = HistoryWriter(store, seed=7)
    cases = build_applications(store, lambda: writer.now + timedelta(days=1)).cases
    yield World(tmp_path, store, writer, cases)
    store.close()


def same_plans(one: Planner, other: Planner, now: datetime) -> None:
    assert one.watches == other.watches
    assert one.pending() == other.pending()
    assert one.next_timer() == other.next_timer()
    assert one.due_timers(now) == other.due_timers(now)


def test_a_restart_reads_only_the_events_after_the_save_and_plans_as_if_it_never_stopped(
    world: World,
) -> None:
    checkpoint = world.checkpoint()
    first = world.process(checkpoint)
    world.grow(first, 1_000)
    first.stop()  # saves
    saved = first.position
    assert checkpoint.checkpoint("deadline-process") == saved >= 1_000
    world.grow(None, saved + 200)  # history goes on while the process is down

    counting = CountingStore(world.store)
    restarted = world.process_on(counting, world.checkpoint())
    restarted.catch_up()
    assert counting.reads[0][0] == saved
    assert counting.events_read == world.store.last_position() - saved

    first.catch_up()  # the first process's planner never stopped folding history
    from_zero = world.process()
    from_zero.catch_up()
    same_plans(restarted.planner, first.planner, world.clock())
    # Replaying from event 0 also plans again what the case refused long ago (a running process
    # forgot those when they were refused): the rest is the same.
    assert restarted.planner.watches == from_zero.planner.watches
    assert set(restarted.planner.pending()) <= set(from_zero.planner.pending())
    assert restarted.planner.due_timers(world.clock()) == from_zero.planner.due_timers(
        world.clock()
    )
    assert restarted.run_once() > 0  # what fell due while it was down
    assert first.run_once() == from_zero.run_once() == 0  # carried out once, by the restarted
    checkpoint.close()


def test_a_restarted_process_records_what_fell_due_while_it_was_down_once(world: World) -> None:
    checkpoint = world.checkpoint()
    first = world.process(checkpoint)
    world.grow(first, 600)
    first.close()
    world.grow(None, 900)
    world.writer.now += timedelta(days=2)  # every running timer is due by now
    restarted = world.process(world.checkpoint())
    assert restarted.run_once() > 0
    assert world.process().run_once() == 0  # a process replaying from 0 finds nothing left
    assert world.recorded_twice() == []
    restarted.close()


def test_a_state_saved_by_another_planner_version_is_ignored(world: World) -> None:
    checkpoint = world.checkpoint()
    first = world.process(checkpoint)
    world.grow(first, 300)
    first.stop()
    stale = checkpoint.load()
    assert stale is not None and stale.version == STATE_VERSION
    checkpoint.save(SavedState(stale.position, STATE_VERSION + 1, stale.state))

    counting = CountingStore(world.store)
    restarted = world.process_on(counting, world.checkpoint())
    restarted.catch_up()
    assert counting.reads[0][0] == 0
    assert counting.events_read == world.store.last_position()
    same_plans(restarted.planner, first.planner, world.clock())
    restarted.stop()  # replaces the stale state with its own
    replaced = checkpoint.load()
    assert replaced is not None and replaced.version == STATE_VERSION
    checkpoint.close()


def test_a_state_beyond_the_stores_end_belongs_to_another_store_and_is_ignored(
    world: World,
) -> None:
    world.grow(None, 50)
    checkpoint = world.checkpoint()
    state = json.dumps(Planner(DEFAULT_POLICY).state())
    checkpoint.save(SavedState(world.store.last_position() + 1, STATE_VERSION, state))
    counting = CountingStore(world.store)
    world.process_on(counting, checkpoint).catch_up()
    assert counting.reads[0][0] == 0
    checkpoint.close()


def test_a_crash_between_saves_derives_the_same_commands_and_records_nothing_twice(
    world: World,
) -> None:
    checkpoint = world.checkpoint()
    first = world.process(checkpoint, save_every_events=10**9, save_every_seconds=10**9)
    world.grow(first, 400)
    first.save()
    saved = first.position
    world.grow(first, 900)  # facts recorded after the save, then a crash: no save
    world.writer.now += timedelta(hours=6)
    first.catch_up()
    planned = {
        p.request_id for p in first.planner.pending() + first.planner.due_timers(world.clock())
    }
    assert planned  # the crash strikes with commands planned but not carried out
    positions_before = world.store.last_position()

    counting = CountingStore(world.store)
    restarted = world.process_on(counting, world.checkpoint())
    restarted.catch_up()
    assert counting.reads[0][0] == saved
    again = {p.request_id for p in restarted.planner.pending()} | {
        p.request_id for p in restarted.planner.due_timers(world.clock())
    }
    assert again == planned  # the same commands, with the same request ids
    recorded = restarted.run_once()
    assert recorded > 0
    assert first.run_once() == 0  # the crashed process's plans were carried out once
    assert world.store.last_position() > positions_before
    assert world.recorded_twice() == []
    checkpoint.close()


def test_plans_not_carried_out_when_the_state_was_saved_are_carried_out_after_a_restart(
    world: World,
) -> None:
    world.grow(None, 500)  # a backlog: the process saves while catching up, plans pending
    first = world.process(world.checkpoint(), save_every_events=100)
    first.catch_up()  # then crashes before carrying anything out
    saved = world.checkpoint().load()
    assert saved is not None and json.loads(saved.state)["pending"]
    restarted = world.process(world.checkpoint())
    restarted.catch_up()
    same_plans(restarted.planner, first.planner, world.clock())
    assert restarted.run_once() > 0
    assert world.recorded_twice() == []


def test_the_running_process_saves_when_it_stops_and_the_next_one_resumes(world: World) -> None:
    world.grow(None, 100)
    process = world.process(world.checkpoint())
    process.start()
    try:
        poll(lambda: process.position == world.store.last_position(), timeout=20)
    finally:
        process.close()
    checkpoint = world.checkpoint()
    saved = checkpoint.load()
    assert saved is not None and saved.position == process.position
    counting = CountingStore(world.store)
    world.process_on(counting, checkpoint).catch_up()
    assert counting.events_read == world.store.last_position() - saved.position
    checkpoint.close()
