"""The relay's and the deadline process's checkpoints on PostgreSQL: the same behaviour as their
SQLite files, side by side with the view store in one database, and chosen by their URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm.command_handling import CommandContext
from crm.errors import InvalidInput, OperationalError
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from projections.catalogue import PROJECTION_NAMES
from projections.store.postgres import PostgresViewStore
from relay.postgres_checkpoint import PostgresRelayCheckpoint
from services.bootstrap import build_applications, system_clock
from services.case.commands import OpenCase
from services.case.events import Category
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment
from services.sla.checkpoint import SavedState
from services.sla.postgres_checkpoint import PostgresDeadlineCheckpoint
from tests.contract.viewstore_stories import week_story
from tests.grpc_client import poll
from tests.integration.test_entrypoints import launch
from tests.postgres_server import load_local_postgres

AGENT = Actor(ActorKind.AGENT, "agent-1")


def _unreachable() -> str:
    return f"postgresql://crm:s3cret-word@127.0.0.1:{load_local_postgres().free_port()}/crm"


def test_the_relay_checkpoint_starts_at_zero_and_survives_a_reopen(postgres_url: str) -> None:
    checkpoint = PostgresRelayCheckpoint(postgres_url)
    assert checkpoint.position() == 0
    checkpoint.advance(7)
    checkpoint.close()

    reopened = PostgresRelayCheckpoint(postgres_url)
    other = PostgresRelayCheckpoint(postgres_url, "other")
    try:
        assert reopened.position() == 7
        assert other.position() == 0
        mover = threading.Thread(target=other.advance, args=(3,))
        mover.start()
        mover.join(10)
        assert other.position() == 3 and reopened.position() == 7
    finally:
        reopened.close()
        other.close()


def test_the_deadline_checkpoint_saves_a_state_with_its_position(postgres_url: str) -> None:
    checkpoint = PostgresDeadlineCheckpoint(postgres_url)
    assert checkpoint.load() is None
    checkpoint.save(SavedState(12, 3, '{"watches": []}'))
    checkpoint.save(SavedState(15, 3, '{"watches": [1]}'))
    checkpoint.close()

    reopened = PostgresDeadlineCheckpoint(postgres_url)
    try:
        assert reopened.load() == SavedState(15, 3, '{"watches": [1]}')
        assert reopened.checkpoint("deadline-process") == 15
    finally:
        reopened.close()


def test_closed_checkpoints_raise_operational_error(postgres_url: str) -> None:
    relay, deadlines = (
        PostgresRelayCheckpoint(postgres_url),
        PostgresDeadlineCheckpoint(postgres_url),
    )
    relay.close()
    deadlines.close()
    with pytest.raises(OperationalError):
        relay.position()
    with pytest.raises(OperationalError):
        deadlines.load()


def test_checkpoints_and_views_share_one_database_without_touching_each_other(
    postgres_url: str,
) -> None:
    views = PostgresViewStore(postgres_url, pool_size=2)
    relay = PostgresRelayCheckpoint(postgres_url)
    deadlines = PostgresDeadlineCheckpoint(postgres_url)
    try:
        batch = week_story().batch
        views.apply(batch)
        relay.advance(3)
        deadlines.save(SavedState(5, 1, "{}"))
        assert {views.checkpoint(name) for name in PROJECTION_NAMES} == {len(batch)}
        assert (relay.position(), deadlines.checkpoint("deadline-process")) == (3, 5)
    finally:
        views.close()
        relay.close()
        deadlines.close()


def test_an_unreachable_checkpoint_url_names_its_setting_and_no_password() -> None:
    for opening, field in (
        (PostgresRelayCheckpoint, "relay_checkpoint_url"),
        (PostgresDeadlineCheckpoint, "deadline_checkpoint_url"),
    ):
        with pytest.raises(InvalidInput) as raised:
            opening(_unreachable())
        assert raised.value.field == field
        assert "s3cret-word" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "flag", "named"),
    [
        ("server", "--read-store-url", "--read-store-url / CRM_READ_STORE_URL"),
        ("projection_worker", "--read-store-url", "--read-store-url / CRM_READ_STORE_URL"),
        ("relay", "--checkpoint-url", "--checkpoint-url / CRM_RELAY_CHECKPOINT_URL"),
        (
            "deadline_worker",
            "--deadline-checkpoint-url",
            "--deadline-checkpoint-url / CRM_DEADLINE_CHECKPOINT_URL",
        ),
    ],
)
def test_an_unreachable_postgresql_url_stops_the_process_with_one_line(
    tmp_path: Path, name: str, flag: str, named: str
) -> None:
    extra = ["--projection", "timeline"] if name == "projection_worker" else []
    done = launch(
        name, flag, _unreachable(), *extra, env={"CRM_DATA_DIR": str(tmp_path)}, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        f"crm-{name.replace('_', '-')}: {named}: postgresql://crm:***@127.0.0.1:"
    ), done.stderr
    assert ": cannot connect to PostgreSQL at 127.0.0.1:" in done.stderr
    assert "s3cret-word" not in done.stderr


def test_the_deadline_worker_saves_its_state_in_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
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
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.entrypoints.deadline_worker"),
            *("--event-store-url", f"sqlite:///{path}"),
            *("--deadline-checkpoint-url", postgres_url),
        ],
        env={**os.environ, "CRM_LOG_FORMAT": "json"},
        stderr=log,
    )
    try:
        poll(lambda: any("SlaBreached" in r.type for r in store.read_stream("case-k-1")), 30)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        log.close()
    checkpoint = PostgresDeadlineCheckpoint(postgres_url)
    try:
        saved = checkpoint.load()
        assert saved is not None and 0 < saved.position <= store.last_position()
    finally:
        checkpoint.close()
        store.close()
    assert not (tmp_path / "deadlines.db").exists()
