"""What-if: how a past period would have fared under a candidate SLA policy.

The recorded history is replayed without the facts the deadline process recorded (they were
decided under the live policy); the same planner the live process uses, given the candidate
policy and a simulated clock that jumps from event to event and fires every timer on the way,
decides the SLA facts anew. Live and candidate outcomes per case are written to a scratch SQLite
file and compared side by side. The live event and view stores are only read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

from crm.envelope import EventMetadata, RecordedEvent
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.sqlite_connections import ThreadConnections, immediate, translated
from services.case.escalation import CaseEscalationChanged, EscalationReason
from services.case.events import CaseOpened
from services.case.sla_facts import RecordSlaFact, SlaAtRisk, SlaBreached, SlaFulfilled, SlaTarget
from services.events import DomainEvent
from services.sla.planner import Planner
from services.sla.policy import SlaPolicy
from services.sla.process import ACTOR
from services.sla.watch import Planned

SLA_REASONS = {EscalationReason.SLA_AT_RISK, EscalationReason.SLA_BREACHED}


def read_history(
    store: EventStore, codec: EventCodec
) -> Iterator[tuple[RecordedEvent, DomainEvent]]:
    """Every recorded event in global order, decoded."""
    position = 0
    while batch := store.read_all(after=position, limit=1000):
        for recorded in batch:
            yield recorded, cast(DomainEvent, codec.decode(recorded.type, recorded.data))
        position = batch[-1].global_position


@dataclass
class CaseOutcome:
    """How one case fared against its SLA targets."""

    case_id: str
    opened_at: datetime
    priority: str
    met: dict[SlaTarget, bool] = field(default_factory=dict)
    at_risk: set[SlaTarget] = field(default_factory=set)
    breached: set[SlaTarget] = field(default_factory=set)
    escalated: bool = False

    def record(self, fact: object) -> None:
        match fact:
            case SlaFulfilled():
                self.met[fact.target] = fact.met and fact.target not in self.breached
            case SlaBreached():
                self.breached.add(fact.target)
                self.met[fact.target] = False
            case SlaAtRisk():
                self.at_risk.add(fact.target)
        if isinstance(fact, SlaAtRisk | SlaBreached):
            self.escalated = True  # at risk or breached always escalates

    @property
    def decided(self) -> bool:
        """A target is due and its outcome known: met, fulfilled late, or breached."""
        return bool(self.met)

    @property
    def attained(self) -> bool:
        return self.decided and all(self.met.values())


@dataclass(frozen=True)
class Summary:
    """The SLA side of the KPIs for one policy over the period."""

    cases: int
    decided: int
    attained: int
    at_risk: int
    breached: int
    escalated: int

    @property
    def attainment(self) -> float:
        return self.attained / self.decided if self.decided else 0.0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.cases if self.cases else 0.0


def live_outcomes(history: Iterable[tuple[RecordedEvent, DomainEvent]]) -> dict[str, CaseOutcome]:
    """Outcomes as recorded under the policies that applied at the time."""
    outcomes: dict[str, CaseOutcome] = {}
    for recorded, event in history:
        if isinstance(event, CaseOpened):
            outcomes[event.case_id] = CaseOutcome(
                event.case_id, recorded.metadata.occurred_at, event.priority.value
            )
        elif isinstance(event, SlaFulfilled | SlaBreached | SlaAtRisk | CaseEscalationChanged):
            outcome = outcomes.get(event.case_id)
            if outcome is not None and isinstance(event, CaseEscalationChanged):
                outcome.escalated = outcome.escalated or event.to_level > 0
            elif outcome is not None:
                outcome.record(event)
    return outcomes


def candidate_outcomes(
    history: Iterable[tuple[RecordedEvent, DomainEvent]], policy: SlaPolicy, until: datetime
) -> dict[str, CaseOutcome]:
    """Outcomes the candidate policy would have recorded, timers fired up to `until`."""
    planner = Planner(policy)
    outcomes: dict[str, CaseOutcome] = {}

    def carry_out(planned: Planned, at: datetime) -> None:
        planner.forget(planned.request_id)
        if not isinstance(planned.command, RecordSlaFact):
            return  # escalations from feedback do not depend on the SLA policy
        fact = planned.command.fact
        if fact.case_id in outcomes:
            outcomes[fact.case_id].record(fact)
        planner.observe(_simulated(planned, at), fact)

    def fire_timers(until_instant: datetime) -> None:
        while (instant := planner.next_timer()) is not None and instant <= until_instant:
            for planned in planner.due_timers(instant):
                carry_out(planned, instant)

    for recorded, event in history:
        if isinstance(event, CaseEscalationChanged) and _escalated_beyond_sla(event, outcomes):
            outcomes[event.case_id].escalated = True
        if recorded.metadata.actor == ACTOR:
            continue  # decided under the live policy: the candidate decides its own
        at = recorded.metadata.occurred_at
        fire_timers(at)
        planner.observe(recorded, event)
        if isinstance(event, CaseOpened):
            outcomes[event.case_id] = CaseOutcome(event.case_id, at, event.priority.value)
        for planned in planner.pending():
            carry_out(planned, at)
    fire_timers(until)
    return outcomes


def summarize(outcomes: Iterable[CaseOutcome], since: datetime, until: datetime) -> Summary:
    """Cases opened in [since, until) and how they fared."""
    chosen = [o for o in outcomes if since <= o.opened_at < until]
    return Summary(
        cases=len(chosen),
        decided=sum(o.decided for o in chosen),
        attained=sum(o.attained for o in chosen),
        at_risk=sum(bool(o.at_risk) for o in chosen),
        breached=sum(bool(o.breached) for o in chosen),
        escalated=sum(o.escalated for o in chosen),
    )


def write_scratch(path: Path, label: str, outcomes: Iterable[CaseOutcome]) -> None:
    """Keep the per-case outcomes in a scratch file for a closer look."""
    connections = ThreadConnections(path, "what-if scratch file")
    try:
        with translated("what-if scratch file"):
            _write_outcomes(connections.get(), label, outcomes)
    finally:
        connections.close()


def _write_outcomes(conn: sqlite3.Connection, label: str, outcomes: Iterable[CaseOutcome]) -> None:
    with immediate(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS what_if_cases (policy TEXT, case_id TEXT, opened_at TEXT,"
            " priority TEXT, attained INTEGER, at_risk TEXT, breached TEXT,"
            " PRIMARY KEY (policy, case_id))"
        )
        conn.executemany(
            "INSERT OR REPLACE INTO what_if_cases VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    label,
                    o.case_id,
                    o.opened_at.isoformat(),
                    o.priority,
                    int(o.attained),
                    ",".join(sorted(t.value for t in o.at_risk)),
                    ",".join(sorted(t.value for t in o.breached)),
                )
                for o in outcomes
            ],
        )


def side_by_side(live: Summary, candidate: Summary, candidate_version: str) -> str:
    """The comparison a team reads before adopting a policy."""
    rows = [
        ("cases opened", live.cases, candidate.cases),
        ("cases with a decided target", live.decided, candidate.decided),
        ("cases meeting both targets", live.attained, candidate.attained),
        ("SLA attainment", f"{live.attainment:.1%}", f"{candidate.attainment:.1%}"),
        ("cases put at risk", live.at_risk, candidate.at_risk),
        ("cases breached", live.breached, candidate.breached),
        ("cases escalated (any reason)", live.escalated, candidate.escalated),
        ("escalation rate", f"{live.escalation_rate:.1%}", f"{candidate.escalation_rate:.1%}"),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'':{width}}  {'live':>12}  {candidate_version:>12}"]
    lines += [f"{name:{width}}  {old!s:>12}  {new!s:>12}" for name, old, new in rows]
    return "\n".join(lines)


def _escalated_beyond_sla(event: CaseEscalationChanged, outcomes: dict[str, CaseOutcome]) -> bool:
    """Escalated for a reason no SLA policy changes (feedback, transfers, a request ...)."""
    return event.case_id in outcomes and bool(set(event.added) - SLA_REASONS)


def _simulated(planned: Planned, at: datetime) -> RecordedEvent:
    """A stand-in record of a fact the simulation decided, so the planner can fold it: dated
    like the live process dates it, recorded when the simulated clock reached it."""
    metadata = EventMetadata(
        "", planned.occurred_at, ACTOR, planned.request_id, planned.causation_id, planned.request_id
    )
    return RecordedEvent("", 0, 0, planned.request_id, "", b"", metadata, at, "", "")
