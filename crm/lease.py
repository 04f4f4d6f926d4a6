"""One active copy among several: the lease a relay or deadline worker holds while it works.

Several copies of a process that must not work twice at once (the relay, the deadline worker)
may run for availability; the one holding the lease works, the others wait as standbys and take
over once the holder is gone. A lease is tied to the holder's life, not to a clock: the kernel
drops a file lock when its process dies, PostgreSQL an advisory lock when its session ends, so
a killed holder is replaced within one retry interval and no timeout has to be guessed.
"""

from __future__ import annotations

import fcntl
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path

RETRY_SECONDS = 0.5


class Lease(ABC):
    """Port: try to become the active copy, and tell whether this copy still is."""

    @abstractmethod
    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True if this copy holds it now."""

    @abstractmethod
    def held(self) -> bool:
        """Whether this copy still holds the lease (a lost database session loses it)."""

    @abstractmethod
    def release(self) -> None:
        """Give the lease up, so a standby takes over at once."""

    def wait(self, stop: threading.Event, retry: float = RETRY_SECONDS) -> bool:
        """Block until this copy holds the lease (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self.try_acquire():
                return True
            stop.wait(retry)
        return False


class FileLease(Lease):
    """A lease on one machine: an exclusive lock on a file beside the process's checkpoint."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
