"""Every `CRM_*` setting, declared once: flag, environment variable, default, parser and help.

Each process names the settings it reads (crm.startup builds its command line from them) and
`resolve` takes each value from the flag, else the environment variable, else the default; an
empty value counts as not given. A default may name `<data-dir>`: it is filled in with the data
dir setting, so every process derives the same paths from one directory. A wrong value is a
`SettingError` naming the flag and the variable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from crm.errors import CrmError

T = TypeVar("T")

DATA_DIR_MARK = "<data-dir>"
_DIGITS = re.compile(r"[0-9]{1,5}")


class StartupError(CrmError):
    """A process cannot start as configured; the message says what to change."""


class SettingError(StartupError):
    """A setting's value is wrong; the message names its flag and environment variable."""

    def __init__(self, setting: Setting[Any], problem: str) -> None:
        super().__init__(f"{setting.label}: {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: where its value comes from and how it is checked."""

    name: str  # the field of `Settings`
    flag: str
    env: str
    default: str  # text parsed like a given value; may name DATA_DIR_MARK
    parse: Callable[[str], T]  # raises ValueError saying what is wrong and what to give instead
    help: str
    metavar: str

    @property
    def label(self) -> str:
        return f"{self.flag} / {self.env}"

    def value(self, text: str) -> T:
        try:
            return self.parse(text)
        except ValueError as exc:
            raise SettingError(self, str(exc)) from None


# Parsers: each takes the text given and returns the value, or raises ValueError.


def _text(text: str) -> str:
    return text


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _in_process(text: str) -> bool:
    return _choice("in-process", "off")(text) == "in-process"


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number; give one >= {minimum}") from None
        if number < minimum:
            raise ValueError(f"{number} is too small; give a whole number >= {minimum}")
        return number

    return parse


def _seconds(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number of seconds; give one {bound}") from None
        within = seconds >= minimum if inclusive else seconds > minimum
        if not (within and math.isfinite(seconds)):
            raise ValueError(f"{text!r} is out of range; give a number of seconds {bound}")
        return seconds

    return parse


def _address(text: str) -> str:
    """`host:port`, an IPv6 host in brackets; port 0 asks for a free one."""
    host, _, port = text.rpartition(":")
    example = "give host:port, e.g. 127.0.0.1:50051 or [::]:50051"
    if not host or not _DIGITS.fullmatch(port) or int(port) > 65535 or re.search(r"\s", text):
        raise ValueError(f"{text!r} is not an address; {example}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"{text!r} has an IPv6 host without brackets; {example}")
    return text


def _optional_address(text: str) -> str:
    """An address as `_address` takes it, or empty for none."""
    return _address(text) if text.strip() else ""


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


def _port(text: str) -> int:
    if not _DIGITS.fullmatch(text) or int(text) > 65535:
        raise ValueError(f"{text!r} is not a port; give a whole number from 0 to 65535")
    return int(text)


def _brokers(text: str) -> str:
    """A comma-separated list of Kafka brokers, each `host:port`."""
    for broker in text.split(","):
        try:
            _address(broker.strip())
        except ValueError:
            raise ValueError(
                f"{broker.strip()!r} is not a broker address; give host:port[,host:port...]"
            ) from None
    return text


def _namespace(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]*", text):
        raise ValueError(
            f"{text!r} has characters Kafka topic names cannot hold; use A-Z a-z 0-9 . _ -"
        )
    return text


def _directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{text!r} exists and is not a directory; give a directory")
    return path


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 instant; give e.g. 2000-01-01T00:00Z"
        ) from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; give e.g. 2000-01-01T00:00Z")
    return value


def _optional_file(text: str) -> Path | None:
    if not text:
        return None
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"no file {text!r}; give the path of a JSON file, or nothing")
    return path


LISTEN = Setting(
    name="listen",
    flag="--listen",
    env="CRM_LISTEN",
    default="127.0.0.1:50051",
    parse=_address,
    help="where the gRPC server listens; port 0 picks a free one and logs it",
    metavar="HOST:PORT",
)

HEALTH_LISTEN = Setting(
    name="health_listen",
    flag="--health-listen",
    env="CRM_HEALTH_LISTEN",
    default="",
    parse=_optional_address,
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
    parse=_directory,
    help="directory of the embedded SQLite files; the store URLs default to files in it",
    metavar="DIR",
)

EVENT_STORE_URL = Setting(
    name="event_store_url",
    flag="--event-store-url",
    env="CRM_EVENT_STORE_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/events.db",
    parse=_text,
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
    parse=_text,
    help="the view store the projections write and the query API reads: sqlite:///<path>, or"
    " postgresql://<user>@<host>:<port>/<database> (migrated in place at start)",
    metavar="URL",
)

RELAY_CHECKPOINT_URL = Setting(
    name="relay_checkpoint_url",
    flag="--checkpoint-url",
    env="CRM_RELAY_CHECKPOINT_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/relay.db",
    parse=_text,
    help="the relay's checkpoint: the last global position Kafka acknowledged; an SQLite file"
    " or PostgreSQL (postgresql://...)",
    metavar="URL",
)

DEADLINE_CHECKPOINT_URL = Setting(
    name="deadline_checkpoint_url",
    flag="--deadline-checkpoint-url",
    env="CRM_DEADLINE_CHECKPOINT_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/deadlines.db",
    parse=_text,
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
    parse=_choice("auto", "json", "text"),
    help="json: one object a line; text; auto: text on a terminal, JSON otherwise",
    metavar="{auto,json,text}",
)

SLA_POLICY_FILE = Setting(
    name="sla_policy_file",
    flag="--sla-policy-file",
    env="CRM_SLA_POLICY_FILE",
    default="",
    parse=_optional_file,
    help="JSON SLA policy (see deploy/sla-policy.example.json); built-in targets when none",
    metavar="FILE",
)

COMPENSATION_LIMITS_FILE = Setting(
    name="compensation_limits_file",
    flag="--compensation-limits-file",
    env="CRM_COMPENSATION_LIMITS_FILE",
    default="",
    parse=_optional_file,
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
    parse=_seconds(0, inclusive=True),
    help="on SIGTERM, how long running calls may take to finish",
    metavar="SECONDS",
)

MAX_CONCURRENT_CALLS = Setting(
    name="max_concurrent_calls",
    flag="--max-concurrent-calls",
    env="CRM_MAX_CONCURRENT_CALLS",
    default="1000",
    parse=_whole(1),
    help="calls (open watches included) a server runs at once; more get RESOURCE_EXHAUSTED",
    metavar="N",
)

KAFKA_BOOTSTRAP = Setting(
    name="kafka_bootstrap",
    flag="--bootstrap",
    env="CRM_KAFKA_BOOTSTRAP",
    default="127.0.0.1:9092",
    parse=_brokers,
    help="the Kafka brokers to connect to first",
    metavar="HOST:PORT[,...]",
)

KAFKA_PARTITIONS = Setting(
    name="kafka_partitions",
    flag="--partitions",
    env="CRM_KAFKA_PARTITIONS",
    default="6",
    parse=_whole(1),
    help="partitions of every event topic (all topics alike, keyed by customer)",
    metavar="N",
)

KAFKA_REPLICATION_FACTOR = Setting(
    name="kafka_replication_factor",
    flag="--replication-factor",
    env="CRM_KAFKA_REPLICATION_FACTOR",
    default="1",
    parse=_whole(1),
    help="copies of each partition kept by the brokers, for the event topics this process creates"
    " when they are missing (at most the broker count)",
    metavar="N",
)

TOPIC_NAMESPACE = Setting(
    name="topic_namespace",
    flag="--namespace",
    env="CRM_TOPIC_NAMESPACE",
    default="",
    parse=_namespace,
    help="prefix of topic names and consumer groups, to keep deployments apart",
    metavar="PREFIX",
)

KAFKA_SESSION_TIMEOUT = Setting(
    name="kafka_session_timeout",
    flag="--session-timeout",
    env="CRM_KAFKA_SESSION_TIMEOUT",
    default="6",
    parse=_seconds(0, inclusive=False),
    help="seconds until a worker that died without leaving loses its partitions",
    metavar="SECONDS",
)
EARLIEST_OCCURRED_AT = Setting(
    name="earliest_occurred_at",
    flag="--earliest-occurred-at",
    env="CRM_EARLIEST_OCCURRED_AT",
    default="2000-01-01T00:00:00+00:00",
    parse=_instant,
    help="the earliest time a command or a contact may say it happened; earlier is refused",
    metavar="INSTANT",
)

PROJECTION = Setting(
    name="projection",
    flag="--projection",
    env="CRM_PROJECTION",
    default="",
    parse=_text,
    help="the named projection a Kafka worker runs (timeline, case_views, customer_risk,"
    " kpi_facts; each is its own consumer group), or crm-rebuild rebuilds (all when none)",
    metavar="NAME",
)

LOCAL_KAFKA_PORT = Setting(
    name="local_kafka_port",
    flag="--kafka-port",
    env="CRM_KAFKA_PORT",
    default="9092",
    parse=_port,
    help="client port of the local broker `make run-distributed` starts (0: a free one)",
    metavar="PORT",
)


def _on(text: str) -> bool:
    return _choice("on", "off")(text) == "on"


def _reflection_open(text: str) -> bool:
    return _choice("authenticated", "open")(text) == "open"


def _optional_path(what: str) -> Callable[[str], Path | None]:
    def parse(text: str) -> Path | None:
        if not text:
            return None
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"no file {text!r}; give the path of {what}, or nothing")
        return path

    return parse


