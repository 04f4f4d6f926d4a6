"""Blue/green rebuilds under a live server: commands and queries run throughout, none fails and
none sees a half-built view, and after the switches the views equal a fresh rebuild.

A real `crm-server` (its in-process projector writing the views, SQLite or PostgreSQL) starts on
a realistic history. A client thread then loops: a command on a case of its own (acknowledged),
then GetTimeline, GetCaseView, GetKpis and ListEscalatedCases. The history's own answers must
stay exactly as they were before any rebuild (a half-built generation would lack some of them);
the client's own timeline never shrinks and its case view's position never goes back. Each
projection is rebuilt in turn, the rebuild pausing while half built until the client completed
two more rounds, so queries provably run while the new generation is incomplete; then the
timeline once more through the `crm-admin` command itself.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.history import HistoryWriter
from crm.eventstore.sqlite import SqliteEventStore
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    timeline_service_pb2,
)
from projections.bluegreen import rebuild_beside
from projections.catalogue import PROJECTION_NAMES
from projections.kpi_report import KpiQuery
from projections.runner import rebuild
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from projections.store.queries import MAX_PAGE_SIZE, EscalationQuery, FollowUpQuery
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC
from tests.grpc_client import Client, poll
from tests.postgres_server import PostgresServer
from tests.server_process import ServerProcess
from tests.support import whole_timeline

HISTORY = ("2026-05-01", "2026-10-01")  # bench.history's commands fall in here, the client's not
WATCHED = 4  # history customers and cases whose answers must never change
ROUNDS_TIMEOUT = 120.0


@pytest.fixture(params=["sqlite", "postgresql"])
def views_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'views.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"views_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data dir whose event store holds a realistic history (bench.history)."""
    path = tmp_path / "data"
    path.mkdir()
    store = SqliteEventStore(path / "events.db")
    HistoryWriter(store, seed=3).write(300)
    store.close()
    return path


@pytest.fixture
def events(data_dir: Path) -> Iterator[SqliteEventStore]:
    store = SqliteEventStore(data_dir / "events.db")
    yield store
    store.close()


class Load(threading.Thread):
    """The client's loop: one acknowledged command, then the four queries, checked each round."""

    def __init__(self, client: Client, expected: dict[str, Any]) -> None:
        super().__init__(name="load", daemon=True)
        self.client = client
        self.expected = expected
        self.failures: list[str] = []
        self.rounds = 0
        self._round = threading.Condition()
        self._stopping = threading.Event()
        self.customer_id, self.case_id = _own_case(client)

    def run(self) -> None:
        seen_entries, seen_position = 0, 0
        while not self._stopping.is_set():
            try:
                self.client.cases.AddNote(
                    case_service_pb2.AddNoteRequest(
                        context=self.client.context(), case_id=self.case_id, text="still waiting"
                    )
                )
                entries = len(self.client.whole_timeline(self.customer_id))
                if entries < seen_entries:
                    self.failures.append(f"own timeline shrank from {seen_entries} to {entries}")
                seen_entries = max(seen_entries, entries)
                view = _case_view(self.client, self.case_id)
                position = 0 if view is None else view.last_position
                if position < seen_position:
                    self.failures.append(f"own case view went back to {position}")
                seen_position = max(seen_position, position)
                answers = history_answers(
                    self.client, self.expected["customers"], self.expected["cases"]
                )
                for name, answer in answers.items():
                    if answer != self.expected[name]:
                        self.failures.append(f"{name} differs from before the rebuilds")
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code()}: {exc.details()}")
            with self._round:
                self.rounds += 1
                self._round.notify_all()

    def wait_rounds(self, more: int) -> None:
        """Return once `more` rounds have completed from now."""
        with self._round:
            goal = self.rounds + more
            if not self._round.wait_for(lambda: self.rounds >= goal, ROUNDS_TIMEOUT):
                raise AssertionError(f"the client made no progress; failures: {self.failures}")

    def stop(self) -> None:
        self._stopping.set()
        self.join(ROUNDS_TIMEOUT)


def _own_case(client: Client) -> tuple[str, str]:
    customer_id = client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name="Rebuild Watcher",
            language="en",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id
    case_id = client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=client.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_CHAT,
            category=case_events_pb2.CATEGORY_BILLING_PAYMENT,
            priority=common_pb2.PRIORITY_NORMAL,
            subject="Waiting through a rebuild",
        )
    ).aggregate_id
    poll(lambda: _case_view(client, case_id, missing_ok=True), timeout=30)
    return customer_id, case_id


