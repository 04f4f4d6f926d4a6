"""The deadline process: follows the event store, records SLA facts and escalations on time.

It runs inside `make run` and as a worker of its own in the distributed shape. Timers fire at the
due instant: the loop sleeps until the next at-risk or breach instant (or until new events), not
in periodic sweeps. Time comes from an injectable clock, so tests drive it without sleeping.
Every command it sends has a deterministic request id, so a restart or a second process records
nothing twice.

With a checkpoint it saves its planner's state (the open cases' watches) with the global position
that state reflects: every SAVE_EVERY_EVENTS events or SAVE_EVERY_SECONDS seconds, whichever
comes first, but spending at most SAVE_SHARE of its time saving; and when it stops. At start it
loads that state and follows the store from there, so a restart costs in proportion to the open
cases and the events since the save, not to all of history. A crash between saves costs only a
re-read: the events after the save are folded again and call for the same commands with the
same request ids, which the case records once. A state saved by another planner version
(STATE_VERSION), under another policy version, or beyond the store's end is ignored, and history
is replayed from event 0.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import cast

from crm.command_handling import Clock, CommandContext
from crm.envelope import RecordedEvent
from crm.errors import ConcurrencyConflict, DomainError, IntegrityError, PersistenceError
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.follow import Follower
from crm.vocabulary import Actor, ActorKind
from services.case.application import CaseApplication
from services.events import DomainEvent
from services.sla.checkpoint import DeadlineCheckpointPort, SavedState
from services.sla.planner import STATE_VERSION, Planner
from services.sla.policy import SlaPolicy
from services.sla.watch import Planned

log = logging.getLogger(__name__)

ACTOR = Actor(ActorKind.SYSTEM, "deadline-process")
MAX_WAIT_SECONDS = 1.0
MAX_ROUNDS = 5
BATCH_SIZE = 500
SAVE_EVERY_EVENTS = 10_000
"""Save the planner's state once this many events are unsaved..."""
SAVE_EVERY_SECONDS = 30.0
"""...or once events have stayed unsaved this long, whichever comes first..."""
SAVE_SHARE = 0.05
"""...but no sooner after the last save than 20 times what it took (5 % of the time): a save
costs in proportion to the open cases (about 0.3 s for 8,000 here), so a catch-up over a long
history saves a few times instead of after every 10,000 events, and a restart re-reads at most
what arrived in max(30 s, 20 x the last save) or the 10,000 events, whichever is more."""


