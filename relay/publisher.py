"""Publishes the event store's global order to Kafka, moving its checkpoint only after acks.

There is no dual write: services only append to the store, and this relay tails it. The producer
is idempotent with acks=all; a batch's checkpoint is written after every send of the batch was
acknowledged. If the relay dies between the acks and the checkpoint, the next run re-sends that
batch, and consumers, idempotent by position, ignore the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

from aiokafka import AIOKafkaProducer

from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.kafka_admin import ensure_topics
from crm.wire import to_kafka, topic_names
from relay.checkpoint import RelayCheckpoint
from services.events import DomainEvent

log = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 5.0


class Relay:
    """Follows the store from its checkpoint and publishes each event to its topic."""

    def __init__(
        self,
        store: EventStore,
        checkpoint: RelayCheckpoint,
        bootstrap: str,
        *,
        partitions: int,
        namespace: str = "",
        codec: EventCodec,
        batch_size: int = 500,
        poll_interval: float = 0.2,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._namespace = namespace
        self._codec = codec
        self._batch_size = batch_size
        self._poll_interval = poll_interval

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; broker failures are retried from the checkpoint."""
        await ensure_topics(self._bootstrap, topic_names(self._namespace), self._partitions)
        backoff = 0.1
        while not stop.is_set():
            try:
                await self._publish_until(stop)
            except Exception:
                log.exception("relay lost the broker; resuming from the checkpoint")
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    async def _publish_until(self, stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
        )
        await producer.start()
        try:
            position = self._checkpoint.position()
            log.info("relay publishing from position %d", position)
            while not stop.is_set():
                batch = await asyncio.to_thread(
                    self._store.read_all, after=position, limit=self._batch_size
                )
                if not batch:
                    await _sleep_or_stop(stop, self._poll_interval)
                    continue
                acks = []
                for recorded in batch:
                    event = cast(DomainEvent, self._codec.decode(recorded.type, recorded.data))
                    record = to_kafka(recorded, event, self._namespace)
                    acks.append(
                        await producer.send(
                            record.topic, record.value, key=record.key, headers=record.headers
                        )
                    )
                await asyncio.gather(*acks)
                position = batch[-1].global_position
                await asyncio.to_thread(self._checkpoint.advance, position)
        finally:
            await producer.stop()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
