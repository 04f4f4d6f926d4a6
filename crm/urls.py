"""Parsing of store URLs from configuration, shared by the event store and view store factories."""

from __future__ import annotations

from pathlib import Path

from crm.errors import InvalidInput

SQLITE_PREFIX = "sqlite:///"
SQLITE_FORM = "sqlite:///<path>"


def is_sqlite(url: str) -> bool:
    """Whether the URL names SQLite at all (well formed or not)."""
    return url.startswith("sqlite:")


def sqlite_path(url: str, field: str) -> Path:
    """The file a `sqlite:///<path>` URL names, its parent directories created.

    Everything after the three slashes is the path, as in SQLAlchemy: `sqlite:///data/x.db` is
    relative to the working directory and `sqlite:////var/lib/crm/x.db` (four slashes) is absolute.
    `field` names the configuration setting in the error raised for a malformed URL.
    """
    if not url.startswith(SQLITE_PREFIX):
        raise InvalidInput(field, f"{url!r} is malformed; expected {SQLITE_FORM}")
    path = url[len(SQLITE_PREFIX) :]
    if not path:
        raise InvalidInput(field, f"{url!r} names no file; expected {SQLITE_FORM}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Path(path)


def unsupported(url: str, field: str, supported: str) -> InvalidInput:
    """The error for a URL whose scheme no adapter handles."""
    scheme = url.split(":", 1)[0] if ":" in url else url
    return InvalidInput(
        field, f"unsupported URL {url!r} (scheme {scheme!r}); supported: {supported}"
    )