def _case_view(
    client: Client, case_id: str, *, missing_ok: bool = False
) -> timeline_service_pb2.CaseView | None:
    try:
        return client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id=case_id))
    except grpc.RpcError as exc:
        if missing_ok and exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def history_answers(client: Client, customers: list[str], cases: list[str]) -> dict[str, Any]:
    """What the four queries answer about the history: it gets no new events during the test."""
    return {
        "timelines": [list(client.whole_timeline(c)) for c in customers],
        "case_views": [_case_view(client, c) for c in cases],
        "kpis": client.timeline.GetKpis(
            timeline_service_pb2.GetKpisRequest(
                since=HISTORY[0],
                until=HISTORY[1],
                group_by=[timeline_service_pb2.KPI_DIMENSION_CHANNEL],
            )
        ),
        "escalated": client.timeline.ListEscalatedCases(
            timeline_service_pb2.ListEscalatedCasesRequest(limit=500)
        ),
    }


def answers(views: ViewStore, customers: list[str], cases: list[str]) -> dict[str, Any]:
    """Everything the port answers about these customers and cases, to compare stores."""
    return {
        "timelines": {c: whole_timeline(views, c) for c in customers},
        "cases": {c: views.case_view(c) for c in cases},
        "risk": {c: views.customer_risk(c) for c in customers},
        "escalated": views.escalated_cases(EscalationQuery(limit=500)),
        "follow_ups": views.follow_ups(FollowUpQuery(limit=MAX_PAGE_SIZE)),
        "kpis": views.kpis(
            KpiQuery(date(2026, 1, 1), date(2027, 12, 31), frozenset({"day", "channel"}))
        ),
    }


def _ids(store: SqliteEventStore, prefix: str) -> list[str]:
    streams = {e.stream for e in store.read_all(after=0, limit=1_000_000)}
    return sorted(s.removeprefix(prefix) for s in streams if s.startswith(prefix))


def test_queries_never_fail_nor_see_a_half_built_view_while_every_projection_is_rebuilt(
    data_dir: Path, tmp_path: Path, views_url: str, events: SqliteEventStore
) -> None:
    flags = ("--read-store-url", views_url, "--deadlines", "off")
    server = ServerProcess(data_dir, tmp_path / "server.log", *flags)
    client = Client(server.access, prefix="bluegreen")
    views = open_view_store(views_url)
    load: Load | None = None
    try:
        head = events.last_position()
        assert poll(lambda: min(views.checkpoint(n) for n in PROJECTION_NAMES) >= head, 60)
        customers, cases = _ids(events, "customer-"), _ids(events, "case-")
        watched = {"customers": customers[:WATCHED], "cases": cases[:WATCHED]}
        expected = {**watched, **history_answers(client, watched["customers"], watched["cases"])}
        assert expected["timelines"][0] and expected["escalated"].cases  # something to lose
        load = Load(client, expected)
        load.start()
        for name in PROJECTION_NAMES:

            def halfway(done: int, _position: int, load: Load = load) -> None:
                if done == 100:  # the new generation holds 100 events: queries go on meanwhile
                    load.wait_rounds(2)

            switched = rebuild_beside(events, views, CODEC, name, batch_size=100, progress=halfway)
            assert switched.replaced == 1
            load.wait_rounds(2)
        admin = _crm_admin(data_dir, views_url)
        assert admin.returncode == 0, admin.stderr
        assert "generation 3 serves" in admin.stdout
        load.wait_rounds(2)
        load.stop()
        assert load.failures == []
        head = events.last_position()
        assert poll(lambda: min(views.checkpoint(n) for n in PROJECTION_NAMES) >= head, 60)
        assert server.terminate() == 0
        own = ([load.customer_id], [load.case_id])
        fresh = SqliteViewStore(tmp_path / "fresh.db")
        rebuild(events, fresh, CODEC)
        everyone, every_case = customers + own[0], cases + own[1]
        assert answers(views, everyone, every_case) == answers(fresh, everyone, every_case)
        fresh.close()
    finally:
        try:
            if load is not None and load.is_alive():
                load.stop()
            client.close()
            views.close()
        finally:  # whatever failed above, no server outlives the test
            if server.process.poll() is None:
                server.kill()


def _crm_admin(data_dir: Path, views_url: str) -> subprocess.CompletedProcess[str]:
    """`crm-admin rebuild timeline` on the server's stores, as an operator runs it."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "services.entrypoints.admin"),
            *("--data-dir", str(data_dir), "--read-store-url", views_url),
            *("rebuild", "timeline"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
