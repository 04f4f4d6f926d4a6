"""The deadline process: follows the event store, records SLA facts and escalations on time.

It runs inside `make run` and as a worker of its own in the distributed shape. Timers fire at the
due instant: the loop sleeps until the next at-risk or breach instant (or until new events), not
in periodic sweeps. Time comes from an injectable clock, so tests drive it without sleeping.
Every command it sends has a deterministic request id, so a restart or a second process records
nothing twice.
"""

from __future__ import annotations

import logging
import threading
from typing import cast

from crm.command_handling import Clock, CommandContext
from crm.envelope import RecordedEvent
from crm.errors import ConcurrencyConflict, DomainError, PersistenceError
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.follow import Follower
from crm.vocabulary import Actor, ActorKind
from services.case.application import CaseApplication
from services.events import DomainEvent
from services.sla.planner import Planned, Planner
from services.sla.policy import SlaPolicy

log = logging.getLogger(__name__)

ACTOR = Actor(ActorKind.SYSTEM, "deadline-process")
MAX_WAIT_SECONDS = 1.0
MAX_ROUNDS = 5
BATCH_SIZE = 500


class DeadlineProcess:
    """Reads history into a planner and carries out what it plans."""

    def __init__(
        self,
        store: EventStore,
        cases: CaseApplication,
        policy: SlaPolicy,
        clock: Clock,
        codec: EventCodec,
    ) -> None:
        self._store = store
        self._cases = cases
        self._clock = clock
        self._codec = codec
        self.planner = Planner(policy)
        self._position = 0
        # The planner lives in memory, so its checkpoint does too: a restart reads from event 0.
        self._follower = Follower(
            store,
            "deadline process",
            checkpoint=lambda: self._position,
            handle=self._observe,
            idle=self._record_due,
            batch_size=BATCH_SIZE,
        )
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Catch up with the store and record what is due now; returns commands recorded.

        What it records is read back at once, since it can make more due: an SLA applied to a
        case opened long ago may be at risk and breached already.
        """
        total = 0
        for _round in range(MAX_ROUNDS):
            while batch := self._store.read_all(after=self._position, limit=BATCH_SIZE):
                self._observe(batch)
            recorded = self._carry_out_due()
            total += recorded
            if not recorded:
                break
        return total

    def _observe(self, batch: list[RecordedEvent]) -> None:
        """Feed events to the planner, moving the position event by event (none is seen twice)."""
        for recorded in batch:
            event = cast(DomainEvent, self._codec.decode(recorded.type, recorded.data))
            self.planner.observe(recorded, event)
            self._position = recorded.global_position

    def _carry_out_due(self) -> int:
        """Send what the planner has pending and every timer due now; returns commands recorded."""
        now = self._clock()
        planned = [*self.planner.pending(), *self.planner.due_timers(now)]
        return sum(self._carry_out(p) for p in planned)

    def _carry_out(self, planned: Planned) -> int:
        context = CommandContext(
            request_id=planned.request_id,
            actor=ACTOR,
            occurred_at=self._clock(),
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
        self._thread = threading.Thread(
            target=self._follower.run, name="deadline-process", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._follower.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def _record_due(self) -> float:
        """Caught up: record what is due now; returns how long to wait for appends."""
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
