"""Storage-level throughput: appends vs plain SQLite inserts, commands vs appends, rebuild vs
reading back, each beside its baseline in one run.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.history import HistoryWriter
from crm.command_handling import CommandContext
from crm.envelope import EventMetadata, NewEvent
from crm.eventstore.port import StreamState
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from projections.runner import rebuild
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC, build_applications
from services.case.commands import AddNote, OpenCase
from services.case.events import CaseNoteAdded, Category
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "agent-1")


def rate(count: int, run: Callable[[], object]) -> float:
    """Operations per second of `run`, which performs `count` operations."""
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def bare_inserts(path: Path, payload: bytes, count: int) -> None:
    """The baseline: one durable SQLite insert per event, no checks, no hashing."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, stream TEXT, data BLOB)")
    for i in range(count):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?, ?)", (str(uuid.uuid4()), f"s-{i}", payload))
        conn.execute("COMMIT")
    conn.close()


def appends(store: SqliteEventStore, payload: bytes, count: int) -> None:
    metadata = EventMetadata("c-1", T0, AGENT, "r", "", "r")
    for i in range(count):
        event = NewEvent(str(uuid.uuid4()), "crm.case.CaseNoteAdded.v1", payload, metadata)
        store.append(f"case-{i}", [event], StreamState.NO_STREAM)


def commands(store: SqliteEventStore, count: int) -> None:
    clock = lambda: T0 + timedelta(days=1)  # noqa: E731
    apps = build_applications(store, clock)
    customer_app, case_app = apps.customers, apps.cases
    context = CommandContext("register", AGENT, T0)
    customer_app.handle(RegisterCustomer("c-1", "Bench", (), "en", Segment.B2C), context)
    case_app.handle(
        OpenCase("k-1", "c-1", Channel.EMAIL, Category.CONTRACT, Priority.LOW, "s", ""),
        CommandContext("open", AGENT, T0),
    )
    for i in range(count):
        note = AddNote(f"k-{i % 50 + 2}", f"n-{i}", "called back")
        if i < 50:
            case_app.handle(
                OpenCase(
                    f"k-{i + 2}",
                    "c-1",
                    Channel.EMAIL,
                    Category.CONTRACT,
                    Priority.LOW,
                    "s",
                    "",
                ),
                CommandContext(f"open-{i}", AGENT, T0),
            )
        case_app.handle(note, CommandContext(f"note-{i}", AGENT, T0))


def measure_storage(count: int) -> dict[str, float]:
    """Events (or commands) per second of each storage path and its baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        payload = CODEC.encode(CaseNoteAdded("case-1", "n-1", "called back"))[1]
        baseline = rate(count, lambda: bare_inserts(root / "bare.db", payload, count))
        store = SqliteEventStore(root / "events.db")
        appended = rate(count, lambda: appends(store, payload, count))
        store.close()
        command_store = SqliteEventStore(root / "commands.db")
        handled = rate(count, lambda: commands(command_store, count))
        command_store.close()

        history = SqliteEventStore(root / "history.db")
        writer = HistoryWriter(history, seed=1)
        writer.write(count)
        total = history.last_position()
        read_back = rate(total, lambda: _read_all(history))
        view_store = SqliteViewStore(root / "views.db")
        projected = rate(total, lambda: rebuild(history, view_store, CODEC))
        view_store.close()
        history.close()
    return {
        "insert": baseline,
        "append": appended,
        "command": handled,
        "read_back": read_back,
        "rebuild": projected,
        "rebuild_events": total,
    }


def _read_all(store: SqliteEventStore) -> None:
    position = 0
    while batch := store.read_all(after=position, limit=1000):
        position = batch[-1].global_position
