"""The faust app of one projection: its own consumer group reading every event topic.

The agent stays thin: it decodes each message and hands batches, grouped by topic partition, to
the view store, which applies the same pure projection as the in-process projector and records
each partition's position in the same transaction. Faust's own exactly-once mode is not used:
redelivered messages are at or below their partition's checkpoint and change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import faust

from crm.eventcodec import EventCodec
from crm.wire import from_kafka, topic_names
from projections.catalogue import projection_named
from projections.store.port import ViewStore
from services.events import DomainEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """Where to read and write, and how quickly to notice a dead peer.

    The defaults favour prompt recovery on one machine: a worker that died without leaving is
    noticed after `session_timeout` seconds instead of faust's 60. Production (deploy/) uses
    session 30 s, heartbeat 3 s, rebalance 60 s: tolerant of GC pauses and slow disks.
    """

    bootstrap: str
    projection: str
    namespace: str = ""
    partitions: int = 6
    replication_factor: int = 1  # of the topics it creates when they are missing
    session_timeout: float = 6.0
    heartbeat_interval: float = 1.0
    rebalance_timeout: float = 10.0
    batch_size: int = 200
    batch_within: float = 0.02  # a lone event waits at most this long for company

    def __post_init__(self) -> None:
        projection_named(self.projection)

    @property
    def group_id(self) -> str:
        suffix = f"-{self.namespace.strip('.')}" if self.namespace else ""
        return f"crm-projection-{self.projection}{suffix}"


def create_app(settings: WorkerSettings, view_store: ViewStore, codec: EventCodec) -> faust.App:
    """The faust app for one projection, configured from `settings` (never from import time)."""
    app = faust.App(
        settings.group_id,
        broker=f"kafka://{settings.bootstrap}",
        autodiscover=False,
        web_enabled=False,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        broker_rebalance_timeout=settings.rebalance_timeout,
        # A worker that joined while its topics were still being created is assigned no
        # partitions until its metadata refreshes: every 5 s, not Kafka's default 5 minutes.
        consumer_metadata_max_age_ms=5_000,
    )
    topics = app.topic(
        *topic_names(settings.namespace),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    async def project(stream: faust.StreamT[Any]) -> AsyncIterator[None]:
        buffered = cast(faust.Stream[Any], stream).take_events
        async for events in buffered(settings.batch_size, within=settings.batch_within):
            batches: dict[str, list[tuple[Any, DomainEvent]]] = defaultdict(list)
            for event in events:
                message = event.message
                source = f"{message.topic}#{message.partition}"
                batches[source].append(from_kafka(event.value, codec))
            for source, batch in batches.items():
                await asyncio.to_thread(view_store.apply, batch, source, (settings.projection,))
            view_store.notify_changed()
            yield None

    app.agent(topics, name=f"project-{settings.projection}", concurrency=1)(project)
    return app
