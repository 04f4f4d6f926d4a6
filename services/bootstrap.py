"""Composition root: builds every process from its settings, picking the adapters they name.

The only caller of the store factories. Everything a setting names is opened or read here, at
start (store URLs, policy and limits files, the listen address), so a wrong value is a
`StartupError` naming the setting before anything runs; entry points run what this returns.
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
from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore
from crm.lease import FileLease, Lease
from crm.personal.cipher import PersonalData
from crm.personal.factory import open_key_store
from crm.personal.keys import (
    DEV_MASTER_KEY_FILE,
    MasterKey,
    ensure_master_key_file,
    load_master_key,
)
from crm.postgres_connections import POSTGRES_FORM, is_postgres
from crm.postgres_lease import PostgresLease
from crm.sealer import Sealer, load_seal_key
from crm.seals import SealKey
from crm.security_settings import (
    KEY_STORE_URL,
    MASTER_KEY_FILE,
    SEAL_KEY_FILE,
    TLS_CERT,
    TLS_CLIENT_CA,
    TLS_KEY,
    TOKEN_KEYS,
)
from crm.setting import Setting, SettingError, StartupError
from crm.settings import (
    COMPENSATION_LIMITS_FILE,
    DATA_DIR,
    DEADLINE_CHECKPOINT_URL,
    EVENT_STORE_URL,
    HEALTH_LISTEN,
    LISTEN,
    PROJECTION,
    READ_STORE_URL,
    RELAY_CHECKPOINT_URL,
    SLA_POLICY_FILE,
    Settings,
)
from crm.startup import attributed_to
from crm.tls import check_certificates, check_pair, ensure_self_signed
from crm.tokens import DEV_KEY_FILE, KeySet, TokenRules, ensure_dev_key, load_key_set
from crm.urls import (
    SQLITE_FORM,
    SQLITE_PREFIX,
    is_sqlite,
    redacted,
    require_writable_directory,
    sqlite_path,
    unsupported,
)
from projections.catalogue import PROJECTION_NAMES, projection_named
from projections.runner import InProcessProjector
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from projections.workers.app import WorkerSettings, create_app
from relay.checkpoint import RelayCheckpoint, RelayCheckpointPort
from relay.postgres_checkpoint import PostgresRelayCheckpoint
from relay.publisher import Relay
from services.authentication import Authenticator
from services.caller_limits import Limits
from services.case.application import CaseApplication, CustomerStanding
from services.case.limits import CompensationLimits, load_limits
from services.customer.application import CustomerApplication
from services.customer.events import Tier
from services.events import EVENT_TYPES, UPCASTERS
from services.feedback.application import Analyze, FeedbackApplication
from services.feedback.sentiment import analyze as analyze_sentiment
from services.grpc_server import GrpcServer, HealthPortUnavailable, create_server
from services.server_security import ServerSecurity, TlsFiles
from services.sla.checkpoint import DeadlineCheckpoint, DeadlineCheckpointPort
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, load_policy
from services.sla.postgres_checkpoint import PostgresDeadlineCheckpoint
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
    checkpoint = _deadline_checkpoint(settings) if settings.in_process_deadlines else None
    store = _event_store(settings)
    view_store = _view_store(settings)
    try:
        # Only a server of the audit service signs and serves seals; after the stores, so that
        # a wrong store URL creates no key.
        seal_key = _seal_key(settings) if "audit" in settings.services else None
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


def _seal_key(settings: Settings) -> SealKey:
    """The key seals are signed with (a development one is created on first start)."""
    try:
        return load_seal_key(settings.seal_key_file)
    except (OSError, ValueError) as exc:
        raise SettingError(SEAL_KEY_FILE, str(exc)) from None


def build_personal_data(settings: Settings) -> PersonalData:
    """The field cipher over the configured key store; with no master key configured, a
    development one is generated in the data dir on first start (like the token secret)."""
    with attributed_to(MASTER_KEY_FILE, settings.master_key_file):
        master = _master_key(settings)
    with attributed_to(KEY_STORE_URL):
        _data_dir_writable(settings, settings.key_store_url)
        try:
            keys = open_key_store(settings.key_store_url, KEY_STORE_URL.name, master)
        except ValueError as error:
            raise SettingError(KEY_STORE_URL, str(error)) from None
    return PersonalData(keys, digest_key=master.derived("crm command digest v1"))


def dev_master_key(settings: Settings) -> Path:
    """Where the development master key lives when none is configured."""
    return settings.data_dir / DEV_MASTER_KEY_FILE


def _master_key(settings: Settings) -> MasterKey:
    path = settings.master_key_file
    if path is None:
        path = dev_master_key(settings)
        if not path.exists():
            with attributed_to(DATA_DIR):
                ensure_master_key_file(path)

    try:
        return load_master_key(path)
    except ValueError as error:
        raise SettingError(MASTER_KEY_FILE, f"{path}: {error}") from None


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


def dev_token_key(settings: Settings) -> Path:
    """Where the development token secret lives when no key set is configured."""
    return settings.data_dir / DEV_KEY_FILE


def build_security(settings: Settings) -> ServerSecurity:
    """Credentials, TLS and limits from the settings; development keys and a self-signed
    certificate are generated in the data dir on first start when none are configured."""
    tls = _tls(settings)
    authenticator = None
    if settings.auth != "off":
        if settings.token_keys is None:
            with attributed_to(DATA_DIR):
                ensure_dev_key(dev_token_key(settings))
        keys = _key_set(settings.token_keys or dev_token_key(settings))
        rules = TokenRules(settings.token_audience, settings.token_issuer)
        authenticator = Authenticator(keys, rules, settings.tls_client_ca is not None)
    # Said once everything is known to be right, so a wrong setting stays a one-line error.
    if authenticator is None:
        log.warning("authentication is off (--auth off): every caller may call every RPC")
    elif settings.token_keys is None:
        log.info("development bearer tokens: crm-token --role agent --subject agent-7 --team t1")
    if tls is None:
        log.warning("TLS is off (--tls off): calls and tokens cross the network in plaintext")
    elif settings.tls_cert is None:
        log.info(
            "TLS with a self-signed certificate; clients trust %s", dev_certificate(settings)[0]
        )
    return ServerSecurity(
        authenticator,
        tls,
        Limits(settings.max_calls_per_caller, settings.max_watches_per_caller),
        settings.max_request_bytes,
        settings.reflection_open,
    )


def announce_security(settings: Settings, security: ServerSecurity) -> None:
    """Log how callers get in, once the server is built (a wrong setting stays one line)."""
    if security.authenticator is None:
        log.warning("authentication is off (--auth off): every caller may call every RPC")
    elif settings.token_keys is None:
        log.info("development bearer tokens: crm-token --role agent --subject agent-7 --team t1")
    if security.tls is None:
        log.warning("TLS is off (--tls off): calls and tokens cross the network in plaintext")
    elif settings.tls_cert is None:
        certificate = dev_certificate(settings)[0]
        log.info("TLS with a self-signed certificate; clients trust %s", certificate)
    if settings.master_key_file is None:
        log.info(
            "personal data sealed under the development master key %s: keep it with the key"
            " store, and give --master-key-file in production",
            dev_master_key(settings),
        )


def build_token_signer(settings: Settings) -> tuple[KeySet, TokenRules]:
    """`crm-token`: the key set the server checks tokens with, which must hold an HS256 secret."""
    keys_file = settings.token_keys or dev_token_key(settings)
    if not keys_file.exists():
        raise SettingError(
            DATA_DIR,
            f"no development key {str(keys_file)!r} yet; start crm-server (make run) once with"
            " this data dir to create it, or give --token-keys",
        )
    keys = _key_set(keys_file)
    if keys.signing_key is None:
        raise SettingError(TOKEN_KEYS, "holds public keys only; crm-token signs with HS256 secrets")
    return keys, TokenRules(settings.token_audience, settings.token_issuer)


def _key_set(path: Path) -> KeySet:
    try:
        return load_key_set(path)
    except ValueError as error:
        raise SettingError(TOKEN_KEYS, str(error)) from None


def _tls(settings: Settings) -> TlsFiles | None:
    if not settings.tls:
        if settings.tls_client_ca is not None:
            raise SettingError(TLS_CLIENT_CA, "needs TLS; give --tls on, or no client CA")
        return None
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingError(TLS_KEY, "give --tls-cert and --tls-key together, or neither")
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None or key is None:
        cert, key = dev_certificate(settings)
        with attributed_to(DATA_DIR):
            ensure_self_signed(cert, key)
    with attributed_to(TLS_CERT, cert):
        chain, private = cert.read_bytes(), key.read_bytes()
    try:
        check_pair(chain, private)
    except ValueError as error:
        raise SettingError(TLS_CERT, f"{cert}: {error}") from None
    if settings.tls_client_ca is None:
        return TlsFiles(chain, private)
    with attributed_to(TLS_CLIENT_CA, settings.tls_client_ca):
        client_ca = settings.tls_client_ca.read_bytes()
    try:
        check_certificates(client_ca)
    except ValueError as error:
        raise SettingError(TLS_CLIENT_CA, f"{settings.tls_client_ca} {error}") from None
    return TlsFiles(chain, private, client_ca)


def dev_certificate(settings: Settings) -> tuple[Path, Path]:
    """The self-signed certificate and key generated in the data dir, when none is configured."""
    return settings.data_dir / "tls" / "server.crt", settings.data_dir / "tls" / "server.key"


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
    store = _event_store(settings)
    checkpoint = _relay_checkpoint(settings)
    relay = Relay(
        store,
        checkpoint,
        settings.kafka_bootstrap,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        namespace=settings.topic_namespace,
        codec=CODEC,
    )
    lease = _lease(settings.relay_checkpoint_url, RELAY_CHECKPOINT_URL, "crm-relay")
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
    view_store = _view_store(settings)
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
    checkpoint = _deadline_checkpoint(settings)
    store = _event_store(settings)
    personal = build_personal_data(settings)
    cases = build_applications(store, now, personal=personal).cases
    process = DeadlineProcess(store, cases, policy, now, CODEC, checkpoint=checkpoint)
    url = settings.deadline_checkpoint_url
    lease = _lease(url, DEADLINE_CHECKPOINT_URL, "crm-deadlines")
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
    store = _event_store(settings)
    views: ViewStore | None = None
    try:
        if into is None:
            target, views = settings.read_store_url, _view_store(settings)
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
    store = _event_store(settings)
    try:
        views = _view_store(settings)
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
    return WhatIf(_event_store(settings), candidate)


def _data_dir_writable(settings: Settings, url: str) -> None:
    """A store file in a read-only data dir is the data dir's error: that is the setting to fix."""
    if not url.startswith(SQLITE_PREFIX):
        return
    directory = Path(url[len(SQLITE_PREFIX) :]).parent
    if directory.is_dir() and directory.resolve() == settings.data_dir.resolve():
        with attributed_to(DATA_DIR):
            require_writable_directory(settings.data_dir, DATA_DIR.name)


