"""The local broker serves a real Kafka client, and a restart keeps topics, messages and offsets.

These pin what the relay and the Kafka projector will rely on: keyed records keep their order per
key across partitions, an idempotent acks=all producer works against a single node, and the
broker's data directory survives `restart()` (the fault tests restart it under load).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from tests.kafka_broker import KafkaBroker

DEADLINE = 60.0  # for one test's client code, whatever it waits on
CONSUME_DEADLINE = 15.0  # shorter, so a missing record fails an assertion that shows the rest
PARTITIONS = 3
T = TypeVar("T")

# Three customers, three events each: enough for keys to spread and for order per key to matter.
RECORDS = [
    (f"customer-{customer}".encode(), f"event-{customer}-{n}".encode())
    for n in range(3)
    for customer in range(3)
]


def run(coroutine: Awaitable[T]) -> T:
    """Run one test's client code with an overall deadline, so a stuck client fails, not hangs."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, DEADLINE)

    return asyncio.run(bounded())


async def create_topic(bootstrap: str) -> str:
    """A fresh topic, so tests sharing the session's broker never see each other's records."""
    topic = f"test-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]
        )
    finally:
        await admin.close()
    assert [(name, code) for name, code, *_ in response.topic_errors] == [(topic, 0)]
    return topic


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send every record and wait for each acknowledgement, as the relay will."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str, topic: str, count: int, group_id: str | None = None, commit: bool = False
) -> list[Any]:
    """Read `count` records from the earliest offset (or the group's committed one), in order.

    The consumer assigns itself every partition, even with a group: no rebalance to wait for.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        records: list[Any] = []
        deadline = asyncio.get_running_loop().time() + CONSUME_DEADLINE
        while len(records) < count and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            records += [record for batch in batches.values() for record in batch]
        if commit:
            await consumer.commit()
        return records
    finally:
        await consumer.stop()


async def partition_count(bootstrap: str, topic: str) -> int:
    """How many partitions the broker's metadata lists for the topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, described
    return len(described["partitions"])


async def committed_offsets(bootstrap: str, group_id: str) -> dict[int, int]:
    """The group's committed offset per partition, as the broker stores them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


def by_key(records: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """Values per key in order: Kafka orders only within a partition, and a key keeps to one."""
    values: dict[bytes, list[bytes]] = {}
    for key, value in records:
        values.setdefault(key, []).append(value)
    return values


def pairs(records: list[Any]) -> list[tuple[bytes, bytes]]:
    """(key, value) of consumed records, in the order consumed."""
    return [(record.key, record.value) for record in records]


EXPECTED = by_key(RECORDS)


def test_a_client_round_trips_keyed_records_through_three_partitions(
    kafka_broker: KafkaBroker,
) -> None:
    async def scenario() -> list[Any]:
        topic = await create_topic(kafka_broker.bootstrap)
        await produce(kafka_broker.bootstrap, topic, RECORDS)
        return await consume(kafka_broker.bootstrap, topic, len(RECORDS))

    records = run(scenario())

    assert len(records) == len(RECORDS)
    assert by_key(pairs(records)) == EXPECTED
    partitions_of_key: dict[bytes, set[int]] = {}
    for record in records:
        partitions_of_key.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())


def test_restart_keeps_topics_messages_and_committed_offsets(kafka_broker: KafkaBroker) -> None:
    group = f"group-{uuid.uuid4().hex[:12]}"

    async def before() -> tuple[str, dict[int, int]]:
        topic = await create_topic(kafka_broker.bootstrap)
        await produce(kafka_broker.bootstrap, topic, RECORDS)
        await consume(kafka_broker.bootstrap, topic, len(RECORDS), group_id=group, commit=True)
        return topic, await committed_offsets(kafka_broker.bootstrap, group)

    topic, offsets = run(before())
    assert sum(offsets.values()) == len(RECORDS)

    kafka_broker.restart()

    async def after() -> tuple[int, list[Any], dict[int, int], list[Any]]:
        partitions = await partition_count(kafka_broker.bootstrap, topic)
        replayed = await consume(kafka_broker.bootstrap, topic, len(RECORDS))
        # A restarted broker loads the committed offsets in the background: until it has, the
        # group's offsets read as empty. Poll, with a deadline.
        deadline = asyncio.get_running_loop().time() + 60
        kept = await committed_offsets(kafka_broker.bootstrap, group)
        while not kept and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            kept = await committed_offsets(kafka_broker.bootstrap, group)
        await produce(kafka_broker.bootstrap, topic, [(b"customer-9", b"after-restart")])
        resumed = await consume(kafka_broker.bootstrap, topic, 1, group_id=group)
        return partitions, replayed, kept, resumed

    partitions, replayed, kept, resumed = run(after())

    assert partitions == PARTITIONS
    assert by_key(pairs(replayed)) == EXPECTED
    assert kept == offsets
    assert pairs(resumed) == [(b"customer-9", b"after-restart")]
