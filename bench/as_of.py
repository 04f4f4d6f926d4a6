"""As-of views: a case of 1,000 events folded as of a past point, beside reading its live view.

Warm is what GetCaseAsOf runs without gRPC (services/audit/as_of_api.py `AsOfReader.case_view`)
once the case was asked about: start from the nearest kept view, read, check and fold the events
after it. Cold is the first question about a case (a reader with no kept views yet): read the
stream up to the point, check its hash chain, fold it all, keeping views on the way. The
baselines, in the same run: reading the stored live view (what GetCaseView runs) and reading the
stream alone.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crm.command_handling import CommandContext
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from projections.runner import rebuild
from projections.store.sqlite import SqliteViewStore
from services.audit.as_of import AsOf
from services.audit.as_of_api import AsOfReader
from services.audit.case_checkpoints import KeptViews
from services.audit.history import HistoryReader
from services.bootstrap import CODEC, build_applications
from services.case.commands import AddNote, OpenCase, RecordContact, TransferCase
from services.case.events import Category, ContactOutcome
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "agent-1")
CASE = "k-1"
DEPARTMENTS = ("support", "billing", "technical")


def write_case(store: SqliteEventStore, events: int) -> None:
    """One customer and one case of `events` events: notes, contacts and transfers."""
    apps = build_applications(store, lambda: T0 + timedelta(days=30))
    at = iter(T0 + timedelta(seconds=i) for i in range(10 * events))
    apps.customers.handle(
        RegisterCustomer("c-1", "Bench", (), "en", Segment.B2C),
        CommandContext("register", AGENT, next(at)),
    )
    apps.cases.handle(
        OpenCase(CASE, "c-1", Channel.EMAIL, Category.CONTRACT, Priority.LOW, "s", ""),
        CommandContext("open", AGENT, next(at)),
    )
    for i in range(events - 1):
        context = CommandContext(f"step-{i}", AGENT, next(at))
        if i % 10 == 0:
            department = DEPARTMENTS[(i // 10 + 1) % 3]  # never the one it is in
            apps.cases.handle(TransferCase(CASE, department, "bounced"), context)
        elif i % 3 == 0:
            contact = RecordContact(
                CASE,
                f"contact-{i}",
                Channel.PHONE,
                Direction.INBOUND,
                ActorKind.AGENT,
                "agent-1",
                ContactOutcome.ANSWERED,
                context.occurred_at,
                talk_seconds=60,
            )
            apps.cases.handle(contact, context)
        else:
            apps.cases.handle(AddNote(CASE, f"n-{i}", "called back"), context)


def per_call(calls: int, run: Callable[[], object]) -> float:
    """Milliseconds per call, the best of three rounds (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1000


def measure_as_of(events: int, calls: int = 20) -> dict[str, float]:
    """Milliseconds per as-of fold (cold and warm, at the head and half way) and per baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = SqliteEventStore(root / "events.db")
        write_case(store, events)
        views = SqliteViewStore(root / "views.db")
        rebuild(store, views, CODEC)
        stream = f"case-{CASE}"
        records = store.read_stream(stream)
        head, middle = records[-1].global_position, records[len(records) // 2].global_position
        live = views.case_view(CASE)
        history = HistoryReader(store, views, CODEC)
        warm = AsOfReader(store, history, CODEC, lambda: T0)
        if warm.case_view(CASE, AsOf(position=head)) != live:  # measure the right thing or none
            raise AssertionError("the as-of view at the head differs from the live view")

        def cold(position: int) -> object:
            """Without kept views: the first question about a case, read and folded whole."""
            reader = AsOfReader(store, history, CODEC, lambda: T0, KeptViews())
            return reader.case_view(CASE, AsOf(position=position))

        result = {
            "events": float(len(records)),
            "live_view": per_call(calls, lambda: views.case_view(CASE)),
            "read_stream": per_call(calls, lambda: store.read_stream(stream)),
            "cold_head": per_call(calls, lambda: cold(head)),
            "cold_middle": per_call(calls, lambda: cold(middle)),
            "warm_head": per_call(calls, lambda: warm.case_view(CASE, AsOf(position=head))),
            "warm_middle": per_call(calls, lambda: warm.case_view(CASE, AsOf(position=middle))),
        }
        views.close()
        store.close()
    return result
