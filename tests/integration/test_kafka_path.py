"""The distributed shape on a real broker: store -> relay -> Kafka -> faust workers -> read store.

The live path must build exactly the views a replay from event 0 builds, and must keep doing so
when the relay, a worker or the broker dies mid-stream. Relay and workers run as real processes
so they can be killed with SIGKILL at any moment.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.history import HistoryWriter
from crm.eventstore.sqlite import SqliteEventStore
from projections.catalogue import PROJECTION_NAMES, TIMELINE
from projections.runner import rebuild
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC
from tests.grpc_client import poll

PARTITIONS = 4
VIEW_TABLES = {
    "timeline": "event_id",
    "customer_merges": "duplicate_id",
    "case_views": "case_id",
    "risk_cases": "case_id",
    "risk_feedback": "feedback_id",
    "kpi_contacts": "event_id",
    "kpi_surveys": "feedback_id",
    "kpi_purchases": "event_id",
    "kpi_cases": "case_id",
    "kpi_case_views": "case_id",
}
_namespaces = itertools.count(1)


class Component:
    """A relay or projection worker process, with its log in a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


class Deployment:
    """One event store, one read store, and the relay and workers between them."""

    def __init__(self, tmp_path: Path, bootstrap: str) -> None:
        self.dir = tmp_path
        self.bootstrap = bootstrap
        self.namespace = f"t{os.getpid()}x{next(_namespaces)}."
        self.events_path = tmp_path / "events.db"
        self.views_path = tmp_path / "views.db"
        self.store = SqliteEventStore(self.events_path)
        self.components: list[Component] = []
        # The relay's checkpoint: an SQLite file with a file lease beside it, unless a test
        # names a PostgreSQL database (an advisory-lock lease there, as deploy/ runs it).
        self.relay_checkpoint_url = f"sqlite:///{self.dir / 'relay.db'}"

    def relay(self, name: str = "relay") -> Component:
        """A relay copy; copies share the checkpoint, and so the lease that lives with it."""
        return self._start(
            name,
            [
                *("-m", "services.entrypoints.relay", "--log-format", "json"),
                *("--event-store-url", f"sqlite:///{self.events_path}"),
                *("--checkpoint-url", self.relay_checkpoint_url),
            ],
        )

    def worker(self, projection: str, name: str = "") -> Component:
        return self._start(
            name or f"worker-{projection}",
            [
                *("-m", "services.entrypoints.projection_worker", "--log-format", "json"),
                *("--projection", projection),
                *("--read-store-url", f"sqlite:///{self.views_path}"),
            ],
        )

    def workers(self) -> list[Component]:
        """One worker per projection, each its own consumer group."""
        return [self.worker(name) for name in PROJECTION_NAMES]

    def _start(self, name: str, args: list[str]) -> Component:
        common = [
            *("--bootstrap", self.bootstrap),
            *("--partitions", str(PARTITIONS)),
            *("--namespace", self.namespace),
        ]
        component = Component([*args, *common], self.dir / f"{name}.log")
        self.components.append(component)
        return component

    def assert_live_equals_replay(self, timeout: float = 180) -> None:
        """Every projection's live tables reach exactly what a replay from event 0 builds."""
        replayed = self.dir / "replayed.db"
        view_store = SqliteViewStore(replayed)
        try:
            rebuild(self.store, view_store, CODEC)
        finally:
            view_store.close()
        differing: list[str] = []

        def caught_up() -> bool:
            try:
                differing[:] = [
                    table
                    for table, key in VIEW_TABLES.items()
                    if _rows(self.views_path, table, key) != _rows(replayed, table, key)
                ]
            except sqlite3.OperationalError:  # a worker is still creating the tables
                differing[:] = ["(tables not created yet)"]
            return not differing

        try:
            poll(caught_up, timeout=timeout, interval=0.5)
        except AssertionError:
            logs = "\n".join(c.log_path.read_text()[-3000:] for c in self.components)
            raise AssertionError(f"{differing} differ from the replay\n{logs}") from None
        assert _count(self.views_path, "timeline") == self.store.last_position()

    def close(self) -> None:
        for component in self.components:
            component.stop()
        self.store.close()


