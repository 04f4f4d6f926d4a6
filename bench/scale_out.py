"""Relay and projection throughput through Kafka with 1, 2 and 4 partitions and as many workers.

A history is written first; then a relay publishes it to topics of N partitions, and N copies of
the timeline worker share its consumer group, one partition each. The rate is the timeline rows
written per second between the first and the last, so the workers' start-up is not counted.
Each run has topics and files of its own. On this 2-core machine, more workers than cores only
show what the shape costs, not how it scales on a real cluster.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from bench.history import HistoryWriter
from crm.eventstore.sqlite import SqliteEventStore
from projections.catalogue import TIMELINE

ROOT = Path(__file__).resolve().parent.parent
_runs = itertools.count(1)


@dataclass(frozen=True)
class ScaleOut:
    """One configuration's measured rate."""

    partitions: int
    events: int
    per_second: float


def _local_kafka() -> ModuleType:
    name = "local_kafka"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "deploy" / "kafka" / "local_kafka.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[None]:
    with log.open("a") as out:
        child = subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=out)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _timeline_rows(path: Path) -> int:
    try:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM timeline").fetchone()[0])
    except sqlite3.OperationalError:  # the file or the table is not there yet
        return 0


def measure(data_dir: Path, commands: int, counts: tuple[int, ...]) -> list[ScaleOut]:
    """The timeline's rate through relay and Kafka, for each partition (= worker) count."""
    data_dir.mkdir(parents=True, exist_ok=True)
    events = data_dir / "events.db"
    store = SqliteEventStore(events)
    HistoryWriter(store, seed=5).write(commands)
    total = store.last_position()
    store.close()
    broker = _local_kafka().LocalKafka(data_dir / "kafka")
    broker.start()
    try:
        return [_run(data_dir, events, total, broker.bootstrap, n) for n in counts]
    finally:
        broker.stop()


def _run(data_dir: Path, events: Path, total: int, bootstrap: str, partitions: int) -> ScaleOut:
    run = data_dir / f"run-{next(_runs)}-{partitions}"
    run.mkdir()
    views = run / "views.db"
    common = [
        *("--bootstrap", bootstrap, "--partitions", str(partitions)),
        *("--namespace", f"scale{os.getpid()}x{run.name}."),
    ]
    with ExitStack() as stack:
        stack.enter_context(
            _process(
                [
                    "services.entrypoints.relay",
                    *("--event-store-url", f"sqlite:///{events}"),
                    *("--checkpoint-url", f"sqlite:///{run / 'relay.db'}"),
                    *common,
                ],
                run / "relay.log",
            )
        )
        for n in range(partitions):
            stack.enter_context(
                _process(
                    [
                        "services.entrypoints.projection_worker",
                        *("--projection", TIMELINE.name),
                        *("--read-store-url", f"sqlite:///{views}"),
                        *common,
                    ],
                    run / f"worker-{n}.log",
                )
            )
        first_at: float | None = None
        first_rows = 0
        deadline = time.monotonic() + 600
        while (rows := _timeline_rows(views)) < total and time.monotonic() < deadline:
            if rows and first_at is None:
                first_at, first_rows = time.perf_counter(), rows
            time.sleep(0.02)
        finished = time.perf_counter()
    if first_at is None or rows < total:
        return ScaleOut(partitions, rows, 0.0)
    return ScaleOut(partitions, total, (total - first_rows) / max(finished - first_at, 1e-9))