AUTH = Setting(
    name="auth",
    flag="--auth",
    env="CRM_AUTH",
    default="jwt",
    parse=_choice("jwt", "off"),
    help="jwt: every call but health checks needs a bearer token (or a client certificate);"
    " off: nobody is asked (development only; a warning is logged at start)",
    metavar="{jwt,off}",
)

TOKEN_KEYS = Setting(
    name="token_keys",
    flag="--token-keys",
    env="CRM_TOKEN_KEYS",
    default="",
    parse=_optional_path("a JWKS file or a PEM public key"),
    help="the keys bearer tokens are checked with: a JWKS file (RS256, ES256, HS256 keys) or a"
    " PEM public key (RS256, ES256); none: an HS256 development secret generated on first"
    f" start at {DATA_DIR_MARK}/dev-token-key.jwks.json, which crm-token signs with",
    metavar="FILE",
)

TOKEN_AUDIENCE = Setting(
    name="token_audience",
    flag="--token-audience",
    env="CRM_TOKEN_AUDIENCE",
    default="crm",
    parse=_text,
    help="the audience (aud claim) every bearer token must name",
    metavar="TEXT",
)

TOKEN_ISSUER = Setting(
    name="token_issuer",
    flag="--token-issuer",
    env="CRM_TOKEN_ISSUER",
    default="",
    parse=_text,
    help="the issuer (iss claim) every bearer token must name; none: not checked",
    metavar="TEXT",
)

