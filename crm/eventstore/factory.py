"""Picks the event store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from pathlib import Path

from crm.errors import InvalidInput
from crm.eventstore.port import EventStore
from crm.eventstore.sqlite import SqliteEventStore

_SQLITE_PREFIX = "sqlite:///"
_SUPPORTED = "sqlite:///<path>"


def open_event_store(url: str) -> EventStore:
    """Open the event store a URL names.

    Supported: `sqlite:///<path>`, where everything after the three slashes is the file path, as in
    SQLAlchemy: `sqlite:///data/events.db` is relative to the working directory and
    `sqlite:////var/lib/crm/events.db` (four slashes) is absolute. Missing parent directories are
    created.
    """
    if url.startswith(_SQLITE_PREFIX):
        path = url[len(_SQLITE_PREFIX) :]
        if not path:
            raise InvalidInput("event_store_url", f"{url!r} names no file; expected {_SUPPORTED}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteEventStore(path)
    if url.startswith("sqlite:"):
        raise InvalidInput("event_store_url", f"{url!r} is malformed; expected {_SUPPORTED}")
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise InvalidInput(
        "event_store_url",
        f"unsupported event store URL {url!r} (scheme {scheme!r}); supported: {_SUPPORTED}",
    )
