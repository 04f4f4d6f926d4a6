"""Composition root: builds every process from its settings, picking the adapters they name.

With its two halves, services.bootstrap_stores (stores, checkpoints, leases) and
services.bootstrap_security (credentials, TLS, personal-data and seal keys), the only caller of the
store factories. Everything a setting names is opened or read here, at start (store URLs, policy
and limits files, the listen address), so a wrong value is a `StartupError` naming the setting
before anything runs; entry points run what this returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faust

from crm.command_handling import DEFAULT_EARLIEST, Clock
from crm.errors import InvalidInput
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.lease import Lease
from crm.personal.cipher import PersonalData
from crm.sealer import Sealer
from crm.seals import SealKey
from crm.setting import SettingError, StartupError
from crm.settings import (
    COMPENSATION_LIMITS_FILE,
    DEADLINE_CHECKPOINT_URL,
    HEALTH_LISTEN,
    LISTEN,
    PROJECTION,
    RELAY_CHECKPOINT_URL,
    SLA_POLICY_FILE,
    Settings,
)
from crm.startup import attributed_to
from crm.urls import (
    redacted,
)
from projections.catalogue import PROJECTION_NAMES, projection_named
from projections.runner import InProcessProjector
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from projections.workers.app import WorkerSettings, create_app
from relay.checkpoint import RelayCheckpointPort
from relay.publisher import Relay
from services.bootstrap_security import (
    announce_security,
    build_personal_data,
    build_security,
    load_seal_key_of,
)
from services.bootstrap_stores import (
    lease_beside,
    open_deadline_checkpoint,
    open_events,
    open_relay_checkpoint,
    open_views,
)
from services.case.application import CaseApplication, CustomerStanding
from services.case.limits import CompensationLimits, load_limits
from services.customer.application import CustomerApplication
from services.customer.events import Tier
from services.events import EVENT_TYPES, UPCASTERS
from services.feedback.application import Analyze, FeedbackApplication
from services.feedback.sentiment import analyze as analyze_sentiment
from services.grpc_server import GrpcServer, HealthPortUnavailable, create_server
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, load_policy
from services.sla.process import DeadlineProcess

log = logging.getLogger("crm.bootstrap")

CODEC = EventCodec(EVENT_TYPES, UPCASTERS)
"""Every event type the services record, by its versioned name: the codec of the processes that
carry events without reading personal data (relay, Kafka workers, projections, audit), which
pass sealed personal values through as they are."""


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class System:
    """Everything one embedded process runs, ready to serve."""

    store: EventStore
    view_store: ViewStore
    customers: CustomerApplication
    cases: CaseApplication
    feedback: FeedbackApplication
    projector: InProcessProjector | None
    deadlines: DeadlineProcess | None = None
    clock: Clock = system_clock
    stopping: threading.Event = field(default_factory=threading.Event)
    seal_key: SealKey | None = None  # signs seals; its public half is served by ListSeals
    sealer: Sealer | None = None  # started by crm-server (crm.sealer)
    personal: PersonalData | None = None

    def close(self) -> None:
        self.stopping.set()
        if self.sealer is not None:
            self.sealer.stop()
        if self.deadlines is not None:
            self.deadlines.close()  # saves its state for the next start
        if self.projector is not None:
            self.projector.stop()
        self.view_store.close()
        self.store.close()
        if self.personal is not None:
            self.personal.keys.close()


def build_system(settings: Settings, clock: Clock | None = None) -> System:
    """Open the stores; build the applications, the projector and the deadline process (idle)."""
    now = clock or system_clock
    limits = _limits(settings.compensation_limits_file)
    policy = _policy(settings.sla_policy_file)
    checkpoint = open_deadline_checkpoint(settings) if settings.in_process_deadlines else None
    store = open_events(settings)
    view_store = open_views(settings)
    try:
        # Only a server of the audit service signs and serves seals; after the stores, so that
        # a wrong store URL creates no key.
        seal_key = load_seal_key_of(settings) if "audit" in settings.services else None
        personal = build_personal_data(settings)
    except StartupError:
        view_store.close()
        store.close()
        raise
    apps = build_applications(
        store, now, limits=limits, earliest=settings.earliest_occurred_at, personal=personal
    )
    return System(
        store=store,
        view_store=view_store,
        customers=apps.customers,
        cases=apps.cases,
        feedback=apps.feedback,
        projector=(
            InProcessProjector(store, view_store, CODEC) if settings.in_process_projector else None
        ),
        deadlines=(
            None
            if checkpoint is None
            else DeadlineProcess(store, apps.cases, policy, now, CODEC, checkpoint=checkpoint)
        ),
        clock=now,
        seal_key=seal_key,
        sealer=(
            None
            if seal_key is None
            else Sealer(
                store,
                seal_key,
                now,
                every_events=settings.seal_every_events,
                every_seconds=settings.seal_every_seconds,
            )
        ),
        personal=personal,
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
    earliest: datetime = DEFAULT_EARLIEST,
    personal: PersonalData | None = None,
) -> Applications:
    """Wire the services to one another through the narrow questions each asks; with `personal`,
    personal fields are sealed as they are recorded and opened as they are read."""
    codec = CODEC if personal is None else EventCodec(EVENT_TYPES, UPCASTERS, personal=personal)
    customers = CustomerApplication(store, codec, clock, earliest)

    def customer_standing(customer_id: str) -> CustomerStanding:
        customer = customers.get(customer_id).state
        assert customer is not None
        return CustomerStanding(vip=customer.tier is Tier.VIP, merged_into=customer.merged_into)

    def require_customer(customer_id: str) -> None:
        customers.get(customer_id)

    cases = CaseApplication(store, codec, clock, customer_standing, limits, earliest)

    def case_owner(case_id: str) -> str:
        case = cases.get(case_id).state
        assert case is not None
        return case.customer_id

    feedback = FeedbackApplication(
        store, codec, clock, require_customer, case_owner, analyze, earliest
    )
    return Applications(customers, cases, feedback)


@dataclass
class Server:
    """`crm-server`: the embedded system behind a gRPC server bound to its port, not started."""

    system: System
    grpc: GrpcServer

    @property
    def port(self) -> int:
        return self.grpc.port


async def build_server(settings: Settings) -> Server:
    """Build the system and its gRPC server on the running event loop, which will serve it."""
    system = build_system(settings)
    try:
        security = build_security(settings)
        with attributed_to(LISTEN):
            try:
                server = await create_server(
                    system,
                    settings.listen,
                    security=security,
                    services=settings.services,
                    max_concurrent_calls=settings.max_concurrent_calls,
                    health_listen=settings.health_listen,
                )
            except HealthPortUnavailable as exc:
                raise SettingError(HEALTH_LISTEN, str(exc)) from None
    except StartupError:
        system.close()
        raise
    announce_security(settings, security)
    report_store_health(system, server)
    return Server(system, server)


def report_store_health(system: System, server: GrpcServer) -> None:
    """Health turns NOT_SERVING when the event store can no longer write where it was opened."""
    system.store.on_unavailable(server.stop_serving_health)


@dataclass
class RelayProcess:
    """`crm-relay`: the relay with the store it tails and the checkpoint it moves."""

    relay: Relay
    store: EventStore
    checkpoint: RelayCheckpointPort
    lease: Lease  # held by the one active copy; the others wait as standbys

    def close(self) -> None:
        self.lease.release()
        self.checkpoint.close()
        self.store.close()


def build_relay(settings: Settings) -> RelayProcess:
    store = open_events(settings)
    checkpoint = open_relay_checkpoint(settings)
    relay = Relay(
        store,
        checkpoint,
        settings.kafka_bootstrap,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        namespace=settings.topic_namespace,
        codec=CODEC,
    )
    lease = lease_beside(settings.relay_checkpoint_url, RELAY_CHECKPOINT_URL, "crm-relay")
    return RelayProcess(relay, store, checkpoint, lease)


@dataclass
class ProjectionWorker:
    """`crm-projection-worker`: the faust app of one projection and the view store it writes."""

    app: faust.App
    settings: WorkerSettings
    view_store: ViewStore


def build_projection_worker(settings: Settings) -> ProjectionWorker:
    with attributed_to(PROJECTION, settings.projection or "(none)"):
        if not settings.projection:
            raise InvalidInput(
                PROJECTION.name, f"name the projection to run, one of {', '.join(PROJECTION_NAMES)}"
            )
        projection_named(settings.projection)
    view_store = open_views(settings)
    worker = WorkerSettings(
        bootstrap=settings.kafka_bootstrap,
        projection=settings.projection,
        namespace=settings.topic_namespace,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        session_timeout=settings.kafka_session_timeout,
    )
    return ProjectionWorker(create_app(worker, view_store, CODEC), worker, view_store)


@dataclass
class DeadlineWorker:
    """`crm-deadline-worker`: the deadline process on its own, with the store it follows."""

    process: DeadlineProcess
    store: EventStore
    lease: Lease  # held by the one active copy; the others wait as standbys
    personal: PersonalData | None = None

    def close(self) -> None:
        """Stop the process (it saves its state and closes its checkpoint), close the stores,
        and give the lease up for a standby."""
        self.process.close()
        self.store.close()
        if self.personal is not None:
            self.personal.keys.close()
        self.lease.release()


def build_deadline_worker(settings: Settings, clock: Clock | None = None) -> DeadlineWorker:
    now = clock or system_clock
    policy = _policy(settings.sla_policy_file)
    checkpoint = open_deadline_checkpoint(settings)
    store = open_events(settings)
    personal = build_personal_data(settings)
    cases = build_applications(store, now, personal=personal).cases
    process = DeadlineProcess(store, cases, policy, now, CODEC, checkpoint=checkpoint)
    url = settings.deadline_checkpoint_url
    lease = lease_beside(url, DEADLINE_CHECKPOINT_URL, "crm-deadlines")
    return DeadlineWorker(process, store, lease, personal)


@dataclass
class Rebuild:
    """`crm-rebuild`: the history to replay and the view store whose projections it fills."""

    store: EventStore
    views: ViewStore
    target: str  # the view store, as named to the user
    projections: tuple[str, ...]
    resume: bool

    def close(self) -> None:
        self.views.close()
        self.store.close()


def build_rebuild(
    settings: Settings, into: Path | None, projections: Sequence[str], *, resume: bool
) -> Rebuild:
    """Open the event store and the view store to rebuild into: the file `into` names, else the
    configured one; the projections must be empty there, unless a rebuild is being resumed."""
    with attributed_to(PROJECTION, ",".join(projections)):
        names = tuple(projection_named(name).name for name in projections)
        if not names:
            raise InvalidInput(PROJECTION.name, "name at least one projection")
    store = open_events(settings)
    views: ViewStore | None = None
    try:
        if into is None:
            target, views = settings.read_store_url, open_views(settings)
        else:
            with attributed_to("--into", into):
                target, views = str(into), open_view_store(f"sqlite:///{into}")
        filled = [(name, views.checkpoint(name)) for name in names]
        started = [f"{name} is at position {position}" for name, position in filled if position]
        if started and not resume:
            raise StartupError(
                f"{target}: {', '.join(started)}; a rebuild needs empty projections: give"
                " --into a fresh file, or --resume to finish a rebuild that was interrupted"
            )
    except BaseException:
        if views is not None:
            views.close()
        store.close()
        raise
    return Rebuild(store, views, target, names, resume)


def build_blue_green(settings: Settings, projection: str) -> Rebuild:
    """Open the event store and the configured view store, whose live projection `crm-admin
    rebuild` rebuilds beside itself (projections/bluegreen.py)."""
    with attributed_to("projection", projection):
        name = projection_named(projection).name
    store = open_events(settings)
    try:
        views = open_views(settings)
    except BaseException:
        store.close()
        raise
    return Rebuild(store, views, redacted(settings.read_store_url), (name,), resume=True)


@dataclass
class WhatIf:
    """`crm-what-if`: the live history to replay and the candidate policy to replay it under."""

    store: EventStore
    candidate: SlaPolicy


def build_what_if(settings: Settings, candidate_file: Path) -> WhatIf:
    with attributed_to("--policy-file", candidate_file):
        candidate = load_policy(candidate_file.read_text())
    return WhatIf(open_events(settings), candidate)


def _policy(path: Path | None) -> SlaPolicy:
    """The SLA policy from a JSON file (deploy/sla-policy.example.json shows the shape)."""
    if path is None:
        return DEFAULT_POLICY
    with attributed_to(SLA_POLICY_FILE, path):
        return load_policy(path.read_text())


def _limits(path: Path | None) -> CompensationLimits:
    if path is None:
        return CompensationLimits()
    with attributed_to(COMPENSATION_LIMITS_FILE, path):
        return load_limits(path.read_text())
