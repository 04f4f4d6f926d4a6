"""The composition root's store half: opens the event store, the view store, the checkpoints and
the leases the settings name, so a wrong URL is a start-up error naming its setting.
"""

from __future__ import annotations

from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore
from crm.lease import FileLease, Lease
from crm.postgres_connections import POSTGRES_FORM, is_postgres
from crm.postgres_lease import PostgresLease
from crm.setting import Setting
from crm.settings import (
    DEADLINE_CHECKPOINT_URL,
    EVENT_STORE_URL,
    READ_STORE_URL,
    RELAY_CHECKPOINT_URL,
    Settings,
)
from crm.startup import attributed_to
from crm.urls import SQLITE_FORM, is_sqlite, redacted, sqlite_path, unsupported
from projections.store.factory import open_view_store
from projections.store.port import ViewStore
from relay.checkpoint import RelayCheckpoint, RelayCheckpointPort
from relay.postgres_checkpoint import PostgresRelayCheckpoint
from services.bootstrap_security import data_dir_writable
from services.sla.checkpoint import DeadlineCheckpoint, DeadlineCheckpointPort
from services.sla.postgres_checkpoint import PostgresDeadlineCheckpoint


def open_events(settings: Settings) -> EventStore:
    """The event store the settings name (its URL hidden in errors: it may carry a password)."""
    data_dir_writable(settings, settings.event_store_url)
    with attributed_to(EVENT_STORE_URL, redacted(settings.event_store_url)):
        return open_event_store(settings.event_store_url)


def open_relay_checkpoint(settings: Settings) -> RelayCheckpointPort:
    """Where the relay keeps its position: an SQLite file or a PostgreSQL database."""
    url = settings.relay_checkpoint_url
    data_dir_writable(settings, url)  # only an SQLite file's
    with attributed_to(RELAY_CHECKPOINT_URL, redacted(url)):
        if is_postgres(url):
            return PostgresRelayCheckpoint(url, "relay", field=RELAY_CHECKPOINT_URL.name)
        _require_sqlite(url, RELAY_CHECKPOINT_URL.name)
        return RelayCheckpoint(sqlite_path(url, RELAY_CHECKPOINT_URL.name), "relay")


def open_deadline_checkpoint(settings: Settings) -> DeadlineCheckpointPort:
    """Where the deadline worker keeps its planner state: an SQLite file or PostgreSQL."""
    url = settings.deadline_checkpoint_url
    data_dir_writable(settings, url)  # only an SQLite file's
    with attributed_to(DEADLINE_CHECKPOINT_URL, redacted(url)):
        if is_postgres(url):
            return PostgresDeadlineCheckpoint(url, field=DEADLINE_CHECKPOINT_URL.name)
        _require_sqlite(url, DEADLINE_CHECKPOINT_URL.name)
        return DeadlineCheckpoint(sqlite_path(url, DEADLINE_CHECKPOINT_URL.name))


def lease_beside(checkpoint_url: str, setting: Setting[str], name: str) -> Lease:
    """The lease of the copies sharing a checkpoint: whoever resumes from it must hold it.

    Beside an SQLite checkpoint, a lock on a file next to it (copies on one machine); in a
    PostgreSQL checkpoint's database, an advisory lock (copies anywhere).
    """
    if is_postgres(checkpoint_url):
        return PostgresLease(checkpoint_url, name)
    path = sqlite_path(checkpoint_url, setting.name)
    return FileLease(path.with_name(path.name + ".lease"))


def open_views(settings: Settings) -> ViewStore:
    """The view store the settings name."""
    data_dir_writable(settings, settings.read_store_url)
    with attributed_to(READ_STORE_URL, redacted(settings.read_store_url)):
        return open_view_store(settings.read_store_url)


def _require_sqlite(url: str, field: str) -> None:
    """A checkpoint URL that is neither PostgreSQL nor SQLite names no adapter."""
    if not is_sqlite(url):
        raise unsupported(url, field, f"{SQLITE_FORM}, {POSTGRES_FORM}")
