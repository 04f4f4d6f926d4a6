"""The relay over a real event store and checkpoint file, with a stand-in producer.

What a broker cannot show on demand: the checkpoint moves only once every send of a batch is
acknowledged, and a failed send drops the producer and re-sends the batch from the checkpoint,
skipping nothing. The real broker path is covered in test_kafka_path.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crm.eventstore.sqlite import SqliteEventStore
from relay import publisher
from relay.checkpoint import RelayCheckpoint
from relay.publisher import Relay
from tests.support import EventLog, opened, registered

DEADLINE = 10.0


class Broker:
    """What the stand-in producers saw: sends per producer, failures to inject, acks to hold."""

    def __init__(self) -> None:
        self.producers: list[FakeProducer] = []
        self.failures = 0  # sends to fail, from the next one on
        self.held = False  # sends wait for `release` instead of being acknowledged
        self.pending: list[asyncio.Future[None]] = []

    def release(self) -> None:
        for ack in self.pending:
            ack.set_result(None)
        self.pending.clear()

    def positions(self, producer: int) -> list[int]:
        return self.producers[producer].positions


class FakeProducer:
    """Just enough of AIOKafkaProducer: start, send (a future of the ack), stop."""

    broker: Broker

    def __init__(self, **config: Any) -> None:
        assert config["enable_idempotence"] is True and config["acks"] == "all"
        self.positions: list[int] = []
        self.stopped = False
        self.broker.producers.append(self)

    async def start(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broker.failures:
            self.broker.failures -= 1
            ack.set_exception(ConnectionError("broker went away"))
            return ack
        self.positions.append(int(dict(headers)["global_position"]))
        if self.broker.held:
            self.broker.pending.append(ack)
        else:
            ack.set_result(None)
        return ack

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Broker:
    seen = Broker()

    async def ensure_topics(bootstrap: str, names: list[str], partitions: int) -> None:
        pass

    producer = type("Producer", (FakeProducer,), {"broker": seen})
    monkeypatch.setattr(publisher, "AIOKafkaProducer", producer)
    monkeypatch.setattr(publisher, "ensure_topics", ensure_topics)
    return seen


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteEventStore]:
    event_store = SqliteEventStore(tmp_path / "events.db")
    yield event_store
    event_store.close()


@pytest.fixture
def checkpoint(tmp_path: Path) -> Iterator[RelayCheckpoint]:
    relay_checkpoint = RelayCheckpoint(tmp_path / "relay.db")
    yield relay_checkpoint
    relay_checkpoint.close()


def story(store: SqliteEventStore) -> int:
    log = EventLog(store)
    return log.record_all(
        registered("c-1"), opened("case-1", "c-1"), registered("c-2"), opened("case-2", "c-2")
    )


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def running(relay: Relay, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run the relay while `scenario` runs, then stop it and check that it stops promptly."""
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await scenario()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=2.0)


def test_the_checkpoint_moves_only_after_every_send_of_the_batch_is_acknowledged(
    broker: Broker, store: SqliteEventStore, checkpoint: RelayCheckpoint
) -> None:
    last = story(store)
    broker.held = True
    relay = Relay(store, checkpoint, "fake:9092", partitions=1, poll_interval=0.05)

    async def scenario() -> None:
        await until(lambda: len(broker.pending) == last, "every send of the batch")
        assert checkpoint.position() == 0
        broker.release()
        await until(lambda: checkpoint.position() == last, "the checkpoint")

    asyncio.run(running(relay, scenario))
    assert broker.positions(0) == list(range(1, last + 1))
    assert broker.producers[0].stopped


def test_a_failed_send_drops_the_producer_and_resends_the_batch_from_the_checkpoint(
    broker: Broker, store: SqliteEventStore, checkpoint: RelayCheckpoint
) -> None:
    first = story(store)
    relay = Relay(store, checkpoint, "fake:9092", partitions=1, batch_size=3, poll_interval=0.05)

    async def scenario() -> None:
        await until(lambda: checkpoint.position() == first, "the first events")
        broker.failures = 1
        last = story(store)  # four more events: the send of 5 fails
        await until(lambda: checkpoint.position() == last, "the events after the failure")

    asyncio.run(running(relay, scenario))
    assert [p.stopped for p in broker.producers] == [True, True]
    assert broker.positions(0)[:4] == [1, 2, 3, 4]
    assert 5 not in broker.positions(0)
    assert broker.positions(1) == [5, 6, 7, 8]  # from the checkpoint on: nothing skipped
    assert checkpoint.position() == 8


def test_a_restarted_relay_resumes_after_its_checkpoint(
    broker: Broker, store: SqliteEventStore, checkpoint: RelayCheckpoint
) -> None:
    last = story(store)
    checkpoint.advance(2)
    relay = Relay(store, checkpoint, "fake:9092", partitions=1, poll_interval=0.05)

    async def scenario() -> None:
        await until(lambda: checkpoint.position() == last, "the checkpoint")

    asyncio.run(running(relay, scenario))
    assert broker.positions(0) == list(range(3, last + 1))
