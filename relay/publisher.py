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

from crm.envelope import RecordedEvent
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.follow import Follower
from crm.kafka_admin import ensure_topics
from crm.wire import to_kafka, topic_names
from relay.checkpoint import RelayCheckpointPort
from services.events import DomainEvent

log = logging.getLogger(__name__)

_FIRST_BACKOFF_SECONDS = 0.1


class Relay:
    """Follows the store from its checkpoint and publishes each event to its topic."""

    def __init__(
        self,
        store: EventStore,
        checkpoint: RelayCheckpointPort,
        bootstrap: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        namespace: str = "",
        codec: EventCodec,
        batch_size: int = 500,
        poll_interval: float = 0.2,
    ) -> None:
        self._store = store
        self._checkpoint = checkpoint
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._namespace = namespace
        self._codec = codec
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._producer: AIOKafkaProducer | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; broker failures are retried from the checkpoint.

        The store is followed by the kernel's follow loop in a worker thread; each batch is
        published on this event loop, where the producer lives, and the thread advances the
        checkpoint once every send was acknowledged.
        """
        await ensure_topics(
            self._bootstrap,
            topic_names(self._namespace),
            self._partitions,
            replication_factor=self._replication_factor,
        )
        loop = asyncio.get_running_loop()
        follower = Follower(
            self._store,
            "relay",
            checkpoint=self._checkpoint.position,
            handle=lambda batch: self._relay(batch, loop),
            idle=lambda: self._poll_interval,
            batch_size=self._batch_size,
            first_backoff=_FIRST_BACKOFF_SECONDS,
        )
        stopper = asyncio.create_task(_stop_when_set(stop, follower))
        try:
            await asyncio.to_thread(follower.run)
        finally:
            follower.stop()
            stopper.cancel()
            await self._close_producer()

    def _relay(self, batch: list[RecordedEvent], loop: asyncio.AbstractEventLoop) -> None:
        """In the follow loop's thread: publish the batch, then move the checkpoint past it."""
        asyncio.run_coroutine_threadsafe(self._publish(batch), loop).result()
        self._checkpoint.advance(batch[-1].global_position)

    async def _publish(self, batch: list[RecordedEvent]) -> None:
        """Send every event of the batch and wait for all the acks; a failure drops the producer."""
        try:
            producer = await self._started_producer(batch[0].global_position)
            acks = []
            for recorded in batch:
                # An event stored as an older version travels upcast, as its current version.
                current, event = self._codec.decode_recorded(recorded)
                record = to_kafka(current, cast(DomainEvent, event), self._namespace)
                acks.append(
                    await producer.send(
                        record.topic, record.value, key=record.key, headers=record.headers
                    )
                )
            await asyncio.gather(*acks)
        except BaseException:
            # Start afresh: the follow loop retries the batch from the checkpoint with a new one.
            await self._close_producer()
            raise

    async def _started_producer(self, position: int) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
            )
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
            log.info("relay producer started; publishing from event %d", position)
        return self._producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()


async def _stop_when_set(stop: asyncio.Event, follower: Follower) -> None:
    await stop.wait()
    follower.stop()
