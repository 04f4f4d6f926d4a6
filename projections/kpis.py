"""KPI facts: the rows the KPI report aggregates, each taken from one event or one case (pure).

Replay must equal live, and a Kafka worker applies each topic partition on its own, so no fact
may depend on how different streams interleave. Hence:

- a contact fact comes from one ContactRecorded plus the case view just before it (team and
  category): both belong to the case's own stream, which is ordered everywhere;
- a survey fact comes from one SurveySubmitted alone; the team and category of its case are joined
  when the report is read, never looked up while projecting (the case topic may lag or lead);
- a purchase fact comes from one PurchaseRecorded or RenewalRecorded;
- a case fact is a function of the case view, i.e. of the case's own stream.

Every fact is dated by the UTC calendar day of the instant its event occurred (`occurred_at`):
one fixed day boundary keeps facts comparable across teams; a per-policy time zone is a later
refinement.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crm.envelope import RecordedEvent
from crm.instants import sortable_instant
from crm.vocabulary import ActorKind, Channel, Direction
from projections.case_kpis import HUMAN_HANDLERS, Span
from projections.case_view import CaseView, apply_case_event
from projections.catalogue import Batch
from services.case.events import EVENT_TYPES as CASE_EVENT_TYPES
from services.case.events import ContactOutcome, ContactRecorded
from services.customer.events import PurchaseRecorded, RenewalRecorded
from services.events import DomainEvent
from services.feedback.events import SurveySubmitted

OFFERED_CHANNELS = frozenset({Channel.PHONE, Channel.CHAT})
"""Where a contact is offered to an agent queue and can be abandoned: the answer-rate channels."""

NOT_ANSWERED = frozenset({ContactOutcome.ABANDONED, ContactOutcome.VOICEMAIL})
PURCHASE = "purchase"
RENEWAL = "renewal"


def utc_day(instant: datetime) -> str:
    """The UTC calendar day of an instant, as YYYY-MM-DD (naive instants are taken as UTC)."""
    aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
    return aware.astimezone(UTC).date().isoformat()


@dataclass(frozen=True)
class ContactFact:
    """One contact: answer rate (offered/answered) and handling time (handled and its seconds).

    Offered: inbound on phone or chat. Answered: offered and picked up by anyone, agent or bot
    (not abandoned, not voicemail). Handled: a human agent or supervisor answered it, on any
    channel and in either direction; only handled contacts carry handling seconds into AHT.
    """

    event_id: str
    case_id: str
    day: str
    channel: str
    direction: str
    team: str  # the case's team when the contact was recorded, "" if unassigned
    category: str
    offered: bool
    answered: bool
    handled: bool
    bot_session: bool
    bot_resolved: bool
    handed_over: bool
    talk_seconds: int
    hold_seconds: int
    after_work_seconds: int


@dataclass(frozen=True)
class SurveyFact:
    """One survey's scores; each of CSAT, NPS and CES may be absent."""

    feedback_id: str
    customer_id: str
    case_id: str
    day: str
    channel: str
    csat: int | None
    nps: int | None
    ces: int | None


@dataclass(frozen=True)
class PurchaseFact:
    """A purchase or a renewal: the retention KPI counts customers who bought."""

    event_id: str
    customer_id: str
    day: str
    kind: str


@dataclass(frozen=True)
class CaseFact:
    """One case as the case KPIs see it; replaced whenever its view changes.

    `team` is the team at the last resolution for a resolved case, else the current team.
    `inactive` is a JSON list of [start, end|null] UTC texts (resolved or closed stretches) and
    `done_utc` the start of a stretch that has not ended, so the backlog at any instant follows.
    """

    case_id: str
    customer_id: str
    channel: str
    category: str
    team: str
    opened_day: str
    opened_utc: str
    first_response_seconds: float | None
    resolved_day: str | None
    resolution_seconds: float | None
    first_resolved_day: str | None
    reopened: bool
    fcr: bool
    transfers: int
    escalated: bool
    sla_outcome: str
    sla_decided_day: str | None
    inactive: str
    done_utc: str | None


@dataclass
class KpiChanges:
    """What a batch adds to the KPI facts, with the projection's own copy of each case's view
    (its team and category date contacts; the case fact is a function of it)."""

    contacts: list[ContactFact] = field(default_factory=list)
    surveys: list[SurveyFact] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    case_views: dict[str, CaseView] = field(default_factory=dict)

    @property
    def cases(self) -> list[CaseFact]:
        return [case_fact(view) for view in self.case_views.values()]


def kpi_changes(news: Batch, load: Callable[[str], CaseView | None]) -> KpiChanges:
    """The KPI facts projection's apply. It folds case views of its own with the case views
    projection's pure code, so it can be rebuilt or run apart from that projection."""
    changes = KpiChanges()
    for recorded, event in news:
        if isinstance(event, CASE_EVENT_TYPES):
            view = changes.case_views.get(event.case_id) or load(event.case_id)
            contact = contact_fact(recorded, event, view)  # with the view as it was before
            if contact is not None:
                changes.contacts.append(contact)
            changes.case_views[event.case_id] = apply_case_event(view, event, recorded)
        survey = survey_fact(recorded, event)
        if survey is not None:
            changes.surveys.append(survey)
        purchase = purchase_fact(recorded, event)
        if purchase is not None:
            changes.purchases.append(purchase)
    return changes


