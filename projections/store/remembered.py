"""What a projection wrote lately, kept in memory while one writer rebuilds it from event 0.

Folding a case's next event needs the case's stored view; reading it back and decoding it for
every batch dominated a rebuild. While a rebuild is the projection's only writer, the value it
just wrote is the stored one, so it is kept here (bounded, least recently used first out) and
read from the database only when it was forgotten. The view store checks that the projection's
checkpoint is still the one this writer left before trusting what is kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")

CAPACITY = 50_000
"""Values kept per projection: the cases a rebuild touches again soon (open ones) fit; a closed
case that is forgotten is read back from the database if it ever changes again."""


class Remembered(Generic[V]):
    """Values by key as last written, and the checkpoint they were written up to."""

    def __init__(self, capacity: int | None = None) -> None:
        self._values: OrderedDict[str, V] = OrderedDict()
        self._capacity = CAPACITY if capacity is None else capacity
        self.position = 0

    def loader(self, read: Callable[[str], V | None]) -> Callable[[str], V | None]:
        """A `load` callback for a pure projection: what is kept, else what `read` finds."""

        def load(key: str) -> V | None:
            value = self._values.get(key)
            if value is None:
                return read(key)
            self._values.move_to_end(key)
            return value

        return load

    def keep(self, values: Mapping[str, V]) -> None:
        """Remember what was just written."""
        kept = self._values
        for key, value in values.items():
            kept[key] = value
            kept.move_to_end(key)
        while len(kept) > self._capacity:
            kept.popitem(last=False)

    def forget(self) -> None:
        self._values.clear()
        self.position = 0
