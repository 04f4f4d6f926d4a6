"""Generates a realistic multi-customer history through the real command path (benchmarks and
tests share it).

Customers register, open cases on every channel, get contacts, transfers, assignments, notes,
pending periods, resolutions and reopenings, leave feedback, and some profiles are merged and
unmerged, all interleaved at random (seeded) and decided by the domain's own rules. Refused
commands are part of the mix: they must leave nothing behind.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from crm.command_handling import CommandContext
from crm.errors import DomainError
from crm.eventstore.port import EventStore
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from services.bootstrap import build_applications
from services.case.commands import (
    AddNote,
    AssignCase,
    CloseCase,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    SetPendingOnCustomer,
    TransferCase,
)
from services.case.events import Category, ContactOutcome
from services.customer.commands import (
    ChangeTier,
    MergeCustomers,
    RecordPurchase,
    RegisterCustomer,
    UndoMerge,
)
from services.customer.events import ContactPoint, Segment, Tier
from services.feedback.commands import RecordVoiceOfCustomer, SubmitSurvey

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
DEPARTMENTS = ("support", "billing", "technical", "sales", "development")
AGENTS = ("agent-1", "agent-2", "agent-3", "agent-4")


@dataclass
class HistoryWriter:
    """Issues random commands against the applications over one event store."""

    store: EventStore
    seed: int
    now: datetime = START
    customers: list[str] = field(default_factory=list)
    cases: list[tuple[str, str]] = field(default_factory=list)
    accepted: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        clock: Callable[[], datetime] = lambda: self.now + timedelta(days=1)  # noqa: E731
        apps = build_applications(self.store, clock)
        self.customer_app, self.case_app, self.feedback_app = (
            apps.customers,
            apps.cases,
            apps.feedback,
        )
        self._requests = 0

    def write(self, commands: int) -> None:
        """Issue `commands` random commands (accepted or refused)."""
        for _ in range(commands):
            self.step()

    def step(self) -> None:
        self.now += timedelta(seconds=self.random.randint(5, 900))
        action = self._pick_action()
        try:
            action()
            self.accepted += 1
        except DomainError:
            self.refused += 1

    def _context(self, kind: ActorKind = ActorKind.AGENT) -> CommandContext:
        self._requests += 1
        actor_id = self.random.choice(AGENTS) if kind is ActorKind.AGENT else "system"
        return CommandContext(
            request_id=f"h{self.seed}-{self._requests}",
            actor=Actor(kind, actor_id),
            occurred_at=self.now,
        )

    def _pick_action(self) -> Callable[[], object]:
        if len(self.customers) < 3 or self.random.random() < 0.08:
            return self._register
        if not self.cases or self.random.random() < 0.12:
            return self._open_case
        return self.random.choice(
            [
                self._contact,
                self._contact,
                self._contact,
                self._transfer,
                self._assign,
                self._note,
                self._pending,
                self._resolve,
                self._reopen,
                self._close,
                self._survey,
                self._voice,
                self._tier,
                self._purchase,
                self._merge,
                self._unmerge,
            ]
        )

    def _customer(self) -> str:
        return self.random.choice(self.customers)

    def _case(self) -> tuple[str, str]:
        return self.random.choice(self.cases)

    def _register(self) -> object:
        command = RegisterCustomer(
            customer_id=f"cust-{self.seed}-{len(self.customers)}",
            name=f"Customer {len(self.customers)}",
            contact_points=(ContactPoint(Channel.EMAIL, f"c{len(self.customers)}@ex"),),
            language=self.random.choice(("en", "ja")),
            segment=Segment.B2C,
        )
        outcome = self.customer_app.handle(command, self._context(ActorKind.SYSTEM))
        self.customers.append(command.customer_id)
        return outcome

    def _open_case(self) -> object:
        customer_id = self._customer()
        command = OpenCase(
            case_id=f"case-{self.seed}-{len(self.cases)}",
            customer_id=customer_id,
            channel=self.random.choice(list(Channel)),
            category=self.random.choice(list(Category)),
            priority=self.random.choice(list(Priority)),
            subject="Something went wrong",
            description="",
        )
        outcome = self.case_app.handle(command, self._context())
        self.cases.append((command.case_id, customer_id))
        return outcome

    def _contact(self) -> object:
        case_id, _ = self._case()
        bot = self.random.random() < 0.2
        outcome = (
            self.random.choice(list(ContactOutcome))
            if bot
            else self.random.choice((ContactOutcome.ANSWERED, ContactOutcome.ABANDONED))
        )
        command = RecordContact(
            case_id=case_id,
            contact_id=f"contact-{self._requests + 1}",
            channel=self.random.choice(list(Channel)),
            direction=self.random.choice(list(Direction)),
            handler_kind=ActorKind.BOT if bot else ActorKind.AGENT,
            handler_id="bot-1" if bot else self.random.choice(AGENTS),
            outcome=outcome,
            started_at=self.now,
            talk_seconds=self.random.randint(0, 1200),
            hold_seconds=self.random.randint(0, 120),
            after_work_seconds=self.random.randint(0, 300),
            handover_to_agent_id=(
                self.random.choice(AGENTS) if outcome is ContactOutcome.HANDED_TO_HUMAN else ""
            ),
        )
        return self.case_app.handle(command, self._context())

    def _transfer(self) -> object:
        command = TransferCase(
            self._case()[0], self.random.choice(DEPARTMENTS), "needs another team"
        )
        return self.case_app.handle(command, self._context())

    def _assign(self) -> object:
        command = AssignCase(self._case()[0], self.random.choice(AGENTS), "team-a")
        return self.case_app.handle(command, self._context())

    def _note(self) -> object:
        command = AddNote(self._case()[0], f"note-{self._requests + 1}", "called back")
        return self.case_app.handle(command, self._context())

    def _pending(self) -> object:
        command = SetPendingOnCustomer(self._case()[0], "waiting for a photo")
        return self.case_app.handle(command, self._context())

    def _resolve(self) -> object:
        command = ResolveCase(self._case()[0], self.random.choice(("fixed", "refund")))
        return self.case_app.handle(command, self._context())

    def _reopen(self) -> object:
        command = ReopenCase(self._case()[0], "customer came back")
        return self.case_app.handle(command, self._context())

    def _close(self) -> object:
        return self.case_app.handle(CloseCase(self._case()[0]), self._context())

    def _survey(self) -> object:
        case_id, customer_id = self._case()
        command = SubmitSurvey(
            feedback_id=f"fb-{self.seed}-{self._requests + 1}",
            customer_id=customer_id,
            channel=Channel.EMAIL,
            case_id=case_id,
            csat=self.random.randint(1, 5),
            nps=self.random.choice((None, self.random.randint(0, 10))),
        )
        return self.feedback_app.handle(command, self._context(ActorKind.SYSTEM))

    def _voice(self) -> object:
        command = RecordVoiceOfCustomer(
            feedback_id=f"fb-{self.seed}-{self._requests + 1}",
            customer_id=self._customer(),
            channel=self.random.choice(list(Channel)),
            text="The app keeps logging me out",
        )
        return self.feedback_app.handle(command, self._context(ActorKind.SYSTEM))

    def _tier(self) -> object:
        command = ChangeTier(self._customer(), self.random.choice(list(Tier)))
        return self.customer_app.handle(command, self._context())

    def _purchase(self) -> object:
        command = RecordPurchase(
            self._customer(), f"order-{self._requests + 1}", "Plan", 1200, "JPY"
        )
        return self.customer_app.handle(command, self._context(ActorKind.SYSTEM))

    def _merge(self) -> object:
        duplicate, survivor = self.random.sample(self.customers, 2)
        command = MergeCustomers(duplicate, survivor, f"merge-{self._requests + 1}")
        return self.customer_app.merge(command, self._context())

    def _unmerge(self) -> object:
        command = UndoMerge(self._customer(), "not the same person")
        return self.customer_app.undo_merge(command, self._context())