def contact_fact(
    recorded: RecordedEvent, event: DomainEvent, view: CaseView | None
) -> ContactFact | None:
    """The fact of a ContactRecorded that is news to the case view `view` (the view before it)."""
    if not isinstance(event, ContactRecorded) or view is None:
        return None
    if recorded.global_position <= view.last_position:
        return None  # redelivered: its fact was written with the first delivery
    offered = event.direction is Direction.INBOUND and event.channel in OFFERED_CHANNELS
    handled = event.handler_kind in HUMAN_HANDLERS and event.outcome is ContactOutcome.ANSWERED
    bot_session = event.handler_kind is ActorKind.BOT
    return ContactFact(
        event_id=recorded.event_id,
        case_id=event.case_id,
        day=utc_day(recorded.metadata.occurred_at),
        channel=event.channel.value,
        direction=event.direction.value,
        team=view.team,
        category=view.category.value,
        offered=offered,
        answered=offered and event.outcome not in NOT_ANSWERED,
        handled=handled,
        bot_session=bot_session,
        bot_resolved=bot_session and event.outcome is ContactOutcome.BOT_RESOLVED,
        handed_over=bot_session and event.outcome is ContactOutcome.HANDED_TO_HUMAN,
        talk_seconds=event.talk_seconds if handled else 0,
        hold_seconds=event.hold_seconds if handled else 0,
        after_work_seconds=event.after_work_seconds if handled else 0,
    )


def survey_fact(recorded: RecordedEvent, event: DomainEvent) -> SurveyFact | None:
    if not isinstance(event, SurveySubmitted):
        return None
    return SurveyFact(
        feedback_id=event.feedback_id,
        customer_id=event.customer_id,
        case_id=event.case_id,
        day=utc_day(recorded.metadata.occurred_at),
        channel=event.channel.value,
        csat=event.csat,
        nps=event.nps,
        ces=event.ces,
    )


def purchase_fact(recorded: RecordedEvent, event: DomainEvent) -> PurchaseFact | None:
    if isinstance(event, PurchaseRecorded):
        kind = PURCHASE
    elif isinstance(event, RenewalRecorded):
        kind = RENEWAL
    else:
        return None
    day = utc_day(recorded.metadata.occurred_at)
    return PurchaseFact(recorded.event_id, event.customer_id, day, kind)


def case_fact(view: CaseView) -> CaseFact:
    """The case's KPI row; depends on the view alone, hence on the case's own stream."""
    kpis = view.kpis
    resolved = view.resolved_at is not None
    first_response = None
    if view.first_response_at is not None:
        # A contact that started before the case was opened (the call that opened it) is 0 s.
        first_response = max((view.first_response_at - view.opened_at).total_seconds(), 0.0)
    running = kpis.inactive[-1] if kpis.inactive and kpis.inactive[-1].end is None else None
    return CaseFact(
        case_id=view.case_id,
        customer_id=view.customer_id,
        channel=view.channel.value,
        category=view.category.value,
        team=kpis.resolution_team if resolved else view.team,
        opened_day=utc_day(view.opened_at),
        opened_utc=sortable_instant(view.opened_at),
        first_response_seconds=first_response,
        resolved_day=None if view.resolved_at is None else utc_day(view.resolved_at),
        resolution_seconds=kpis.resolution_seconds if resolved else None,
        first_resolved_day=(
            None if kpis.first_resolved_at is None else utc_day(kpis.first_resolved_at)
        ),
        reopened=view.reopen_count > 0,
        fcr=(
            resolved
            and kpis.human_inbound_contacts == 1
            and view.transfer_count == 0
            and not kpis.callback
        ),
        transfers=view.transfer_count,
        escalated=kpis.ever_escalated,
        sla_outcome=kpis.sla_outcome,
        sla_decided_day=None if kpis.sla_decided_at is None else utc_day(kpis.sla_decided_at),
        inactive=json.dumps([_span(span) for span in kpis.inactive]),
        done_utc=None if running is None else sortable_instant(running.start),
    )


def _span(span: Span) -> list[str | None]:
    return [sortable_instant(span.start), None if span.end is None else sortable_instant(span.end)]


def inactive_spans(text: str) -> list[tuple[datetime, datetime | None]]:
    """The stretches of a CaseFact's `inactive` column, as naive UTC instants."""
    spans: list[tuple[datetime, datetime | None]] = []
    for start, end in json.loads(text):
        spans.append(
            (datetime.fromisoformat(start), None if end is None else datetime.fromisoformat(end))
        )
    return spans
