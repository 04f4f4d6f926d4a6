"""What-if: a weekend under a 24/7 policy, re-evaluated under business hours (hand-computed)."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm.command_handling import CommandContext
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from services.bootstrap import CODEC, build_applications
from services.case.commands import OpenCase, RecordContact, ResolveCase, TransferCase
from services.case.events import Category, ContactOutcome
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment
from services.entrypoints.what_if import main
from services.sla.policy import DEFAULT_POLICY, load_policy
from services.sla.process import DeadlineProcess
from services.sla.what_if import Summary, candidate_outcomes, live_outcomes, read_history, summarize
from tests.support import FakeClock

EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "sla-policy.example.json"
TOKYO = timedelta(hours=9)
FRIDAY_17 = datetime(2026, 5, 8, 17, 0, tzinfo=UTC) - TOKYO  # 17:00 in Tokyo
MONDAY_10 = datetime(2026, 5, 11, 10, 0, tzinfo=UTC) - TOKYO
AGENT = Actor(ActorKind.AGENT, "agent-1")
_ids = itertools.count(1)


def build_history(path: Path) -> SqliteEventStore:
    """Two cases handled under the live 24/7 default policy, the deadline process running."""
    store = SqliteEventStore(path)
    clock = FakeClock(FRIDAY_17)
    apps = build_applications(store, clock)
    customer_app, case_app = apps.customers, apps.cases
    process = DeadlineProcess(store, case_app, DEFAULT_POLICY, clock, CODEC)

    def at(instant: datetime, command: object = None) -> None:
        clock.now = instant
        if command is not None:
            context = CommandContext(f"w-{next(_ids)}", AGENT, instant)
            if isinstance(command, RegisterCustomer):
                customer_app.handle(command, context)
            else:
                case_app.handle(command, context)  # type: ignore[arg-type]
        process.run_once()

    def response(case_id: str, instant: datetime) -> RecordContact:
        return RecordContact(
            case_id,
            f"k-{case_id}",
            Channel.PHONE,
            Direction.OUTBOUND,
            ActorKind.AGENT,
            "agent-1",
            ContactOutcome.ANSWERED,
            instant,
        )

    at(FRIDAY_17, RegisterCustomer("c1", "Mio", (), "ja", Segment.B2C))
    # Case A, normal (4 h / 24 h): answered after 30 min, resolved Monday 10:00 Tokyo.
    at(
        FRIDAY_17,
        OpenCase("A", "c1", Channel.PHONE, Category.CONTRACT, Priority.NORMAL, "x", ""),
    )
    at(FRIDAY_17 + timedelta(minutes=30), response("A", FRIDAY_17 + timedelta(minutes=30)))
    at(FRIDAY_17 + timedelta(hours=20))  # 19 h 12 min: at risk under 24/7
    at(FRIDAY_17 + timedelta(hours=25))  # 24 h: breached under 24/7
    at(MONDAY_10, ResolveCase("A", "renewed"))
    # Case B, urgent (15 min / 4 h): answered after 30 min, resolved after 1 h.
    at(
        MONDAY_10,
        OpenCase("B", "c1", Channel.PHONE, Category.TECHNICAL_TROUBLE, Priority.URGENT, "y", ""),
    )
    at(MONDAY_10 + timedelta(minutes=12))
    at(MONDAY_10 + timedelta(minutes=15))
    at(MONDAY_10 + timedelta(minutes=30), response("B", MONDAY_10 + timedelta(minutes=30)))
    at(MONDAY_10 + timedelta(hours=1), ResolveCase("B", "rebooted"))
    # Case C, normal: bounced between two departments (escalated for that), well within its SLA.
    noon = MONDAY_10 + timedelta(hours=2)
    at(
        noon,
        OpenCase("C", "c1", Channel.EMAIL, Category.BILLING_PAYMENT, Priority.NORMAL, "z", ""),
    )
    at(noon + timedelta(minutes=5), response("C", noon + timedelta(minutes=5)))
    at(noon + timedelta(minutes=10), TransferCase("C", "billing", "invoice"))
    at(noon + timedelta(minutes=20), TransferCase("C", "sales", "contract"))
    at(noon + timedelta(hours=1), ResolveCase("C", "credited"))
    return store


SINCE = datetime(2026, 5, 8, tzinfo=UTC)
UNTIL = datetime(2026, 5, 12, tzinfo=UTC)


def test_business_hours_would_have_kept_the_weekend_case_within_target(tmp_path: Path) -> None:
    store = build_history(tmp_path / "events.db")
    history = list(read_history(store, CODEC))
    live = summarize(live_outcomes(history).values(), SINCE, UNTIL)
    # Live, 24/7: A's resolution took 65 h > 24 h (breached), B's first response 30 min > 15 min.
    # C met both targets under either policy, and was escalated for being bounced.
    assert live == Summary(cases=3, decided=3, attained=1, at_risk=2, breached=2, escalated=3)
    candidate = summarize(
        candidate_outcomes(history, load_policy(EXAMPLE_POLICY.read_text()), UNTIL).values(),
        SINCE,
        UNTIL,
    )
    # Business hours 09-12 and 13-18 in Tokyo: A used Fri 17-18 and Mon 09-10, 2 h of 24 h;
    # B's first response still took 30 business minutes of 15 (at risk at 12, breached at 15).
    assert candidate == Summary(cases=3, decided=3, attained=2, at_risk=1, breached=1, escalated=2)
    assert candidate.attainment == pytest.approx(2 / 3)
    store.close()


def test_the_command_prints_both_and_leaves_the_store_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = build_history(tmp_path / "events.db")
    before = store.last_position()
    store.close()
    scratch = tmp_path / "scratch.db"
    main(
        [
            *("--event-store-url", f"sqlite:///{tmp_path / 'events.db'}"),
            *("--policy-file", str(EXAMPLE_POLICY)),
            *("--since", "2026-05-08", "--until", "2026-05-12", "--scratch", str(scratch)),
        ]
    )
    printed = capsys.readouterr().out
    attainment = next(line for line in printed.splitlines() if line.startswith("SLA attainment"))
    assert attainment.split()[-2:] == ["33.3%", "66.7%"]
    escalation = next(line for line in printed.splitlines() if line.startswith("escalation rate"))
    assert escalation.split()[-2:] == ["100.0%", "66.7%"]
    with sqlite3.connect(scratch) as conn:
        rows = conn.execute("SELECT policy, case_id, attained FROM what_if_cases ORDER BY 1, 2")
        assert rows.fetchall() == [
            ("2026-11", "A", 1),
            ("2026-11", "B", 0),
            ("2026-11", "C", 1),
            ("live", "A", 0),
            ("live", "B", 0),
            ("live", "C", 1),
        ]
    reopened = SqliteEventStore(tmp_path / "events.db")
    assert reopened.last_position() == before
    reopened.close()
