"""Composition root: picks the adapters named by configuration and wires the services to them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from crm.command_handling import Clock
from crm.eventcodec import EventCodec
from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore
from projections.runner import InProcessProjector
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from services.case.application import CaseApplication, CustomerStanding
from services.case.limits import CompensationLimits, load_limits
from services.customer.application import CustomerApplication
from services.customer.events import Tier
from services.events import EVENT_TYPES
from services.feedback.application import Analyze, FeedbackApplication
from services.feedback.sentiment import analyze as analyze_sentiment
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, load_policy
from services.sla.process import DeadlineProcess

CODEC = EventCodec(EVENT_TYPES)
"""Every event type the services record, by its versioned name: the codec every process uses."""


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Config:
    """Where the system keeps its data and listens; every field has a working default."""

    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path("var")
    event_store_url: str = ""
    read_store_url: str = ""
    grace_seconds: float = 5.0
    # Off in the distributed shape, where Kafka workers maintain the read store instead.
    in_process_projector: bool = True
    # Off in the distributed shape, where the deadline process runs as a worker of its own.
    deadline_process: bool = True
    sla_policy_file: Path | None = None
    compensation_limits_file: Path | None = None

    @property
    def events_url(self) -> str:
        return self.event_store_url or f"sqlite:///{self.data_dir / 'events.db'}"

    @property
    def views_url(self) -> str:
        return self.read_store_url or f"sqlite:///{self.data_dir / 'views.db'}"


@dataclass
class System:
    """Everything one embedded process runs, ready to serve."""

    store: EventStore
    read_store: ViewStore
    customers: CustomerApplication
    cases: CaseApplication
    feedback: FeedbackApplication
    projector: InProcessProjector | None
    deadlines: DeadlineProcess | None = None
    clock: Clock = system_clock
    stopping: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.stopping.set()
        if self.deadlines is not None:
            self.deadlines.stop()
        if self.projector is not None:
            self.projector.stop()
        self.read_store.close()
        self.store.close()


def build_system(config: Config, clock: Clock | None = None) -> System:
    """Open the stores and build the applications and the in-process projector (not started)."""
    now: Callable[[], datetime] = clock or system_clock
    store = open_event_store(config.events_url)
    read_store = open_view_store(config.views_url)
    limits = (
        CompensationLimits()
        if config.compensation_limits_file is None
        else load_limits(config.compensation_limits_file.read_text())
    )
    apps = build_applications(store, now, limits=limits)
    policy = read_policy(config.sla_policy_file)
    return System(
        store=store,
        read_store=read_store,
        customers=apps.customers,
        cases=apps.cases,
        feedback=apps.feedback,
        projector=(
            InProcessProjector(store, read_store, CODEC) if config.in_process_projector else None
        ),
        deadlines=(
            DeadlineProcess(store, apps.cases, policy, now, CODEC)
            if config.deadline_process
            else None
        ),
        clock=now,
    )


@dataclass(frozen=True)
class Applications:
    """The three services' use cases over one event store, each told what it may ask the others."""

    customers: CustomerApplication
    cases: CaseApplication
    feedback: FeedbackApplication


def build_applications(
    store: EventStore,
    clock: Clock,
    *,
    limits: CompensationLimits | None = None,
    analyze: Analyze = analyze_sentiment,
) -> Applications:
    """Wire the services to one another through the narrow questions each asks."""
    customers = CustomerApplication(store, CODEC, clock)

    def customer_standing(customer_id: str) -> CustomerStanding:
        customer = customers.get(customer_id).state
        assert customer is not None
        return CustomerStanding(vip=customer.tier is Tier.VIP, merged_into=customer.merged_into)

    def require_customer(customer_id: str) -> None:
        customers.get(customer_id)

    cases = CaseApplication(store, CODEC, clock, customer_standing, limits)

    def case_owner(case_id: str) -> str:
        case = cases.get(case_id).state
        assert case is not None
        return case.customer_id

    feedback = FeedbackApplication(store, CODEC, clock, require_customer, case_owner, analyze)
    return Applications(customers, cases, feedback)


def read_policy(path: Path | None) -> SlaPolicy:
    """The SLA policy from a JSON file (deploy/sla-policy.example.json shows the shape)."""
    return DEFAULT_POLICY if path is None else load_policy(path.read_text())
