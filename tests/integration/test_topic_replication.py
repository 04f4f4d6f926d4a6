"""The replication factor of the event topics: from the setting to the brokers.

The relay and the projection workers create missing topics (crm/kafka_admin.py) with
CRM_KAFKA_REPLICATION_FACTOR copies of each partition. The test broker is a single node, so a
factor of 1 is what it can hold, and a larger one is what it must refuse out loud.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidReplicationFactorError

from crm import kafka_admin
from crm.kafka_admin import ensure_topics
from crm.startup import SettingsParser
from services.bootstrap import build_projection_worker, build_relay
from services.entrypoints import projection_worker, relay
from tests.kafka_broker import KafkaBroker

DEADLINE = 60.0


def _run(coroutine: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine, DEADLINE)

    return asyncio.run(bounded())


class _Asked(BaseException):
    """Stops a process at the moment it would create its topics, with what it asked for."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        super().__init__(kwargs)
        self.kwargs = kwargs


async def _stop_here(*args: Any, **kwargs: Any) -> None:
    raise _Asked(kwargs)


class _RecordingAdmin:
    """Stands in for the admin client: no topic exists, every one asked for is created."""

    created: list[NewTopic] = []

    def __init__(self, bootstrap_servers: str) -> None:
        self.topics: dict[str, int] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return list(self.topics)

    async def create_topics(self, new_topics: list[NewTopic]) -> Any:
        _RecordingAdmin.created.extend(new_topics)
        self.topics.update({t.name: t.num_partitions for t in new_topics})
        return type("Response", (), {"topic_errors": [(t.name, 0, None) for t in new_topics]})

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"topic": n, "partitions": [{}] * self.topics.get(n, 0)} for n in names]


def test_ensure_topics_asks_for_the_replication_factor_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_admin, "AIOKafkaAdminClient", _RecordingAdmin)
    _RecordingAdmin.created = []
    _run(ensure_topics("broker:9092", ["a", "b"], 12, replication_factor=3))
    asked = [(t.name, t.num_partitions, t.replication_factor) for t in _RecordingAdmin.created]
    assert asked == [("a", 12, 3), ("b", 12, 3)]


def test_the_relay_passes_its_replication_factor_setting_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = SettingsParser(relay.PROG, relay.__doc__, relay.USES).settings(
        [], environ={"CRM_DATA_DIR": str(tmp_path), "CRM_KAFKA_REPLICATION_FACTOR": "3"}
    )
    process = build_relay(settings)
    monkeypatch.setattr("relay.publisher.ensure_topics", _stop_here)
    try:
        with pytest.raises(_Asked) as asked:
            _run(process.relay.run(asyncio.Event()))
    finally:
        process.close()
    assert asked.value.kwargs == {"replication_factor": 3}


def test_a_projection_worker_passes_its_replication_factor_setting_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = SettingsParser(
        projection_worker.PROG, projection_worker.__doc__, projection_worker.USES
    )
    settings, _ = parser.settings(
        ["--projection", "timeline", "--replication-factor", "2"],
        environ={"CRM_DATA_DIR": str(tmp_path)},
    )
    worker = build_projection_worker(settings)
    monkeypatch.setattr(projection_worker, "ensure_topics", _stop_here)
    try:
        with pytest.raises(_Asked) as asked:
            projection_worker.run(worker)
    finally:
        worker.view_store.close()
    assert asked.value.kwargs == {"replication_factor": 2}


async def _replicas(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
        return [len(partition["replicas"]) for partition in description["partitions"]]
    finally:
        await admin.close()


def test_a_broker_creates_what_it_can_hold_and_refuses_more_replicas_than_brokers(
    kafka_broker: KafkaBroker,
) -> None:
    held, refused = f"replicated-{uuid.uuid4().hex}", f"refused-{uuid.uuid4().hex}"
    _run(ensure_topics(kafka_broker.bootstrap, [held], 2, replication_factor=1))
    assert _run(_replicas(kafka_broker.bootstrap, held)) == [1, 1]
    # Once, not after waiting for a topic that never comes: the broker's reason, at once.
    with pytest.raises(InvalidReplicationFactorError, match=f"topic {refused}: .*2"):
        _run(ensure_topics(kafka_broker.bootstrap, [refused], 2, replication_factor=2))