def _rows(path: Path, table: str, key: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()


def _projected(path: Path) -> int:
    """Timeline rows so far; 0 until the worker has created the file and committed its schema."""
    if not path.exists():
        return 0
    try:
        return _count(path, "timeline")
    except sqlite3.OperationalError:  # no such table: the schema is still being created
        return 0


def _count(path: Path, table: str) -> int:
    """Rows of a view table; 0 while a starting worker has created the file but not its tables."""
    with sqlite3.connect(path) as conn:
        try:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError as error:
            if "no such table" not in str(error):
                raise
            return 0


@pytest.fixture
def deployment(tmp_path: Path, kafka_broker: Any) -> Iterator[Deployment]:
    deployed = Deployment(tmp_path, kafka_broker.bootstrap)
    yield deployed
    deployed.close()


class Traffic:
    """Commands issued from a background thread while processes are killed around them."""

    def __init__(self, writer: HistoryWriter, commands: int) -> None:
        self._writer = writer
        self._commands = commands
        self._thread = threading.Thread(target=self._run)
        self.done = threading.Event()
        self.issued = 0
        self._thread.start()

    def _run(self) -> None:
        for _ in range(self._commands):
            self._writer.step()
            self.issued += 1
        self.done.set()

    def wait_for(self, issued: int) -> None:
        poll(lambda: self.issued >= issued or self.done.is_set(), timeout=60)

    def join(self) -> None:
        self._thread.join(timeout=120)
        assert self.done.is_set()


def test_live_views_equal_a_replay_from_event_zero(deployment: Deployment) -> None:
    writer = HistoryWriter(deployment.store, seed=11)
    writer.write(500)
    deployment.relay()
    deployment.workers()
    deployment.worker(TIMELINE.name, "worker-timeline-b")  # side by side in one consumer group
    writer.write(300)  # while the live path runs
    deployment.assert_live_equals_replay()


def test_relay_and_worker_killed_mid_stream_lose_and_double_nothing(
    deployment: Deployment,
) -> None:
    writer = HistoryWriter(deployment.store, seed=23)
    writer.write(100)
    relay = deployment.relay()
    worker, *others = deployment.workers()
    traffic = Traffic(writer, 900)
    traffic.wait_for(200)
    relay.kill()
    traffic.wait_for(400)
    relay.start()
    traffic.wait_for(550)
    worker.kill()
    traffic.wait_for(700)
    worker.start()
    others[-1].kill()
    others[-1].start()
    traffic.join()
    deployment.assert_live_equals_replay()


def test_a_broker_restart_loses_nothing(deployment: Deployment, kafka_broker: Any) -> None:
    writer = HistoryWriter(deployment.store, seed=37)
    deployment.relay()
    deployment.workers()
    traffic = Traffic(writer, 600)
    traffic.wait_for(200)
    # Restart a broker that the relay and the worker are busy with, not one they are still
    # connecting to: a worker that cannot reach any broker at start-up exits, and is restarted
    # by its supervisor (deploy/), which this test does not run.
    poll(lambda: _projected(deployment.views_path) > 50, timeout=120)  # workers start and join
    kafka_broker.restart()
    traffic.join()
    deployment.assert_live_equals_replay(timeout=300)


@pytest.mark.parametrize("checkpoint", ["sqlite", "postgresql"])
def test_a_standby_relay_takes_over_when_the_active_one_is_killed(
    deployment: Deployment, checkpoint: str, request: pytest.FixtureRequest
) -> None:
    if checkpoint == "postgresql":
        deployment.relay_checkpoint_url = request.getfixturevalue("postgres_url")
    writer = HistoryWriter(deployment.store, seed=41)
    writer.write(100)
    active = deployment.relay("relay-a")
    poll(lambda: '"relay active"' in active.log_path.read_text(), timeout=60)
    standby = deployment.relay("relay-b")
    poll(lambda: '"relay standby' in standby.log_path.read_text(), timeout=60)
    deployment.workers()
    traffic = Traffic(writer, 500)
    traffic.wait_for(150)
    active.kill()
    poll(lambda: '"relay active"' in standby.log_path.read_text(), timeout=30)
    traffic.join()
    deployment.assert_live_equals_replay()
