"""Per-caller limits on calls in progress and open watches, so one caller cannot starve others.

A caller is who its credential proves (or, with authentication off, its network peer). Counting
happens on the server's event loop only, so plain counters need no lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from crm.errors import ResourceExhausted

DEFAULT_CALLS = 64
DEFAULT_WATCHES = 8


@dataclass(frozen=True)
class Limits:
    """How many unary calls one caller may have in progress, and how many watches open."""

    calls: int = DEFAULT_CALLS
    watches: int = DEFAULT_WATCHES


class CallerLimits:
    """Counts each caller's calls in progress and open watches; refuses one past the limit."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._calls: Counter[str] = Counter()
        self._watches: Counter[str] = Counter()

    @contextmanager
    def holding(self, caller: str, *, watch: bool) -> Iterator[None]:
        """Count a call (or a watch) of `caller` for the block; ResourceExhausted past the limit."""
        counter, limit = (
            (self._watches, self.limits.watches) if watch else (self._calls, self.limits.calls)
        )
        if counter[caller] >= limit:
            what = "open watches" if watch else "calls in progress"
            raise ResourceExhausted(f"{limit} {what} is the limit per caller; retry when one ends")
        counter[caller] += 1
        try:
            yield
        finally:
            counter[caller] -= 1
            if not counter[caller]:
                del counter[caller]

    def in_use(self, caller: str) -> tuple[int, int]:
        """Calls in progress and watches open of `caller` (for tests and diagnostics)."""
        return self._calls[caller], self._watches[caller]
