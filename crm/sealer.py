"""The sealer: at an interval of events or seconds, seals the global order so far (crm.seals).

Sealing is incremental: a new seal continues the newest kept one from its head and count, over
the events recorded since, and the store keeps it only if no other sealer continued that seal
first (EventStore.save_seal), so any number of processes may run a sealer without forking the
seals; the losers of a race seal nothing and try again later. The sealer does not re-verify the
history it continues: a seal certifies what the store held when it was made, and verification
(services/audit/store_verify.py) is what checks the events against it.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path

from crm.command_handling import Clock
from crm.errors import ConcurrencyConflict, CrmError
from crm.eventstore.port import EventStore
from crm.seals import Seal, SealEntry, SealKey, chain_head

log = logging.getLogger(__name__)

MAX_ENTRIES = 50_000
"""Events one seal covers at most: a long backlog is sealed in several seals in a row, so no
seal's entries grow past a few megabytes."""
POLL_SECONDS = 1.0


class Sealer:
    """Seals every `every_events` events or `every_seconds` seconds (0 turns a trigger off)."""

    def __init__(
        self,
        store: EventStore,
        key: SealKey,
        clock: Clock,
        *,
        every_events: int,
        every_seconds: float,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._store = store
        self._key = key
        self._clock = clock
        self._every_events = every_events
        self._every_seconds = every_seconds
        self._max_entries = max_entries
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def due(self) -> bool:
        """Whether enough events, or enough time with at least one event, call for a seal."""
        latest = self._store.latest_seal()
        after = latest.position if latest else 0
        # Counting stops at what decides: the event threshold, or one event when only time counts.
        new = len(self._store.read_chain(after, self._every_events or 1))
        if new == 0:
            return False
        if self._every_events and new >= self._every_events:
            return True
        if not self._every_seconds:
            return False
        if latest is None:
            return True
        age = (self._clock() - datetime.fromisoformat(latest.sealed_at)).total_seconds()
        return age >= self._every_seconds

    def seal_once(self) -> Seal | None:
        """Seal the events recorded since the newest seal (at most `max_entries` of them);
        None when there are none or another sealer kept its seal first."""
        latest = self._store.latest_seal()
        after = latest.position if latest else 0
        rows = self._store.read_chain(after, self._max_entries)
        if not rows:
            return None
        entries = [SealEntry(row[0], row[1], row[2], row[9]) for row in rows]
        seal = self._key.sign(
            Seal(
                position=entries[-1].global_position,
                count=(latest.count if latest else 0) + len(entries),
                head=chain_head(entries, latest.head) if latest else chain_head(entries),
                previous_position=after,
                sealed_at=self._clock().isoformat(),
                key_id=self._key.key_id,
            )
        )
        try:
            self._store.save_seal(seal, entries)
        except ConcurrencyConflict:
            log.info("another sealer sealed first after %d", after)
            return None
        log.info("sealed %d events up to global position %d", seal.count, seal.position)
        return seal

    def start(self) -> None:
        """Seal in a thread of its own until `stop`."""
        if not (self._every_events or self._every_seconds):
            log.info("sealing is off (seal_every_events and seal_every_seconds are 0)")
            return
        log.info(
            "sealing every %d events or %g seconds with key %s",
            self._every_events,
            self._every_seconds,
            self._key.key_id,
        )
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.due() and not self._stop.is_set():
                    if self.seal_once() is None:
                        break
            except CrmError as exc:  # the store is away: try again at the next tick
                log.warning("sealing failed, retrying: %s", exc)
            self._stop.wait(POLL_SECONDS)


def load_seal_key(path: Path) -> SealKey:
    """The seal key at `path`; a fresh one is written there first when the file is missing (a
    development store; production gives a key kept apart from the data). OSError or ValueError
    say what is wrong with the file."""
    if not path.exists():
        _create_once(path, SealKey.generate().private_pem())
    return SealKey.from_pem(path.read_bytes())


def _create_once(path: Path, content: bytes) -> None:
    """Write `content` to `path` unless a file is there: servers starting together on one data
    dir must all end up with the one key, never each with its own. The file appears whole (a
    hard link of a finished file) or not at one, and only its owner may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process created it first: theirs is the key
    finally:
        temporary.unlink()
