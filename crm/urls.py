"""Parsing of store URLs from configuration, shared by the event store and view store factories."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from crm.errors import InvalidInput

SQLITE_PREFIX = "sqlite:///"
SQLITE_FORM = "sqlite:///<path>"


def is_sqlite(url: str) -> bool:
    """Whether the URL names SQLite at all (well formed or not)."""
    return url.startswith("sqlite:")


def sqlite_path(url: str, field: str) -> Path:
    """The file a `sqlite:///<path>` URL names, its parent directories created and writable.

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
    require_writable(Path(path), field)
    return Path(path)


def require_writable(path: Path, field: str) -> None:
    """Refuse, at start, an SQLite file (or its directory) this process cannot write.

    SQLite opens a read-only file without complaint and fails at the first write, long after
    start; and it needs its directory writable for the -wal and -shm files beside the database.
    Root writes past mode bits, so for root a file or directory without any write bit counts as
    read-only too (what an operator who made it so meant).
    """
    require_writable_directory(path.parent, field)
    if path.exists() and not _writable(path, probe_dir=False):
        raise InvalidInput(
            field,
            "the file is read-only; make it writable for this user (chmod u+w),"
            " or give a writable copy",
        )


def require_writable_directory(directory: Path, field: str) -> None:
    """Refuse a directory the stores cannot create their files in (see require_writable)."""
    if not _writable(directory, probe_dir=True):
        raise InvalidInput(
            field,
            f"{directory}: the directory is read-only; make it writable for this user,"
            " or give a writable directory",
        )


def _writable(path: Path, *, probe_dir: bool) -> bool:
    try:
        if probe_dir:
            with tempfile.TemporaryFile(dir=path, prefix=".crm-write-probe-"):
                pass  # a unique name: processes and threads starting together never collide
        else:
            with open(path, "r+b"):
                pass
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return False
        raise
    if os.geteuid() == 0:
        return bool(os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return True


def unsupported(url: str, field: str, supported: str) -> InvalidInput:
    """The error for a URL whose scheme no adapter handles."""
    scheme = url.split(":", 1)[0] if ":" in url else url
    return InvalidInput(
        field, f"unsupported URL {url!r} (scheme {scheme!r}); supported: {supported}"
    )


def redacted(url: str) -> str:
    """The URL without its password (a server URL may carry one), for messages and logs."""
    try:
        password = urlsplit(url).password
    except ValueError:  # not parseable as a URL: nothing to find a password in
        return url
    if password is None:
        return url
    return url.replace(f":{password}@", ":***@", 1)
