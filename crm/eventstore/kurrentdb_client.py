"""The part of kurrentdbclient's KurrentDBClient the adapter uses, as a Protocol.

The adapter is typed against this rather than the client class, so a stand-in with the same
methods (the tests' in-memory server) can take the client's place, and a reader sees at a glance
which calls the adapter depends on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import kurrentdbclient as kdb
from kurrentdbclient.common import AbstractCatchupSubscription, AbstractReadResponse


class KurrentClient(Protocol):
    """The calls the KurrentDB event store makes; KurrentDBClient has them all."""

    def append_to_stream(
        self,
        /,
        stream_name: str,
        *,
        events: Iterable[kdb.NewEvent],
        current_version: int | kdb.StreamState,
    ) -> int: ...

    def get_stream(
        self,
        stream_name: str,
        *,
        stream_position: int | None = ...,
        backwards: bool = ...,
        limit: int = ...,
    ) -> tuple[kdb.RecordedEvent, ...]: ...

    def read_all(
        self,
        *,
        commit_position: int | None = ...,
        backwards: bool = ...,
        filter_include: Sequence[str] = ...,
        filter_by_stream_name: bool = ...,
        limit: int = ...,
    ) -> AbstractReadResponse: ...

    def subscribe_to_all(
        self,
        *,
        commit_position: int | None = ...,
        from_end: bool = ...,
        filter_include: Sequence[str] = ...,
        filter_by_stream_name: bool = ...,
    ) -> AbstractCatchupSubscription: ...

    def set_stream_metadata(self, stream_name: str, *, metadata: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
