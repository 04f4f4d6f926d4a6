"""Tracking: how far a consumer of the event store got, recorded with the changes that got it there.

A consumer (a projection, the relay) keeps, per source of events, the global position of the last
event it applied. The position is written in the same transaction as the consumer's changes, so a
crash never separates the two, and an event redelivered at or below the position is recognised
and skipped. The in-process projector reads the store's global order: one source, "". A Kafka
worker reads topic partitions: each carries its events in global order, but partitions interleave
freely, so each partition (source "topic#partition") keeps its own position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from crm.errors import InvalidInput


def checkpoint_key(consumer: str, source: str = "") -> str:
    """The key one consumer's position from one source is stored under."""
    if not consumer or "@" in consumer:
        raise InvalidInput("consumer", f"{consumer!r} is not a consumer name")
    return f"{consumer}@{source}" if source else consumer


class Tracking(ABC):
    """Port of every store that records consumers' positions with their changes."""

    @abstractmethod
    def checkpoint(self, consumer: str, source: str = "") -> int:
        """The global position of the last event `consumer` applied from `source`, 0 if none."""
