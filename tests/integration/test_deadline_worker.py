"""`crm-deadline-worker` as its own process: records what is due, then stops on SIGTERM, saving
its state in its checkpoint file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm.command_handling import CommandContext
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from services.bootstrap import build_applications, system_clock
from services.case.commands import OpenCase
from services.case.events import Category
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment
from services.sla.checkpoint import DeadlineCheckpoint
from tests.grpc_client import poll

AGENT = Actor(ActorKind.AGENT, "agent-1")


def test_the_worker_records_an_overdue_breach_once_and_stops_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    opened_at = datetime.now(UTC) - timedelta(hours=1)  # urgent: 15 min first response, overdue
    build_applications(store, system_clock).customers.handle(
        RegisterCustomer("c-1", "Sora", (), "ja", Segment.B2C),
        CommandContext("register", AGENT, opened_at),
    )
    build_applications(store, system_clock).cases.handle(
        OpenCase("k-1", "c-1", Channel.CHAT, Category.CONTRACT, Priority.URGENT, "s", ""),
        CommandContext("open", AGENT, opened_at),
    )

    def types() -> list[str]:
        return [r.type.split(".")[2] for r in store.read_stream("case-k-1")]

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.entrypoints.deadline_worker"),
            *("--event-store-url", f"sqlite:///{path}"),
            *("--data-dir", str(tmp_path)),  # the checkpoint's default: <data-dir>/deadlines.db
        ],
        env={**os.environ, "CRM_LOG_FORMAT": "json"},
        stderr=log,
    )
    try:
        poll(lambda: "SlaBreached" in types(), timeout=30)
        assert types() == [
            "CaseOpened",
            "SlaApplied",
            "SlaAtRisk",
            "CaseEscalationChanged",
            "SlaBreached",
            "CaseEscalationChanged",
        ]
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        log.close()
    assert types().count("SlaBreached") == 1
    checkpoint = DeadlineCheckpoint(tmp_path / "deadlines.db")
    saved = checkpoint.load()
    opened = store.read_stream("case-k-1")[0].global_position
    assert saved is not None and opened <= saved.position <= store.last_position()
    assert [watch["case_id"] for watch in json.loads(saved.state)["watches"]] == ["k-1"]
    checkpoint.close()
    store.close()


def _open_overdue_case(store: SqliteEventStore, n: int) -> None:
    opened_at = datetime.now(UTC) - timedelta(hours=1)  # urgent: 15 min first response, overdue
    applications = build_applications(store, system_clock)
    applications.customers.handle(
        RegisterCustomer(f"c-{n}", "Sora", (), "ja", Segment.B2C),
        CommandContext(f"register-{n}", AGENT, opened_at),
    )
    applications.cases.handle(
        OpenCase(f"k-{n}", f"c-{n}", Channel.CHAT, Category.CONTRACT, Priority.URGENT, "s", ""),
        CommandContext(f"open-{n}", AGENT, opened_at),
    )


@pytest.mark.parametrize("checkpoint", ["sqlite", "postgresql"])
def test_a_standby_worker_takes_over_when_the_active_one_is_killed(
    tmp_path: Path, checkpoint: str, request: pytest.FixtureRequest
) -> None:
    """With an SQLite checkpoint the lease is a file lock beside it; with a PostgreSQL one (as
    deploy/ runs it) an advisory lock in its database, which the kill must release too."""
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    where = (
        ("--data-dir", str(tmp_path))  # one checkpoint, and one lease beside it
        if checkpoint == "sqlite"
        else ("--deadline-checkpoint-url", request.getfixturevalue("postgres_url"))
    )

    def start(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = tmp_path / f"{name}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "services.entrypoints.deadline_worker"),
                    *("--event-store-url", f"sqlite:///{path}"),
                    *where,
                ],
                env={**os.environ, "CRM_LOG_FORMAT": "json"},
                stderr=log,
            )
        return process, log_path

    def breaches(case_id: str) -> int:
        return [r.type.split(".")[2] for r in store.read_stream(f"case-{case_id}")].count(
            "SlaBreached"
        )

    active, active_log = start("first")
    poll(lambda: '"deadline worker active"' in active_log.read_text(), timeout=30)
    standby, standby_log = start("second")
    try:
        poll(lambda: '"deadline worker standby' in standby_log.read_text(), timeout=30)
        _open_overdue_case(store, 1)
        poll(lambda: breaches("k-1") == 1, timeout=30)
        active.send_signal(signal.SIGKILL)
        active.wait(timeout=10)
        poll(lambda: '"deadline worker active"' in standby_log.read_text(), timeout=30)
        _open_overdue_case(store, 2)
        poll(lambda: breaches("k-2") == 1, timeout=30)
    finally:
        for process in (active, standby):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
    assert standby.returncode == 0
    assert (breaches("k-1"), breaches("k-2")) == (1, 1)  # nothing recorded twice by the two
    store.close()