TLS = Setting(
    name="tls",
    flag="--tls",
    env="CRM_TLS",
    default="on",
    parse=_on,
    help="on: the server speaks TLS only; off: plaintext (development only; a warning is"
    " logged at start)",
    metavar="{on,off}",
)

TLS_CERT = Setting(
    name="tls_cert",
    flag="--tls-cert",
    env="CRM_TLS_CERT",
    default="",
    parse=_optional_path("a PEM certificate chain"),
    help="the server's PEM certificate chain (with --tls-key); none: a self-signed one"
    f" generated on first start at {DATA_DIR_MARK}/tls/server.crt",
    metavar="FILE",
)

TLS_KEY = Setting(
    name="tls_key",
    flag="--tls-key",
    env="CRM_TLS_KEY",
    default="",
    parse=_optional_path("a PEM private key"),
    help="the private key of --tls-cert (PEM)",
    metavar="FILE",
)

TLS_CLIENT_CA = Setting(
    name="tls_client_ca",
    flag="--tls-client-ca",
    env="CRM_TLS_CLIENT_CA",
    default="",
    parse=_optional_path("PEM CA certificates"),
    help="mutual TLS: every connection must show a client certificate signed by these CAs;"
    " one without a bearer token is the service its common name names",
    metavar="FILE",
)