class DeadlineProcess:
    """Reads history into a planner and carries out what it plans."""

    def __init__(
        self,
        store: EventStore,
        cases: CaseApplication,
        policy: SlaPolicy,
        clock: Clock,
        codec: EventCodec,
        *,
        checkpoint: DeadlineCheckpointPort | None = None,
        save_every_events: int = SAVE_EVERY_EVENTS,
        save_every_seconds: float = SAVE_EVERY_SECONDS,
    ) -> None:
        self._store = store
        self._cases = cases
        self._policy = policy
        self._clock = clock
        self._codec = codec
        self.planner = Planner(policy)
        self._position = 0
        self._checkpoint = checkpoint
        self._resumed = checkpoint is None  # without a checkpoint, history is read from event 0
        self._save_every_events = save_every_events
        self._save_every_seconds = save_every_seconds
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._save_took = 0.0
        self._follower = Follower(
            store,
            "deadline process",
            checkpoint=self._resume,
            handle=self._observe,
            idle=self._record_due,
            batch_size=BATCH_SIZE,
        )
        self._thread: threading.Thread | None = None

    @property
    def position(self) -> int:
        """The global position of the last event the planner folded."""
        return self._position

    def run_once(self) -> int:
        """Catch up with the store and record what is due now; returns commands recorded.

        What it records is read back at once, since it can make more due: an SLA applied to a
        case opened long ago may be at risk and breached already.
        """
        total = 0
        for _round in range(MAX_ROUNDS):
            self.catch_up()
            recorded = self._carry_out_due()
            total += recorded
            if not recorded:
                break
        return total

    def catch_up(self) -> int:
        """Resume from the checkpoint (once) and fold every event after it; returns events read."""
        read = 0
        while batch := self._store.read_all(after=self._resume(), limit=BATCH_SIZE):
            self._observe(batch)
            read += len(batch)
        return read

    def save(self) -> None:
        """Save the planner's state with the position it reflects (nothing without a checkpoint).

        Never before the saved state was loaded: an empty planner must not replace it. Call it
        from the thread that runs the process, or while it is not running (the planner is not
        locked); a running process saves by itself.
        """
        if self._checkpoint is None or not self._resumed or not self._unsaved:
            return
        started = time.monotonic()
        state = json.dumps(self.planner.state(), separators=(",", ":"))
        self._checkpoint.save(SavedState(self._position, STATE_VERSION, state))
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self._save_took = self._saved_at - started

    def _resume(self) -> int:
        """The position to read after; the first call loads the saved state, if any is usable."""
        if not self._resumed:
            assert self._checkpoint is not None
            self._load(self._checkpoint.load())
            self._resumed = True
        return self._position

    def _load(self, saved: SavedState | None) -> None:
        if saved is None:
            log.info("deadline process: no saved state; reading history from event 0")
            return
        if saved.version != STATE_VERSION:
            log.info(
                "deadline process: the saved state is of planner version %d, not %d;"
                " reading history from event 0",
                saved.version,
                STATE_VERSION,
            )
            return
        if saved.position > self._store.last_position():
            log.warning(
                "deadline process: the saved state is at position %d, beyond the store's last"
                " event; it belongs to another store: reading history from event 0",
                saved.position,
            )
            return
        try:
            planner = Planner.restore(self._policy, json.loads(saved.state))
        except (ValueError, KeyError, TypeError, IntegrityError):
            log.warning(
                "deadline process: the saved state is unreadable; reading history from event 0",
                exc_info=True,
            )
            return
        if planner is None:
            log.info(
                "deadline process: the saved state was planned under another policy than %s;"
                " reading history from event 0",
                self._policy.version,
            )
            return
        self.planner, self._position = planner, saved.position
        log.info(
            "deadline process: resumed at position %d with %d open cases",
            saved.position,
            len(planner.watches),
        )

    def _observe(self, batch: list[RecordedEvent]) -> None:
        """Feed events to the planner, moving the position event by event (none is seen twice)."""
        for recorded in batch:
            event = cast(DomainEvent, self._codec.decode(recorded.type, recorded.data))
            self.planner.observe(recorded, event)
            self._position = recorded.global_position
        self._unsaved += len(batch)
        self._save_when_due()

    def _save_when_due(self) -> None:
        """Every SAVE_EVERY_EVENTS events or SAVE_EVERY_SECONDS seconds, within SAVE_SHARE; a
        failed save is only logged, as the state is still in memory and the next save carries it."""
        since = time.monotonic() - self._saved_at
        if (
            not self._unsaved
            or (self._unsaved < self._save_every_events and since < self._save_every_seconds)
            or since < self._save_took / SAVE_SHARE
        ):
            return
        try:
            self.save()
        except PersistenceError:
            log.warning("deadline process could not save its state", exc_info=True)

    def _carry_out_due(self) -> int:
        """Send what the planner has pending and every timer due now; returns commands recorded."""
        now = self._clock()
        planned = [*self.planner.pending(), *self.planner.due_timers(now)]
        return sum(self._carry_out(p) for p in planned)

    def _carry_out(self, planned: Planned) -> int:
        context = CommandContext(
            request_id=planned.request_id,
            actor=ACTOR,
            occurred_at=planned.occurred_at,  # what the fact describes; recorded_at says when
            causation_id=planned.causation_id,
        )
        try:
            outcome = self._cases.handle(planned.command, context)
        except (ConcurrencyConflict, PersistenceError):
            log.warning("deadline process will retry %s", planned.request_id, exc_info=True)
            return 0
        except DomainError as refused:
            # The case moved on (closed, already escalated ...): nothing left to record.
            log.info("deadline process dropped %s: %s", planned.request_id, refused)
            self.planner.forget(planned.request_id)
            return 0
        self.planner.forget(planned.request_id)
        return 0 if outcome.duplicate_request else 1

    def start(self) -> None:
        """Follow the store in a thread, recording what falls due until `stop`."""
        self._thread = threading.Thread(target=self._run, name="deadline-process", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following and save the state (the thread saves it as its last act)."""
        self._follower.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._save_quietly()

    def close(self) -> None:
        """Stop, then release the checkpoint's file."""
        self.stop()
        if self._checkpoint is not None:
            self._checkpoint.close()

    def _run(self) -> None:
        try:
            self._follower.run()
        finally:
            self._save_quietly()

    def _save_quietly(self) -> None:
        try:
            self.save()
        except PersistenceError:
            log.warning("deadline process could not save its state on stop", exc_info=True)

    def _record_due(self) -> float:
        """Caught up: record what is due now; returns how long to wait for appends."""
        self._save_when_due()
        if self._carry_out_due():
            return 0.0  # read back what was recorded at once: it can make more due
        return self._seconds_to_next_timer()

    def _seconds_to_next_timer(self) -> float:
        """Until the next timer, at most MAX_WAIT_SECONDS: appends by others are polled."""
        next_timer = self.planner.next_timer()
        if next_timer is None:
            return MAX_WAIT_SECONDS
        seconds = (next_timer - self._clock()).total_seconds()
        return min(max(seconds, 0.0), MAX_WAIT_SECONDS)
