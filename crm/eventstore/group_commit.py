"""Group commit: writes that arrive together share one transaction and one durable commit.

A thread that finds no writer at work becomes the writer: it takes the queued pieces of work (up
to a bound), runs each in a savepoint of one transaction, commits once and hands every submitter
its own outcome; the others wait meanwhile, and whatever queues up during that commit goes into the
next one. So a durable commit (an fsync) is paid per batch rather than per append, and nothing
waits on a timer to form a batch. A piece of work that raises is rolled back to its savepoint and
fails alone; if the transaction itself fails, every piece in it fails and nothing is written. A
submitter hears back only after the commit returned: an acknowledgement means durably committed.

The committer knows nothing of events: an adapter gives it a way to open a transaction and a
savepoint on its connection, and submits closures that do the checking and writing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

C = TypeVar("C")
R = TypeVar("R")

MAX_BATCH = 128
"""At most this many pieces of work per transaction, so one commit never grows without bound."""


class TransactionLost(Exception):
    """Raised by a savepoint when the failure took the whole transaction with it (its cause is
    the failure): every piece of the batch fails, not only the one that raised."""


class _Pending:
    """One submitted piece of work and, once its batch is over, its outcome."""

    def __init__(self, work: Callable[[Any], Any]) -> None:
        self.work = work
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitter(Generic[C]):
    """Runs submitted work in shared transactions, one writer at a time."""

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[C]],
        savepoint: Callable[[C], AbstractContextManager[None]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        """`transaction()` opens a write transaction on the calling thread's connection and
        commits it on a clean exit (rolling back otherwise); `savepoint(conn)` isolates one piece
        of work, rolling back to the savepoint if it raises (TransactionLost if it cannot)."""
        self._transaction = transaction
        self._savepoint = savepoint
        self._max_batch = max_batch
        self._condition = threading.Condition()
        self._queue: list[_Pending] = []
        self._writing = False
        self.transactions = 0
        """How many transactions ran: fewer than the appends when they were grouped."""

    @property
    def writing(self) -> bool:
        """Whether a writer is running a batch right now."""
        with self._condition:
            return self._writing

    @property
    def queued(self) -> int:
        """How many pieces of work wait for the next transaction."""
        with self._condition:
            return len(self._queue)

    def submit(self, work: Callable[[C], R]) -> R:
        """Run `work` in a shared transaction; return its result once that is committed."""
        pending = _Pending(work)
        with self._condition:
            self._queue.append(pending)
        while True:
            with self._condition:
                while self._writing and not pending.done:
                    self._condition.wait()
                if pending.done:
                    break
                self._writing = True
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            try:
                self._run(batch)
            finally:
                with self._condition:
                    for item in batch:
                        item.done = True
                    self._writing = False
                    self.transactions += 1
                    self._condition.notify_all()
        if pending.error is not None:
            raise pending.error
        result: R = pending.result
        return result

    def _run(self, batch: list[_Pending]) -> None:
        try:
            with self._transaction() as conn:
                for item in batch:
                    try:
                        with self._savepoint(conn):
                            item.result = item.work(conn)
                    except TransactionLost:
                        raise
                    except Exception as exc:  # this piece fails alone; the rest go on
                        item.error = exc
        except BaseException as exc:
            failure = exc.__cause__ if isinstance(exc, TransactionLost) else exc
            for item in batch:
                if item.error is None:  # committed nothing: tell those that had succeeded
                    item.result, item.error = None, failure or exc
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt and the like still stop the writer