MAX_REQUEST_BYTES = Setting(
    name="max_request_bytes",
    flag="--max-request-bytes",
    env="CRM_MAX_REQUEST_BYTES",
    default="262144",
    parse=_whole(1024),
    help="the largest request message accepted; larger ones get RESOURCE_EXHAUSTED",
    metavar="BYTES",
)

MAX_CALLS_PER_CALLER = Setting(
    name="max_calls_per_caller",
    flag="--max-calls-per-caller",
    env="CRM_MAX_CALLS_PER_CALLER",
    default="64",
    parse=_whole(1),
    help="calls one caller may have in progress at once; more get RESOURCE_EXHAUSTED",
    metavar="N",
)

MAX_WATCHES_PER_CALLER = Setting(
    name="max_watches_per_caller",
    flag="--max-watches-per-caller",
    env="CRM_MAX_WATCHES_PER_CALLER",
    default="8",
    parse=_whole(1),
    help="WatchTimeline streams one caller may keep open at once; more get RESOURCE_EXHAUSTED",
    metavar="N",
)

REFLECTION = Setting(
    name="reflection_open",
    flag="--reflection",
    env="CRM_REFLECTION",
    default="authenticated",
    parse=_reflection_open,
    help="authenticated: reflection needs a credential like any call; open: anyone may list"
    " the services (development)",
    metavar="{authenticated,open}",
)


def _key_path(text: str) -> Path:
    if not text:
        raise ValueError("give the path of the seal key file")
    return Path(text)


SEAL_KEY_FILE = Setting(
    name="seal_key_file",
    flag="--seal-key",
    env="CRM_SEAL_KEY",
    default=f"{DATA_DIR_MARK}/dev-seal-key.pem",
    parse=_key_path,
    help="the Ed25519 private key (PEM, PKCS#8) seals are signed with; created on first start"
    " if the file is missing (development); its public half is served by ListSeals",
    metavar="FILE",
)

SEAL_EVERY_EVENTS = Setting(
    name="seal_every_events",
    flag="--seal-every-events",
    env="CRM_SEAL_EVERY_EVENTS",
    default="1000",
    parse=_whole(0),
    help="seal the global order after this many new events (0: not by count)",
    metavar="N",
)

SEAL_EVERY_SECONDS = Setting(
    name="seal_every_seconds",
    flag="--seal-every-seconds",
    env="CRM_SEAL_EVERY_SECONDS",
    default="300",
    parse=_seconds(0, inclusive=True),
    help="seal new events once the newest seal is this old (0: not by time); both 0: no sealer",
    metavar="SECONDS",
)

SEALING = (SEAL_KEY_FILE, SEAL_EVERY_EVENTS, SEAL_EVERY_SECONDS)
"""What the server's sealer reads (crm.sealer)."""

SECURITY = (
    AUTH,
    TOKEN_KEYS,
    TOKEN_AUDIENCE,
    TOKEN_ISSUER,
    TLS,
    TLS_CERT,
    TLS_KEY,
    TLS_CLIENT_CA,
    MAX_REQUEST_BYTES,
    MAX_CALLS_PER_CALLER,
    MAX_WATCHES_PER_CALLER,
    REFLECTION,
)
"""What the gRPC server reads to decide who may call it, how, and how much."""

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
