"""What the deadline process must record, decided from history and the clock (pure).

The planner folds every event in global order into a watch per open case (its SLA clock, pauses,
tier, first response) and answers two questions: which facts follow from what just happened
(apply, pause, resume, fulfil; negative feedback on the case), and which timers are due at a
given instant (at risk, breached). Every planned command carries a request id derived from what
caused it, so a restarted process, or a second one running beside it, asks for the same command
and the case records it once. The timers live in a priority queue (services/sla/timers.py): an
event re-arms its own case's timers only, and asking what is due pops only what is due.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from crm.envelope import RecordedEvent
from crm.eventcodec import from_plain, to_plain
from services.case import domain as case_domain
from services.case.escalation import (
    CaseEscalationChanged,
    EscalationReason,
    RaiseEscalation,
)
from services.case.events import (
    EVENT_TYPES,
    CaseClosed,
    CaseEvent,
    CaseOpened,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseStatus,
    Category,
    ContactRecorded,
)
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaEvent,
    SlaFulfilled,
    SlaPaused,
    SlaResumed,
    SlaTarget,
)
from services.customer.events import CustomerRegistered, Tier, TierChanged
from services.events import DomainEvent
from services.feedback import domain as feedback_domain
from services.feedback.events import (
    FeedbackEvent,
    ReviewSubmitted,
    SurveySubmitted,
    VoiceOfCustomerRecorded,
)
from services.sla.policy import SlaPolicy, Targets, policy_digest
from services.sla.timers import AT_RISK, TimerQueue
from services.sla.watch import (
    CaseWatch,
    Command,
    LateFeedback,
    Planned,
    plain_plan,
    plan_from_plain,
    watch_timers,
)

STATE_VERSION = 3
"""The shape and meaning of `Planner.state()`. Raise it whenever CaseWatch, the state or the way
the planner folds events changes: a process then ignores a state saved by another version and
replays history from event 0 instead."""


ESCALATION_OF_FEEDBACK = {
    feedback_domain.Negativity.POOR_SCORE: EscalationReason.NEGATIVE_FEEDBACK,
    feedback_domain.Negativity.NEGATIVE_SENTIMENT: EscalationReason.NEGATIVE_SENTIMENT,
}
"""How the case escalates on negative feedback: the feedback service says why it is negative."""


class Planner:
    """Folds history into case watches and plans the commands that history and time call for."""

    def __init__(self, policy: SlaPolicy) -> None:
        self.policy = policy
        self.watches: dict[str, CaseWatch] = {}
        self._vip: dict[str, bool] = {}
        self._pending: dict[str, Planned] = {}
        self._timers = TimerQueue()
        # Each watch's place in `watches` (a scan's order), and each customer's watched cases.
        self._rank: dict[str, int] = {}
        self._ranks = 0
        self._cases_of: dict[str, set[str]] = {}

    # ------------------------------------------------------------ saved state

    def state(self) -> dict[str, Any]:
        """What a restarted planner needs, JSON-ready: the watches of the open cases (closed
        ones are not watched), the VIP customers and the plans not known to be carried out."""
        return {
            "policy_version": self.policy.version,
            "policy_digest": policy_digest(self.policy),
            "vip": sorted(customer for customer, vip in self._vip.items() if vip),
            "watches": [to_plain(watch) for watch in self.watches.values()],
            "pending": [plain_plan(planned) for planned in self._pending.values()],
        }

    @classmethod
    def restore(cls, policy: SlaPolicy, state: dict[str, Any]) -> Planner | None:
        """The planner `state` was taken from; None if it was planning under another policy, by
        version or by content (its due instants were decided under that one: replay instead).

        The content counts too: an operator who edits a target or the feedback window without
        renaming the version must not resume with plans made under the old rules."""
        if state["policy_version"] != policy.version:
            return None
        if state.get("policy_digest") != policy_digest(policy):
            return None
        planner = cls(policy)
        planner._vip = dict.fromkeys(state["vip"], True)
        for plain in state["watches"]:
            watch: CaseWatch = from_plain(CaseWatch, plain)
            planner._watch(watch)
            planner._arm(watch.case_id)
        for plain in state["pending"]:
            planned = plan_from_plain(plain)
            planner._pending[planned.request_id] = planned
        return planner

    # ------------------------------------------------------------ history

    def observe(self, recorded: RecordedEvent, event: DomainEvent) -> None:
        """Fold one event; plan what it calls for; forget plans it shows were carried out."""
        self._pending.pop(recorded.metadata.request_id, None)
        at = recorded.metadata.occurred_at
        match event:
            case CustomerRegistered():
                self._vip[event.customer_id] = event.tier is Tier.VIP
            case TierChanged():
                vip = event.to_tier is Tier.VIP
                self._vip[event.customer_id] = vip
                for watch in self._watches_of(event.customer_id):
                    if watch.active:
                        if not watch.paused:  # a paused clock takes the new targets on resume
                            self._apply(watch, recorded, at, "tier_changed")
                        if vip and watch.category is Category.COMPLAINT:
                            raise_it = RaiseEscalation(
                                watch.case_id, EscalationReason.VIP_COMPLAINT, "customer is VIP now"
                            )
                            self._plan(recorded, 1, raise_it, watch.case_id)
            case CaseOpened():
                watch = CaseWatch(
                    event.case_id,
                    event.customer_id,
                    event.priority,
                    event.category,
                    CaseStatus.OPEN,
                    {SlaTarget.FIRST_RESPONSE: at, SlaTarget.RESOLUTION: at},
                )
                self._watch(watch)
                self._apply(watch, recorded, at, "opened")
                self._arm(watch.case_id)
            case SurveySubmitted() | ReviewSubmitted() | (VoiceOfCustomerRecorded()):
                self._feedback(recorded, event)
            case _ if isinstance(event, EVENT_TYPES):
                watch_of = self.watches.get(event.case_id)
                if watch_of is not None:
                    self._case_event(watch_of, recorded, event, at)
                    self._arm(event.case_id)

    def _case_event(
        self, watch: CaseWatch, recorded: RecordedEvent, event: CaseEvent, at: datetime
    ) -> None:
        match event:
            case CasePriorityChanged():
                watch.priority = event.to_priority
                if not watch.paused:
                    self._apply(watch, recorded, at, "priority_changed")
            case CasePendingOnCustomer():
                watch.status = CaseStatus.PENDING_CUSTOMER
                watch.paused = True  # no timer fires while the pause is being recorded
                watch.pauses.append((at, None))
                self._plan(recorded, 0, RecordSlaFact(watch.case_id, SlaPaused(watch.case_id)))
            case CaseResumed():
                watch.status = CaseStatus.OPEN
                if watch.pauses and watch.pauses[-1][1] is None:
                    watch.pauses[-1] = (watch.pauses[-1][0], at)
                resumed = SlaResumed(watch.case_id, self._dues(watch, at))
                self._plan(recorded, 0, RecordSlaFact(watch.case_id, resumed))
            case ContactRecorded() if case_domain.is_response(event):
                self._fulfil(watch, recorded, SlaTarget.FIRST_RESPONSE, event.started_at)
            case CaseResolved():
                watch.status = CaseStatus.RESOLVED
                self._fulfil(watch, recorded, SlaTarget.RESOLUTION, at)
            case CaseReopened():
                watch.status = CaseStatus.OPEN
                watch.starts[SlaTarget.RESOLUTION] = at
                watch.pauses.clear()
                watch.fulfilled.discard(SlaTarget.RESOLUTION)
                watch.breached.discard(SlaTarget.RESOLUTION)
                self._apply(watch, recorded, at, "reopened")
                self._escalate_for_late_feedback(watch, recorded, at)
            case CaseClosed():
                self._unwatch(watch)
            case CaseEscalationChanged():
                watch.escalation = event.reasons
            case _ if isinstance(event, SlaApplied | SlaResumed):
                watch.dues, watch.paused, watch.at_risk = event.dues, False, set()
            case SlaPaused():
                watch.paused = True
            case SlaAtRisk():
                watch.at_risk.add(event.target)
            case SlaBreached():
                watch.breached.add(event.target)
            case SlaFulfilled():
                watch.fulfilled.add(event.target)
                watch.dues = tuple(d for d in watch.dues if d.target is not event.target)

    def _feedback(self, recorded: RecordedEvent, event: FeedbackEvent) -> None:
        negative = feedback_domain.negativity(event)
        reason = None if negative is None else ESCALATION_OF_FEEDBACK[negative]
        watch = self.watches.get(event.case_id) if event.case_id else None
        if reason is None or watch is None:
            return
        if watch.status is CaseStatus.RESOLVED:
            at = recorded.metadata.occurred_at
            watch.late_feedback += (LateFeedback(event.feedback_id, reason, at),)
            return
        if not watch.active or reason in watch.escalation:
            return
        note = f"feedback {event.feedback_id}"
        self._plan(recorded, 0, RaiseEscalation(watch.case_id, reason, note))

    def _escalate_for_late_feedback(
        self, watch: CaseWatch, recorded: RecordedEvent, at: datetime
    ) -> None:
        """A reopened case escalates for the negative feedback it got while resolved, when that
        came within the policy's window before the reopening (one command per reason)."""
        window = self.policy.negative_feedback_window
        recent: dict[EscalationReason, LateFeedback] = {}
        for late in watch.late_feedback:
            if at - window <= late.at <= at:
                recent[late.reason] = late
        watch.late_feedback = ()
        for slot, (reason, late) in enumerate(sorted(recent.items(), key=_by_value), start=2):
            note = f"feedback {late.feedback_id} after resolution"
            self._plan(recorded, slot, RaiseEscalation(watch.case_id, reason, note))

    def _apply(self, watch: CaseWatch, recorded: RecordedEvent, at: datetime, trigger: str) -> None:
        vip = self._vip.get(watch.customer_id, False)
        applied = SlaApplied(
            watch.case_id, self.policy.version, vip, self._dues(watch, at), trigger
        )
        about = watch.case_id if trigger == "tier_changed" else ""
        self._plan(recorded, 0, RecordSlaFact(watch.case_id, applied), about)

    def _fulfil(
        self, watch: CaseWatch, recorded: RecordedEvent, target: SlaTarget, at: datetime
    ) -> None:
        if target in watch.fulfilled:
            return
        watch.fulfilled.add(target)  # planned: later events of the same kind are no news
        due = next((d for d in watch.dues if d.target is target), None)
        # A recorded breach is final: a response dated before the due instant but recorded
        # after the breach does not turn it into "met".
        met = target not in watch.breached and (due is None or at <= due.due_at)
        self._plan(
            recorded, 1, RecordSlaFact(watch.case_id, SlaFulfilled(watch.case_id, target, met))
        )

    def _dues(self, watch: CaseWatch, now: datetime) -> tuple[SlaDue, ...]:
        """Due instants of the open targets, from business time used so far (pauses excluded)."""
        targets = self.policy.targets_for(watch.priority, self._vip.get(watch.customer_id, False))
        dues = []
        for target in (SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION):
            if target in watch.fulfilled:
                continue
            allowed = _allowed(targets, target)
            used = self._used(watch, target, now)
            calendar = self.policy.calendar
            risk_left = allowed * self.policy.at_risk_fraction - used
            dues.append(
                SlaDue(
                    target,
                    calendar.add(now, max(risk_left, timedelta(0))),
                    calendar.add(now, max(allowed - used, timedelta(0))),
                )
            )
        return tuple(dues)

    def _used(self, watch: CaseWatch, target: SlaTarget, now: datetime) -> timedelta:
        start = watch.starts[target]
        calendar = self.policy.calendar
        used = calendar.elapsed(start, now)
        for begin, end in watch.pauses:
            used -= calendar.elapsed(max(begin, start), min(end or now, now))
        return used

    def _plan(self, recorded: RecordedEvent, slot: int, command: Command, about: str = "") -> None:
        # One trigger can call for commands on several cases (a tier change): `about` tells them
        # apart, hashed so the id stays short whatever the case id.
        suffix = f":{hashlib.sha256(about.encode()).hexdigest()[:16]}" if about else ""
        request_id = f"supervise:{recorded.event_id}:{slot}{suffix}"
        self._pending[request_id] = Planned(
            request_id, recorded.event_id, command, recorded.metadata.occurred_at
        )

    # ------------------------------------------------------------ actions

    def pending(self) -> list[Planned]:
        """Commands history calls for that are not recorded yet, oldest first."""
        return list(self._pending.values())

    def forget(self, request_id: str) -> None:
        """Drop a plan that was carried out or refused."""
        self._pending.pop(request_id, None)

    def due_timers(self, now: datetime) -> list[Planned]:
        """At-risk and breach facts whose instant has come (they stay due until recorded)."""
        planned = []
        for case_id, timer in self._timers.due(now):
            watch, due = self.watches[case_id], timer.due
            fact_type = SlaAtRisk if timer.kind == AT_RISK else SlaBreached
            fact = fact_type(case_id, due.target, due.due_at)
            planned.append(_timer(watch, due, timer.kind, fact, timer.instant))
        return planned

    def next_timer(self) -> datetime | None:
        """The earliest instant a timer will be due, None when nothing is running."""
        return self._timers.next_instant()

    # ------------------------------------------------------------ watches and their timers

    def _watch(self, watch: CaseWatch) -> None:
        """Start (or restart) watching a case; it keeps its place if it was watched already."""
        previous = self.watches.get(watch.case_id)
        if previous is not None:
            self._cases_of[previous.customer_id].discard(watch.case_id)
        else:
            self._ranks += 1
            self._rank[watch.case_id] = self._ranks
        self.watches[watch.case_id] = watch
        self._cases_of.setdefault(watch.customer_id, set()).add(watch.case_id)

    def _unwatch(self, watch: CaseWatch) -> None:
        del self.watches[watch.case_id]
        del self._rank[watch.case_id]
        cases = self._cases_of[watch.customer_id]
        cases.discard(watch.case_id)
        if not cases:
            del self._cases_of[watch.customer_id]

    def _watches_of(self, customer_id: str) -> list[CaseWatch]:
        """The customer's watched cases, in the order of `watches`."""
        cases = sorted(self._cases_of.get(customer_id, ()), key=self._rank.__getitem__)
        return [self.watches[case_id] for case_id in cases]

    def _arm(self, case_id: str) -> None:
        """After an event of the case: its timers as they are now (only this case's)."""
        watch = self.watches.get(case_id)
        if watch is None:
            self._timers.disarm(case_id)
        else:
            self._timers.arm(case_id, self._rank[case_id], watch_timers(watch))


def _by_value(item: tuple[EscalationReason, LateFeedback]) -> str:
    return item[0].value


def _allowed(targets: Targets, target: SlaTarget) -> timedelta:
    return targets.first_response if target is SlaTarget.FIRST_RESPONSE else targets.resolution


def _timer(watch: CaseWatch, due: SlaDue, kind: str, fact: SlaEvent, instant: datetime) -> Planned:
    # Named by what it is about, hashed to stay a short, valid id whatever the case id.
    about = f"{watch.case_id}|{due.target.value}|{kind}|{due.due_at.isoformat()}"
    request_id = f"sla-{kind}-{hashlib.sha256(about.encode()).hexdigest()[:32]}"
    # Dated at the instant the clock crossed the threshold, however late it was noticed.
    return Planned(request_id, "", RecordSlaFact(watch.case_id, fact), instant)
