"""Rebuilding projections from event 0: large batches with the views kept in memory between them
give exactly the tables that live processing builds, whatever else writes the store meanwhile;
`crm-rebuild` does it from the command line, showing its progress."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.history import HistoryWriter
from crm.errors import InvariantViolated
from crm.eventstore.sqlite import SqliteEventStore
from projections.runner import InProcessProjector, decode_batch, rebuild
from projections.store import remembered
from projections.store.remembered import Remembered
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC


@pytest.fixture(scope="module")
def history_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A realistic history (bench.history): merges, feedback, reopenings, refusals."""
    path = tmp_path_factory.mktemp("history") / "events.db"
    store = SqliteEventStore(path)
    HistoryWriter(store, seed=5).write(600)
    store.close()
    return path


@pytest.fixture(scope="module")
def history(history_file: Path) -> Iterator[SqliteEventStore]:
    store = SqliteEventStore(history_file)
    yield store
    store.close()


def live(store: SqliteEventStore, path: Path, batch_size: int = 50) -> None:
    """The views as the in-process projector builds them: small batches, nothing kept."""
    views = SqliteViewStore(path)
    position = 0
    while events := store.read_all(after=position, limit=batch_size):
        views.apply(decode_batch(CODEC, events))
        position = events[-1].global_position
    views.close()


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            name: conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall() for name in names
        }


def test_a_rebuild_that_forgets_most_of_what_it_kept_still_equals_live(
    history: SqliteEventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live(history, tmp_path / "live.db")
    monkeypatch.setattr(remembered, "CAPACITY", 3)  # most views are read back from the tables
    views = SqliteViewStore(tmp_path / "rebuilt.db")
    done: list[tuple[int, int]] = []
    last = rebuild(history, views, CODEC, batch_size=37, progress=lambda n, p: done.append((n, p)))
    views.close()
    assert last == history.last_position()
    assert done[-1] == (history.last_position(), last)
    assert [n for n, _ in done] == sorted(n for n, _ in done)
    assert tables(tmp_path / "rebuilt.db") == tables(tmp_path / "live.db")


def test_views_written_by_another_writer_meanwhile_are_not_trusted_from_memory(
    history: SqliteEventStore, tmp_path: Path
) -> None:
    live(history, tmp_path / "live.db")
    path = tmp_path / "shared.db"
    rebuilding, other = SqliteViewStore(path), SqliteViewStore(path)
    events = decode_batch(CODEC, history.read_all(after=0, limit=100_000))
    third = len(events) // 3
    with rebuilding.replaying():
        rebuilding.apply(events[:third])
        other.apply(events[third : 2 * third])  # moves every projection past what was kept
        rebuilding.apply(events[2 * third :])
    rebuilding.close()
    other.close()
    assert tables(path) == tables(tmp_path / "live.db")


def test_an_unfinished_rebuild_resumes_from_its_checkpoints(
    history: SqliteEventStore, tmp_path: Path
) -> None:
    live(history, tmp_path / "live.db")
    views = SqliteViewStore(tmp_path / "rebuilt.db")
    stop_at = history.last_position() // 2

    def interrupt(_done: int, position: int) -> None:
        if position >= stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild(history, views, CODEC, batch_size=100, progress=interrupt)
    with pytest.raises(InvariantViolated, match="rebuild needs it empty"):
        rebuild(history, views, CODEC)
    assert rebuild(history, views, CODEC, resume=True) == history.last_position()
    views.close()
    assert tables(tmp_path / "rebuilt.db") == tables(tmp_path / "live.db")


def test_remembered_values_go_least_recently_used_first() -> None:
    kept: Remembered[int] = Remembered(capacity=2)
    reads: list[str] = []

    def read(key: str) -> int | None:
        reads.append(key)
        return None

    load = kept.loader(read)
    kept.keep({"a": 1, "b": 2})
    assert load("a") == 1  # a is now the most recently used
    kept.keep({"c": 3})  # b goes
    assert (load("a"), load("c"), load("b")) == (1, 3, None)
    assert reads == ["b"]
    kept.forget()
    assert load("a") is None and kept.position == 0


# ---------------------------------------------------------------- crm-rebuild


def projected_live(store: SqliteEventStore, path: Path) -> None:
    """The views the in-process projector builds, followed to the end of the store."""
    views = SqliteViewStore(path)
    projector = InProcessProjector(store, views, CODEC, poll_interval=0.05)
    projector.start()
    try:
        assert projector.wait_until(store.last_position(), timeout=60)
    finally:
        assert projector.stop(10)
        views.close()


def crm_rebuild(
    *args: str, stderr: int | None = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return subprocess.run(
        [sys.executable, "-m", "services.entrypoints.rebuild", *args],
        env={**clean, "CRM_LOG_FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=120,
    )


def test_crm_rebuild_logs_its_progress_and_builds_what_the_live_projector_built(
    history: SqliteEventStore, history_file: Path, tmp_path: Path
) -> None:
    projected_live(history, tmp_path / "live.db")
    events = history.last_position()
    done = crm_rebuild(
        *("--event-store-url", f"sqlite:///{history_file}"),
        *("--into", str(tmp_path / "rebuilt.db"), "--progress-interval", "0"),
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    progress = [line for line in lines if "events_done" in line]
    assert progress and progress[-1]["events_done"] == events
    assert "events/s" in progress[-1]["message"] and "left" in progress[-1]["message"]
    assert f"{events:,} events up to position {events:,}" in done.stdout
    assert tables(tmp_path / "rebuilt.db") == tables(tmp_path / "live.db")


def test_crm_rebuild_fills_one_empty_projection_of_the_configured_store_and_no_more(
    history: SqliteEventStore, history_file: Path, tmp_path: Path
) -> None:
    live(history, tmp_path / "live.db")
    configured = ("--read-store-url", f"sqlite:///{tmp_path / 'views.db'}")
    source = ("--event-store-url", f"sqlite:///{history_file}")
    done = crm_rebuild(*source, *configured, "--projection", "timeline")
    assert done.returncode == 0, done.stderr
    rebuilt, expected = tables(tmp_path / "views.db"), tables(tmp_path / "live.db")
    assert rebuilt["timeline"] == expected["timeline"]
    assert rebuilt["case_views"] == []  # only the projection named

    again = crm_rebuild(*source, *configured, "--projection", "timeline")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "timeline is at position" in again.stderr


def test_crm_rebuild_refreshes_one_line_in_place_on_a_terminal(
    history: SqliteEventStore, history_file: Path, tmp_path: Path
) -> None:
    main, terminal = pty.openpty()
    done = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.entrypoints.rebuild"),
            *("--event-store-url", f"sqlite:///{history_file}"),
            *("--into", str(tmp_path / "rebuilt.db"), "--log-format", "text"),
        ],
        stderr=terminal,
        stdout=subprocess.PIPE,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    assert done.wait(timeout=120) == 0
    assert done.stdout is not None and b"rebuilt timeline" in done.stdout.read()
    # Each refresh starts with a carriage return (the terminal also turns "\n" into "\r\n").
    refreshed = [piece for piece in shown.decode().split("\r") if "events/s" in piece]
    assert refreshed and f"{history.last_position():,} events (100%)" in refreshed[-1]