def _event_store(settings: Settings) -> EventStore:
    _data_dir_writable(settings, settings.event_store_url)
    # The URL as errors show it: a server's URL may carry a password.
    with attributed_to(EVENT_STORE_URL, redacted(settings.event_store_url)):
        return open_event_store(settings.event_store_url)


def _relay_checkpoint(settings: Settings) -> RelayCheckpointPort:
    url = settings.relay_checkpoint_url
    _data_dir_writable(settings, url)  # only an SQLite file's
    with attributed_to(RELAY_CHECKPOINT_URL, redacted(url)):
        if is_postgres(url):
            return PostgresRelayCheckpoint(url, "relay", field=RELAY_CHECKPOINT_URL.name)
        _require_sqlite(url, RELAY_CHECKPOINT_URL.name)
        return RelayCheckpoint(sqlite_path(url, RELAY_CHECKPOINT_URL.name), "relay")


def _deadline_checkpoint(settings: Settings) -> DeadlineCheckpointPort:
    url = settings.deadline_checkpoint_url
    _data_dir_writable(settings, url)  # only an SQLite file's
    with attributed_to(DEADLINE_CHECKPOINT_URL, redacted(url)):
        if is_postgres(url):
            return PostgresDeadlineCheckpoint(url, field=DEADLINE_CHECKPOINT_URL.name)
        _require_sqlite(url, DEADLINE_CHECKPOINT_URL.name)
        return DeadlineCheckpoint(sqlite_path(url, DEADLINE_CHECKPOINT_URL.name))


def _lease(checkpoint_url: str, setting: Setting[str], name: str) -> Lease:
    """The lease of the copies sharing a checkpoint: whoever resumes from it must hold it.

    Beside an SQLite checkpoint, a lock on a file next to it (copies on one machine); in a
    PostgreSQL checkpoint's database, an advisory lock (copies anywhere).
    """
    if is_postgres(checkpoint_url):
        return PostgresLease(checkpoint_url, name)
    path = sqlite_path(checkpoint_url, setting.name)
    return FileLease(path.with_name(path.name + ".lease"))


def _view_store(settings: Settings) -> ViewStore:
    _data_dir_writable(settings, settings.read_store_url)
    with attributed_to(READ_STORE_URL, redacted(settings.read_store_url)):
        return open_view_store(settings.read_store_url)


def _require_sqlite(url: str, field: str) -> None:
    """A checkpoint URL that is neither PostgreSQL nor SQLite names no adapter."""
    if not is_sqlite(url):
        raise unsupported(url, field, f"{SQLITE_FORM}, {POSTGRES_FORM}")


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
