"""Every `CRM_*` setting, declared once: flag, environment variable, default, parser and help.

The stores' and processes' settings are declared here; those of security, personal-data keys and
seals in crm.security_settings; `ALL` lists both, and `Settings` holds every value.

Each process names the settings it reads (crm.startup builds its command line from them) and
`resolve` takes each value from the flag, else the environment variable, else the default; an
empty value counts as not given. A default may name `<data-dir>`: it is filled in with the data
dir setting, so every process derives the same paths from one directory. A wrong value is a
`SettingError` naming the flag and the variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from crm.security_settings import PERSONAL_DATA, SEALING, SECURITY
from crm.setting import (
    DATA_DIR_MARK,
    Setting,
    parse_address,
    parse_brokers,
    parse_choice,
    parse_directory,
    parse_instant,
    parse_namespace,
    parse_optional_address,
    parse_optional_file,
    parse_port,
    parse_seconds,
    parse_text,
    parse_whole,
)

# Parsers of these settings alone (crm.setting has those shared).


def _in_process(text: str) -> bool:
    return parse_choice("in-process", "off")(text) == "in-process"


SERVICE_NAMES = ("customer", "case", "feedback", "timeline", "audit")
"""The gRPC services one server can serve, by the names the `services` setting takes."""


def _services(text: str) -> tuple[str, ...]:
    """A comma list of service names, each once, in the order of SERVICE_NAMES."""
    named = [name.strip() for name in text.split(",") if name.strip()]
    choices = ",".join(SERVICE_NAMES)
    if not named:
        raise ValueError(f"{text!r} names no service; give one or more of {choices}")
    unknown = [name for name in named if name not in SERVICE_NAMES]
    if unknown:
        raise ValueError(f"no service {unknown[0]!r}; give one or more of {choices}")
    return tuple(name for name in SERVICE_NAMES if name in named)


LISTEN = Setting(
    name="listen",
    flag="--listen",
    env="CRM_LISTEN",
    default="127.0.0.1:50051",
    parse=parse_address,
    help="where the gRPC server listens; port 0 picks a free one and logs it",
    metavar="HOST:PORT",
)

HEALTH_LISTEN = Setting(
    name="health_listen",
    flag="--health-listen",
    env="CRM_HEALTH_LISTEN",
    default="",
    parse=parse_optional_address,
    help="also serve gRPC health alone, in plaintext, here (for probes that cannot speak TLS,"
    " e.g. Kubernetes'); none: health is served on the listen address only",
    metavar="HOST:PORT",
)

SERVICES = Setting(
    name="services",
    flag="--services",
    env="CRM_SERVICES",
    default=",".join(SERVICE_NAMES),
    parse=_services,
    help="the gRPC services this server serves (a comma list), so each can run and scale apart",
    metavar="NAME[,NAME...]",
)

DATA_DIR = Setting(
    name="data_dir",
    flag="--data-dir",
    env="CRM_DATA_DIR",
    default="var",
    parse=parse_directory,
    help="directory of the embedded SQLite files; the store URLs default to files in it",
    metavar="DIR",
)

EVENT_STORE_URL = Setting(
    name="event_store_url",
    flag="--event-store-url",
    env="CRM_EVENT_STORE_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/events.db",
    parse=parse_text,
    help="the event store, the source of truth: sqlite:///<path> (sqlite:////abs/path.db for an"
    " absolute path), postgresql://<user>@<host>:<port>/<database> (postgres:// too), or a"
    " KurrentDB / EventStoreDB server, kurrentdb://[user:password@]host:2113[?tls=false]"
    " (esdb:// too)",
    metavar="URL",
)

READ_STORE_URL = Setting(
    name="read_store_url",
    flag="--read-store-url",
    env="CRM_READ_STORE_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/views.db",
    parse=parse_text,
    help="the view store the projections write and the query API reads: sqlite:///<path>, or"
    " postgresql://<user>@<host>:<port>/<database> (migrated in place at start)",
    metavar="URL",
)

RELAY_CHECKPOINT_URL = Setting(
    name="relay_checkpoint_url",
    flag="--checkpoint-url",
    env="CRM_RELAY_CHECKPOINT_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/relay.db",
    parse=parse_text,
    help="the relay's checkpoint: the last global position Kafka acknowledged; an SQLite file"
    " or PostgreSQL (postgresql://...)",
    metavar="URL",
)

DEADLINE_CHECKPOINT_URL = Setting(
    name="deadline_checkpoint_url",
    flag="--deadline-checkpoint-url",
    env="CRM_DEADLINE_CHECKPOINT_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/deadlines.db",
    parse=parse_text,
    help="the deadline process's saved timers (open cases' SLA watches) and the position they"
    " reflect; a restart reads only the events after it; an SQLite file or PostgreSQL"
    " (postgresql://...)",
    metavar="URL",
)

LOG_FORMAT = Setting(
    name="log_format",
    flag="--log-format",
    env="CRM_LOG_FORMAT",
    default="auto",
    parse=parse_choice("auto", "json", "text"),
    help="json: one object a line; text; auto: text on a terminal, JSON otherwise",
    metavar="{auto,json,text}",
)

SLA_POLICY_FILE = Setting(
    name="sla_policy_file",
    flag="--sla-policy-file",
    env="CRM_SLA_POLICY_FILE",
    default="",
    parse=parse_optional_file,
    help="JSON SLA policy (see deploy/sla-policy.example.json); built-in targets when none",
    metavar="FILE",
)

COMPENSATION_LIMITS_FILE = Setting(
    name="compensation_limits_file",
    flag="--compensation-limits-file",
    env="CRM_COMPENSATION_LIMITS_FILE",
    default="",
    parse=parse_optional_file,
    help='JSON {"currency": "JPY", "default_minor": 10000, "agents": {"agent-7": 30000}};'
    " 10,000 JPY for every agent when none",
    metavar="FILE",
)

PROJECTOR = Setting(
    name="in_process_projector",
    flag="--projector",
    env="CRM_PROJECTOR",
    default="in-process",
    parse=_in_process,
    help="off when projection workers maintain the view store (the distributed shape)",
    metavar="{in-process,off}",
)

DEADLINES = Setting(
    name="in_process_deadlines",
    flag="--deadlines",
    env="CRM_DEADLINES",
    default="in-process",
    parse=_in_process,
    help="off when the deadline process runs as crm-deadline-worker (the distributed shape)",
    metavar="{in-process,off}",
)

GRACE_SECONDS = Setting(
    name="grace_seconds",
    flag="--grace-seconds",
    env="CRM_GRACE_SECONDS",
    default="5",
    parse=parse_seconds(0, inclusive=True),
    help="on SIGTERM, how long running calls may take to finish",
    metavar="SECONDS",
)

MAX_CONCURRENT_CALLS = Setting(
    name="max_concurrent_calls",
    flag="--max-concurrent-calls",
    env="CRM_MAX_CONCURRENT_CALLS",
    default="1000",
    parse=parse_whole(1),
    help="calls (open watches included) a server runs at once; more get RESOURCE_EXHAUSTED",
    metavar="N",
)

KAFKA_BOOTSTRAP = Setting(
    name="kafka_bootstrap",
    flag="--bootstrap",
    env="CRM_KAFKA_BOOTSTRAP",
    default="127.0.0.1:9092",
    parse=parse_brokers,
    help="the Kafka brokers to connect to first",
    metavar="HOST:PORT[,...]",
)

KAFKA_PARTITIONS = Setting(
    name="kafka_partitions",
    flag="--partitions",
    env="CRM_KAFKA_PARTITIONS",
    default="6",
    parse=parse_whole(1),
    help="partitions of every event topic (all topics alike, keyed by customer)",
    metavar="N",
)

KAFKA_REPLICATION_FACTOR = Setting(
    name="kafka_replication_factor",
    flag="--replication-factor",
    env="CRM_KAFKA_REPLICATION_FACTOR",
    default="1",
    parse=parse_whole(1),
    help="copies of each partition kept by the brokers, for the event topics this process creates"
    " when they are missing (at most the broker count)",
    metavar="N",
)

TOPIC_NAMESPACE = Setting(
    name="topic_namespace",
    flag="--namespace",
    env="CRM_TOPIC_NAMESPACE",
    default="",
    parse=parse_namespace,
    help="prefix of topic names and consumer groups, to keep deployments apart",
    metavar="PREFIX",
)

KAFKA_SESSION_TIMEOUT = Setting(
    name="kafka_session_timeout",
    flag="--session-timeout",
    env="CRM_KAFKA_SESSION_TIMEOUT",
    default="6",
    parse=parse_seconds(0, inclusive=False),
    help="seconds until a worker that died without leaving loses its partitions",
    metavar="SECONDS",
)
EARLIEST_OCCURRED_AT = Setting(
    name="earliest_occurred_at",
    flag="--earliest-occurred-at",
    env="CRM_EARLIEST_OCCURRED_AT",
    default="2000-01-01T00:00:00+00:00",
    parse=parse_instant,
    help="the earliest time a command or a contact may say it happened; earlier is refused",
    metavar="INSTANT",
)

PROJECTION = Setting(
    name="projection",
    flag="--projection",
    env="CRM_PROJECTION",
    default="",
    parse=parse_text,
    help="the named projection a Kafka worker runs (timeline, case_views, customer_risk,"
    " kpi_facts; each is its own consumer group), or crm-rebuild rebuilds (all when none)",
    metavar="NAME",
)

LOCAL_KAFKA_PORT = Setting(
    name="local_kafka_port",
    flag="--kafka-port",
    env="CRM_KAFKA_PORT",
    default="9092",
    parse=parse_port,
    help="client port of the local broker `make run-distributed` starts (0: a free one)",
    metavar="PORT",
)


# Resolution goes in this order: DATA_DIR first, since other defaults name it.
ALL: tuple[Setting[Any], ...] = (
    DATA_DIR,
    LISTEN,
    HEALTH_LISTEN,
    SERVICES,
    EVENT_STORE_URL,
    READ_STORE_URL,
    RELAY_CHECKPOINT_URL,
    DEADLINE_CHECKPOINT_URL,
    LOG_FORMAT,
    SLA_POLICY_FILE,
    COMPENSATION_LIMITS_FILE,
    PROJECTOR,
    DEADLINES,
    GRACE_SECONDS,
    MAX_CONCURRENT_CALLS,
    EARLIEST_OCCURRED_AT,
    KAFKA_BOOTSTRAP,
    KAFKA_PARTITIONS,
    KAFKA_REPLICATION_FACTOR,
    TOPIC_NAMESPACE,
    KAFKA_SESSION_TIMEOUT,
    PROJECTION,
    LOCAL_KAFKA_PORT,
    *PERSONAL_DATA,
    *SECURITY,
    *SEALING,
)


@dataclass(frozen=True)
class Settings:
    """The value of every setting; those a process does not read keep their defaults."""

    listen: str
    health_listen: str
    services: tuple[str, ...]
    data_dir: Path
    event_store_url: str
    read_store_url: str
    relay_checkpoint_url: str
    deadline_checkpoint_url: str
    log_format: str
    sla_policy_file: Path | None
    compensation_limits_file: Path | None
    in_process_projector: bool
    in_process_deadlines: bool
    grace_seconds: float
    max_concurrent_calls: int
    earliest_occurred_at: datetime
    kafka_bootstrap: str
    kafka_partitions: int
    kafka_replication_factor: int
    topic_namespace: str
    kafka_session_timeout: float
    projection: str
    local_kafka_port: int
    key_store_url: str
    master_key_file: Path | None
    auth: str
    token_keys: Path | None
    token_audience: str
    token_issuer: str
    tls: bool
    tls_cert: Path | None
    tls_key: Path | None
    tls_client_ca: Path | None
    max_request_bytes: int
    max_calls_per_caller: int
    max_watches_per_caller: int
    reflection_open: bool
    seal_key_file: Path
    seal_every_events: int
    seal_every_seconds: float

    @classmethod
    def defaults(cls, **given: Any) -> Settings:
        """Every default, but for the values given (derived defaults follow a given data_dir)."""
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"no such settings: {', '.join(sorted(unknown))}")
        return resolve((), given=given)


def used(uses: Sequence[Setting[Any]]) -> tuple[Setting[Any], ...]:
    """The settings a process reads, in declaration order, and the data dir their defaults name."""
    wanted = set(uses)
    if any(DATA_DIR_MARK in s.default for s in uses):
        wanted.add(DATA_DIR)
    return tuple(s for s in ALL if s in wanted)


def resolve(
    uses: Sequence[Setting[Any]],
    flags: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, Any] | None = None,
) -> Settings:
    """Each used setting from its flag, else its environment variable, else its default.

    `flags` is keyed by setting name; `given` holds typed values that skip parsing. Settings a
    process does not use take their defaults, whatever the environment says.
    """
    flags, environ, given = flags or {}, environ or {}, given or {}
    reads = {s.name for s in used(uses)}
    values: dict[str, Any] = {}
    for setting in ALL:
        if setting.name in given:
            values[setting.name] = given[setting.name]
            continue
        text = ""
        if setting.name in reads:
            text = flags.get(setting.name) or environ.get(setting.env) or ""
        if not text:
            text = setting.default
            if DATA_DIR_MARK in text:
                text = text.replace(DATA_DIR_MARK, str(values[DATA_DIR.name]))
        values[setting.name] = setting.value(text)
    return Settings(**values)
