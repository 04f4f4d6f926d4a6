"""A doorbell between processes of one machine: a writer rings, every other listener wakes at once.

The in-process change signal (crm/notify.py) cannot see a commit made by another process, so a
follower in another process (the relay tailing the server's event store, a query API reading
views a Kafka worker writes) would only notice it at its next poll. Each listener binds a Unix
datagram socket in one directory per store file; a ring sends one byte to each of them. A ring is
a hint, never a guarantee: a lost datagram only means the listener notices at its next poll,
which every follower keeps as a fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from crm.notify import ChangeSignal

log = logging.getLogger(__name__)

LISTING_SECONDS = 0.5
"""How long a writer reuses its listing of listeners: a new listener may wait this long for its
first ring (it polls meanwhile)."""


def doorbell_directory(store_file: Path) -> Path:
    """Where the listeners of one store file bind: a short path (Unix socket paths are limited to
    about 100 bytes), the same for every process that opens the file."""
    digest = hashlib.sha256(str(store_file.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"crm-bell-{digest}"


class Doorbell:
    """Rings the other listeners of one store file, and listens for their rings."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._directory.mkdir(mode=0o700, exist_ok=True)
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._own: Path | None = None
        self._receiver: socket.socket | None = None
        self._listing: list[Path] = []
        self._listed_at = float("-inf")
        self._lock = threading.Lock()
        self._closed = False

    def ring(self) -> None:
        """Wake every other listener; never raises (a ring is only a hint)."""
        if self._closed:
            return
        for path in self._listeners():
            try:
                self._sender.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                # A listener that died without cleaning up: its socket file is stale.
                with contextlib.suppress(OSError):
                    path.unlink()
                self._listed_at = float("-inf")
            except OSError:
                pass  # its queue is full: it has rings waiting already

    def listen(self, on_ring: Callable[[], None]) -> None:
        """Call `on_ring` (from a daemon thread) whenever another process rings."""
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        own = self._directory / name
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(own))
        receiver.settimeout(1.0)  # so a closed doorbell's thread ends
        self._own, self._receiver = own, receiver
        threading.Thread(
            target=self._receive, args=(receiver, on_ring), name="doorbell", daemon=True
        ).start()

    def close(self) -> None:
        """Stop listening and remove this process's socket."""
        self._closed = True
        self._sender.close()
        if self._receiver is not None:
            self._receiver.close()
        if self._own is not None:
            with contextlib.suppress(OSError):
                self._own.unlink()

    def _listeners(self) -> list[Path]:
        with self._lock:
            now = time.monotonic()
            if now - self._listed_at > LISTING_SECONDS:
                try:
                    found = [p for p in self._directory.iterdir() if p.suffix == ".sock"]
                except OSError:
                    found = []
                self._listing = [p for p in found if p != self._own]
                self._listed_at = now
            return self._listing

    def _receive(self, receiver: socket.socket, on_ring: Callable[[], None]) -> None:
        while not self._closed:
            try:
                receiver.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            try:
                on_ring()
            except Exception:
                log.exception("doorbell: a listener failed on a ring")


def ring_across_processes(signal: ChangeSignal, store_file: Path) -> Doorbell:
    """Make `signal` wake in every process that opened `store_file`: a notify here rings the
    others, and their rings notify the waiters here. Close the returned doorbell on shutdown."""
    bell = Doorbell(doorbell_directory(store_file))
    signal.observe(bell.ring)
    bell.listen(signal.notify_here)
    return bell
