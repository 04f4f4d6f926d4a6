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
from crm.errors import ConcurrencyConflict, DomainError, PersistenceError
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.vocabulary import Actor, ActorKind
from services.case.application import CaseApplication
from services.events import DomainEvent
from services.sla.planner import Planned, Planner
from services.sla.policy import SlaPolicy

log = logging.getLogger(__name__)

ACTOR = Actor(ActorKind.SYSTEM, "deadline-process")
MAX_WAIT_SECONDS = 1.0
MAX_ROUNDS = 5


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
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Catch up with the store and record what is due now; returns commands recorded.

        What it records is read back at once, since it can make more due: an SLA applied to a
        case opened long ago may be at risk and breached already.
        """
        total = 0
        for _round in range(MAX_ROUNDS):
            self._catch_up()
            now = self._clock()
            planned = [*self.planner.pending(), *self.planner.due_timers(now)]
            recorded = sum(self._carry_out(p) for p in planned)
            total += recorded
            if not recorded:
                break
        return total

    def _catch_up(self) -> None:
        while batch := self._store.read_all(after=self._position, limit=500):
            for recorded in batch:
                event = cast(DomainEvent, self._codec.decode(recorded.type, recorded.data))
                self.planner.observe(recorded, event)
                self._position = recorded.global_position

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
        self._thread = threading.Thread(target=self._run, name="deadline-process", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopped.set()
        self._store.notify_appended()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        signal = self._store.appended
        while not self._stopped.is_set():
            seen = signal.generation
            try:
                self.run_once()
            except Exception:
                log.exception("deadline process failed a round; retrying")
            signal.wait(self._seconds_to_next_timer(), seen)

    def _seconds_to_next_timer(self) -> float:
        """Until the next timer, at most MAX_WAIT_SECONDS: appends by others are polled."""
        next_timer = self.planner.next_timer()
        if next_timer is None:
            return MAX_WAIT_SECONDS
        seconds = (next_timer - self._clock()).total_seconds()
        return min(max(seconds, 0.0), MAX_WAIT_SECONDS)
