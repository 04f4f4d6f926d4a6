"""Creates the event topics explicitly, all with the same partition count, once Kafka answers.

Relying on auto-creation would give each topic the broker's default partition count; keying by
customer only keeps a customer's facts together if every topic is partitioned alike. Relay and
workers both call this before they start, so either may come up first, and both wait for a
broker that is still starting instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import NoError, TopicAlreadyExistsError, for_code

from crm.errors import InvariantViolated

log = logging.getLogger(__name__)


async def ensure_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    patience: float = 120.0,
    *,
    replication_factor: int = 1,
) -> None:
    """Create the missing topics; refuse to run on topics partitioned differently.

    `replication_factor` applies only to topics created here; existing ones keep theirs (Kafka
    changes it by partition reassignment, not by this call).
    """
    admin = await _connected_admin(bootstrap, patience)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)
                    for name in missing
                ]
            )
            _raise_refusal(response.topic_errors)
            log.info(
                "created topics %s with %d partitions, replication factor %d",
                missing,
                partitions,
                replication_factor,
            )
        await _check_partitions(admin, names, partitions)
    finally:
        await admin.close()


def _raise_refusal(topic_errors: list[tuple[Any, ...]]) -> None:
    """Raise the broker's first refusal to create a topic (the admin client returns them rather
    than raising): more replicas than brokers, say. A topic another process created in the
    meantime is no refusal."""
    for topic, code, *message in topic_errors:
        if code not in (NoError.errno, TopicAlreadyExistsError.errno):
            reason = message[0] if message and message[0] else for_code(code).__name__
            raise for_code(code)(f"Kafka refused to create topic {topic}: {reason}")


async def _check_partitions(
    admin: AIOKafkaAdminClient, names: list[str], partitions: int, patience: float = 30.0
) -> None:
    """Every topic has `partitions` partitions. A topic another process is creating right now
    shows none (or is unknown) for a moment: wait for it rather than refuse it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        counts = {
            description["topic"]: len(description["partitions"])
            for description in await admin.describe_topics(names)
        }
        settling = [name for name in names if counts.get(name, 0) == 0]
        if not settling or loop.time() > deadline:
            break
        log.info("topics %s are still being created; waiting", settling)
        await asyncio.sleep(0.2)
    for name in names:
        count = counts.get(name, 0)
        if count != partitions:
            raise InvariantViolated(f"topic {name} has {count} partitions, expected {partitions}")


async def _connected_admin(bootstrap: str, patience: float) -> AIOKafkaAdminClient:
    """An admin client once the broker answers, retrying for up to `patience` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.2
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            return admin
        except Exception as error:
            await admin.close()
            if loop.time() > deadline:
                raise
            log.warning("Kafka at %s not reachable yet (%s); retrying", bootstrap, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
