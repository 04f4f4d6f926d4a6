"""Blue/green rebuilds beside a live projector: the new generation takes over exactly where the
live one was, an interrupted rebuild leaves the live views serving and a rerun finishes it, a
second rebuild of the same projection is refused, and `crm-admin rebuild` shows its progress."""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.history import HistoryWriter
from crm.errors import InvariantViolated
from crm.eventstore.sqlite import SqliteEventStore
from projections.bluegreen import rebuild_beside
from projections.catalogue import PROJECTION_NAMES
from projections.runner import InProcessProjector, decode_batch, rebuild
from projections.store.port import Generations
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC

BOOKKEEPING = {"checkpoints", "projection_generations", "projection_versions"}


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[HistoryWriter]:
    """A realistic history (bench.history) in a store of its own, and the writer to go on."""
    store = SqliteEventStore(tmp_path / "events.db")
    history = HistoryWriter(store, seed=7)
    history.write(250)
    yield history
    store.close()


def view_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every view table's rows, named without their generation's suffix."""
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            re.sub(r"__g\d+$", "", name): conn.execute(
                f"SELECT * FROM {name} ORDER BY 1, 2"
            ).fetchall()
            for name in names
            if name not in BOOKKEEPING
        }


def writing_order(path: Path, table: str) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT rowid, event_id FROM {table} ORDER BY rowid").fetchall()


def fresh_rebuild(store: SqliteEventStore, path: Path) -> dict[str, list[tuple[Any, ...]]]:
    views = SqliteViewStore(path)
    rebuild(store, views, CODEC)
    views.close()
    return view_tables(path)


def test_every_projection_rebuilt_beside_a_live_projector_continues_where_it_was(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    """Events keep arriving and the in-process projector keeps applying them during each
    rebuild; after the four switches the views equal a fresh rebuild, and the live projector
    writes the new generations (the last events arrive after every switch)."""
    store = writer.store
    assert isinstance(store, SqliteEventStore)
    views = SqliteViewStore(tmp_path / "views.db")
    projector = InProcessProjector(store, views, CODEC, poll_interval=0.02)
    projector.start()
    try:
        assert projector.wait_until(store.last_position(), timeout=60)
        for name in PROJECTION_NAMES:
            appended = threading.Event()

            def more(_done: int, _position: int, appended: threading.Event = appended) -> None:
                if not appended.is_set():  # once, while the new generation is half built
                    appended.set()
                    writer.write(20)

            switched = rebuild_beside(store, views, CODEC, name, batch_size=97, progress=more)
            assert (switched.generation, switched.replaced) == (2, 1)
            assert views.generations(name) == Generations(2)
        writer.write(20)
        assert projector.wait_until(store.last_position(), timeout=60)
    finally:
        assert projector.stop(10)
        views.close()
    assert view_tables(tmp_path / "views.db") == fresh_rebuild(store, tmp_path / "fresh.db")
    # A live watch follows the timeline's writing order (rowid): in the embedded shape both
    # generations number the entries alike, so a watch open across the switch goes on exactly.
    assert writing_order(tmp_path / "views.db", "timeline__g2") == writing_order(
        tmp_path / "fresh.db", "timeline"
    )


def test_kafka_workers_writing_through_the_switch_lose_nothing(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    """Three workers, one per topic (source "topic#0", as crm-projection-worker applies), write
    the history through ViewStore.apply while the projection is rebuilt beside them: half of
    their events before the rebuild, a quarter while it is half built, the rest after the
    switch. The new generation ends with every event, as a fresh rebuild has them."""
    store = writer.store
    assert isinstance(store, SqliteEventStore)
    path = tmp_path / "views.db"
    by_topic: dict[str, list[Any]] = {}
    for item in decode_batch(CODEC, store.read_all(after=0, limit=1_000_000)):
        topic = f"crm.{item[0].stream.split('-')[0]}.v1#0"
        by_topic.setdefault(topic, []).append(item)
    stages = [threading.Event() for _ in range(3)]

    def worker(source: str, events: list[Any]) -> None:
        views = SqliteViewStore(path)  # a worker process of its own
        cuts = [0, len(events) // 2, 3 * len(events) // 4, len(events)]
        try:
            for stage, (start, end) in zip(stages, itertools.pairwise(cuts), strict=True):
                stage.wait(60)
                for chunk in range(start, end, 5):
                    views.apply(events[chunk : min(chunk + 5, end)], source, ["case_views"])
        finally:
            views.close()

    views = SqliteViewStore(path)
    workers = [threading.Thread(target=worker, args=item) for item in by_topic.items()]
    for thread in workers:
        thread.start()
    stages[0].set()

    def halfway(_done: int, _position: int) -> None:
        stages[1].set()

    try:
        switched = rebuild_beside(
            store, views, CODEC, "case_views", batch_size=50, progress=halfway
        )
        stages[2].set()
        for thread in workers:
            thread.join(60)
        assert (switched.generation, views.generations("case_views")) == (2, Generations(2))
    finally:
        for stage in stages:
            stage.set()
        views.close()
    rebuilt = view_tables(path)
    fresh = fresh_rebuild(store, tmp_path / "fresh.db")
    assert rebuilt["case_views"] == fresh["case_views"]
    assert rebuilt["case_feedback"] == fresh["case_feedback"]


def test_an_interrupted_rebuild_leaves_the_live_views_serving_and_a_rerun_finishes_it(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    store = writer.store
    assert isinstance(store, SqliteEventStore)
    views = SqliteViewStore(tmp_path / "views.db")
    rebuild(store, views, CODEC)
    live = view_tables(tmp_path / "views.db")
    half = store.last_position() // 2

    def interrupt(_done: int, position: int) -> None:
        if position >= half:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild_beside(store, views, CODEC, "case_views", batch_size=50, progress=interrupt)

    assert views.generations("case_views") == Generations(1, 2)
    assert 0 < views.checkpoint("case_views", generation=2) < store.last_position()
    with sqlite3.connect(tmp_path / "views.db") as conn:
        for name in ("case_views", "case_feedback"):  # what queries read: untouched
            assert conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall() == live[name]
    writer.write(10)  # the live side moves on while nobody rebuilds
    rebuild(store, views, CODEC, resume=True)

    again = rebuild_beside(store, views, CODEC, "case_views", batch_size=50)

    assert again.resumed_from >= half
    assert (again.generation, again.position) == (2, store.last_position())
    views.close()
    assert view_tables(tmp_path / "views.db") == fresh_rebuild(store, tmp_path / "fresh.db")


def test_a_second_rebuild_of_the_same_projection_is_refused(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    views = SqliteViewStore(tmp_path / "views.db")
    other = SqliteViewStore(tmp_path / "views.db")  # another process's handle
    try:
        with views.rebuild_lock("timeline"), pytest.raises(InvariantViolated, match="another"):
            rebuild_beside(writer.store, other, CODEC, "timeline")
        assert other.generations("timeline") == Generations(1)
    finally:
        views.close()
        other.close()


def crm_admin(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return subprocess.run(
        [sys.executable, "-m", "services.entrypoints.admin", *args],
        env={**clean, "CRM_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_crm_admin_rebuild_logs_progress_and_switches_the_configured_views(
    writer: HistoryWriter, tmp_path: Path
) -> None:
    store = writer.store
    assert isinstance(store, SqliteEventStore)
    views = SqliteViewStore(tmp_path / "views.db")
    rebuild(store, views, CODEC)
    views.close()
    events = store.last_position()
    where = (
        *("--event-store-url", f"sqlite:///{tmp_path / 'events.db'}"),
        *("--read-store-url", f"sqlite:///{tmp_path / 'views.db'}"),
    )

    done = crm_admin(*where, "rebuild", "kpi_facts", "--progress-interval", "0")

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    progress = [line for line in lines if "events_done" in line]
    assert progress and progress[-1]["events_done"] == events
    assert "events/s" in progress[-1]["message"] and "left" in progress[-1]["message"]
    assert f"rebuilt kpi_facts: {events:,} events" in done.stdout
    assert f"generation 2 serves since position {events:,}, generation 1 dropped" in done.stdout
    assert view_tables(tmp_path / "views.db") == fresh_rebuild(store, tmp_path / "fresh.db")

    unknown = crm_admin(*where, "rebuild", "kpis")
    assert unknown.returncode == 2 and "invalid choice: 'kpis'" in unknown.stderr


def test_the_rebuild_lock_of_a_killed_process_is_free_again(tmp_path: Path) -> None:
    """A rebuild that crashed (SIGKILL) holds nothing: the next one may start at once."""
    path = tmp_path / "views.db"
    SqliteViewStore(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from projections.store.sqlite import SqliteViewStore\n"
            f"views = SqliteViewStore({str(path)!r})\n"
            "with views.rebuild_lock('timeline'):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    views = SqliteViewStore(path)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with (
            pytest.raises(InvariantViolated, match="another rebuild"),
            views.rebuild_lock("timeline"),
        ):
            pass
        holder.kill()
        holder.wait(10)
        with views.rebuild_lock("timeline"):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        views.close()
