"""Which configuration URLs name a KurrentDB / EventStoreDB server, and checking one before use.

Kept apart from the adapter and free of a top-level client import, so the factory can recognise a
`kurrentdb://` URL (and say what is missing) on an installation without the kurrentdb extra.
"""

from __future__ import annotations

import re

from crm.errors import InvalidInput
from crm.urls import redacted

KURRENTDB_FORM = "kurrentdb://[user:password@]host:2113[?tls=false] (or esdb://)"
_SCHEMES = ("kurrentdb", "kurrentdb+discover", "esdb", "esdb+discover", "kdb", "kdb+discover")
_PORT = re.compile(r"[0-9]{1,5}")


def is_kurrentdb(url: str) -> bool:
    """Whether the URL names KurrentDB at all (well formed or not)."""
    return url.split(":", 1)[0].lower() in _SCHEMES


def connection_uri(url: str, field: str) -> str:
    """The URL as the client takes it, checked: one line naming `field` if it is malformed.

    The client's own parser decides on the scheme, the hosts and the query options; the ports,
    which it would pass on unchecked to gRPC, are checked here.
    """
    from kurrentdbclient.connection_spec import ConnectionSpec

    try:
        spec = ConnectionSpec(url)
    except ValueError as exc:
        problem = str(exc).replace(url, redacted(url))  # the client's message repeats the URL
        raise InvalidInput(
            field, f"{redacted(url)!r} is malformed ({problem}); expected {KURRENTDB_FORM}"
        ) from None
    for target in spec.targets:
        host, _, port = target.rpartition(":")
        if not host or not _PORT.fullmatch(port) or not 0 < int(port) <= 65535:
            raise InvalidInput(
                field,
                f"{redacted(url)!r} names {target!r}, which is not host:port;"
                f" expected {KURRENTDB_FORM}",
            )
    return url
