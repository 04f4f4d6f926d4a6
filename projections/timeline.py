"""The unified timeline: one readable entry per fact about a customer, on every channel (pure).

Summaries are written for an agent skimming the history and carry no personal data (names,
addresses, subjects, descriptions, free text of notes, reasons or feedback): those fields are
encrypted per customer and shredded when a customer is forgotten, while the timeline must stay
readable for audit. Summaries therefore use only ids, enum values, counts, scores and timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum

from crm.envelope import RecordedEvent
from crm.errors import InvariantViolated
from projections.catalogue import Batch
from projections.lineage import MergeLink, merge_link, newer_link
from services.case.compensation import (
    COMPENSATION_EVENT_TYPES,
    CompensationGranted,
    CompensationRejected,
    CompensationRequested,
)
from services.case.escalation import CaseEscalationChanged
from services.case.events import (
    CaseAssigned,
    CaseClosed,
    CaseNoteAdded,
    CaseOpened,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseTransferred,
    ContactHandedOver,
    ContactRecorded,
)
from services.case.sla_facts import (
    SLA_EVENT_TYPES,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaFulfilled,
    SlaPaused,
    SlaResumed,
)
from services.customer.events import (
    CancellationRecorded,
    ContactPoint,
    ContactPointsUpdated,
    CustomerForgotten,
    CustomerMerged,
    CustomerMergeUndone,
    CustomerRegistered,
    DuplicateAbsorbed,
    DuplicateReleased,
    PurchaseRecorded,
    RenewalRecorded,
    TierChanged,
)
from services.events import DomainEvent
from services.feedback.events import (
    CES_RANGE,
    CSAT_RANGE,
    NPS_RANGE,
    RATING_RANGE,
    FeedbackEvent,
    ReviewSubmitted,
    SurveySubmitted,
    VoiceOfCustomerRecorded,
)


class EntryKind(StrEnum):
    """What kind of fact an entry shows, so a reader can filter the timeline by it."""

    CUSTOMER = "customer"
    CASE = "case"
    CONTACT = "contact"
    FEEDBACK = "feedback"
    SLA = "sla"
    ESCALATION = "escalation"


@dataclass(frozen=True)
class TimelineEntry:
    """One fact on a customer's timeline, in the store's global order."""

    event_id: str
    global_position: int
    customer_id: str
    case_id: str
    kind: EntryKind
    event_type: str
    channel: str
    direction: str
    actor: str
    occurred_at: datetime
    summary: str


def timeline_entry(recorded: RecordedEvent, event: DomainEvent) -> TimelineEntry:
    """The timeline entry of one recorded event (ids and time from the envelope)."""
    customer_id, case_id, kind, channel, direction, summary = _describe(event)
    return TimelineEntry(
        event_id=recorded.event_id,
        global_position=recorded.global_position,
        customer_id=customer_id or recorded.metadata.customer_id,
        case_id=case_id,
        kind=kind,
        event_type=recorded.type,
        channel=channel,
        direction=direction,
        actor=str(recorded.metadata.actor),
        occurred_at=recorded.metadata.occurred_at,
        summary=summary,
    )


@dataclass
class TimelineChanges:
    """What a batch adds to the timeline projection: entries, and merge links by duplicate."""

    entries: list[TimelineEntry] = field(default_factory=list)
    merge_links: dict[str, MergeLink] = field(default_factory=dict)


def timeline_changes(news: Batch) -> TimelineChanges:
    """The timeline projection's apply: one entry per event, and the latest link per duplicate."""
    changes = TimelineChanges()
    for recorded, event in news:
        changes.entries.append(timeline_entry(recorded, event))
        link = merge_link(recorded, event)
        if link is not None:
            previous = changes.merge_links.get(link.duplicate_id)
            changes.merge_links[link.duplicate_id] = newer_link(previous, link)
    return changes


# (customer id or "" to take the envelope's, case id, kind, channel, direction, summary)
_Description = tuple[str, str, EntryKind, str, str, str]


def _describe(event: DomainEvent) -> _Description:
    if isinstance(event, ContactRecorded | ContactHandedOver):
        return _describe_contact(event)
    if isinstance(event, CaseOpened):
        summary = (
            f"Case opened on {_words(event.channel)}: {_words(event.category)},"
            f" priority {event.priority.value}"
        )
        return event.customer_id, event.case_id, EntryKind.CASE, event.channel.value, "", summary
    if isinstance(event, _CASE_EVENTS):
        return "", event.case_id, EntryKind.CASE, "", "", _case_summary(event)
    if isinstance(event, SLA_EVENT_TYPES):
        return "", event.case_id, EntryKind.SLA, "", "", _sla_summary(event)
    if isinstance(event, COMPENSATION_EVENT_TYPES):
        return "", event.case_id, EntryKind.CASE, "", "", _compensation_summary(event)
    if isinstance(event, CaseEscalationChanged):
        return "", event.case_id, EntryKind.ESCALATION, "", "", _escalation_summary(event)
    if isinstance(event, _FEEDBACK_EVENTS):
        channel = "" if isinstance(event, ReviewSubmitted) else event.channel.value
        summary = _feedback_summary(event)
        return event.customer_id, event.case_id, EntryKind.FEEDBACK, channel, "", summary
    if isinstance(event, _CUSTOMER_EVENTS):
        return event.customer_id, "", EntryKind.CUSTOMER, "", "", _customer_summary(event)
    raise InvariantViolated(f"no timeline entry for {type(event).__name__}")


def _describe_contact(event: ContactRecorded | ContactHandedOver) -> _Description:
    if isinstance(event, ContactHandedOver):
        to = ", ".join(
            part
            for part in (
                f"agent {event.to_agent_id}" if event.to_agent_id else "",
                f"team {event.to_team}" if event.to_team else "",
            )
            if part
        )
        summary = f"Contact {event.contact_id} handed over from bot {event.from_bot_id} to a human"
        summary += f" ({to})" if to else ""
        return "", event.case_id, EntryKind.CONTACT, "", "", summary
    summary = (
        f"{event.direction.value.capitalize()} {_words(event.channel)} contact handled by"
        f" {event.handler_kind.value} {event.handler_id}: {_words(event.outcome)}"
        f" (talk {duration(event.talk_seconds)}, hold {duration(event.hold_seconds)},"
        f" wrap-up {duration(event.after_work_seconds)})"
    )
    channel, direction = event.channel.value, event.direction.value
    return "", event.case_id, EntryKind.CONTACT, channel, direction, summary


_CASE_EVENTS = (
    CaseAssigned,
    CaseTransferred,
    CasePriorityChanged,
    CaseNoteAdded,
    CasePendingOnCustomer,
    CaseResumed,
    CaseResolved,
    CaseReopened,
    CaseClosed,
)
_FEEDBACK_EVENTS = (
    SurveySubmitted,
    ReviewSubmitted,
    VoiceOfCustomerRecorded,
)
_CUSTOMER_EVENTS = (
    CustomerRegistered,
    ContactPointsUpdated,
    TierChanged,
    PurchaseRecorded,
    RenewalRecorded,
    CancellationRecorded,
    CustomerMerged,
    DuplicateAbsorbed,
    CustomerMergeUndone,
    DuplicateReleased,
    CustomerForgotten,
)


def _sla_summary(event: DomainEvent) -> str:
    match event:
        case SlaApplied():
            dues = ", ".join(f"{_words(d.target)} due {_minutes(d.due_at)}" for d in event.dues)
            vip = " (VIP targets)" if event.vip else ""
            return f"SLA policy {event.policy_version} applied{vip}: {dues or 'no open target'}"
        case SlaPaused():
            return "SLA clock paused"
        case SlaResumed():
            dues = ", ".join(f"{_words(d.target)} due {_minutes(d.due_at)}" for d in event.dues)
            return f"SLA clock resumed: {dues or 'no open target'}"
        case SlaAtRisk():
            return f"SLA {_words(event.target)} at risk, due {_minutes(event.due_at)}"
        case SlaBreached():
            return f"SLA {_words(event.target)} breached, was due {_minutes(event.due_at)}"
        case SlaFulfilled():
            return f"SLA {_words(event.target)} {'met' if event.met else 'fulfilled late'}"
    raise InvariantViolated(f"not an SLA event: {type(event).__name__}")


def _compensation_summary(event: DomainEvent) -> str:
    match event:
        case CompensationGranted():
            how = (
                "approved by a supervisor"
                if event.approved_by_supervisor
                else f"within the agent's limit of {event.limit_minor} {event.currency}"
            )
            return (
                f"Compensation {event.compensation_id} granted: {_words(event.kind)}"
                f" {event.amount_minor} {event.currency} (minor units), {how}"
            )
        case CompensationRequested():
            return (
                f"Compensation {event.compensation_id} requested: {_words(event.kind)}"
                f" {event.amount_minor} {event.currency} (minor units), above the agent's limit"
                f" of {event.limit_minor}; awaiting a supervisor"
            )
        case CompensationRejected():
            return f"Compensation {event.compensation_id} rejected by a supervisor"
    raise InvariantViolated(f"not a compensation event: {type(event).__name__}")


def _escalation_summary(event: CaseEscalationChanged) -> str:
    changes = [f"+{_words(r)}" for r in event.added] + [f"-{_words(r)}" for r in event.removed]
    return f"Escalation level {event.from_level} -> {event.to_level} ({', '.join(changes)})"


def _case_summary(event: DomainEvent) -> str:
    match event:
        case CaseAssigned():
            summary = f"Case assigned to agent {event.agent_id} in team {event.team}"
            if event.previous_agent_id:
                summary += f" (was agent {event.previous_agent_id}"
                summary += f" in team {event.previous_team})" if event.previous_team else ")"
            return summary
        case CaseTransferred():
            return f"Case transferred from {event.from_department} to {event.to_department}"
        case CasePriorityChanged():
            return f"Priority changed from {event.from_priority.value} to {event.to_priority.value}"
        case CaseNoteAdded():
            return f"Internal note {event.note_id} added"
        case CasePendingOnCustomer():
            return "Case pending on the customer (SLA clock paused)"
        case CaseResumed():
            return "Case resumed (SLA clock running)"
        case CaseResolved():
            return f"Case resolved with code {event.resolution_code}"
        case CaseReopened():
            return "Case reopened"
        case CaseClosed():
            return "Case closed"
    raise InvariantViolated(f"not a case event: {type(event).__name__}")


def _feedback_summary(event: DomainEvent) -> str:
    match event:
        case SurveySubmitted():
            scores = ", ".join(
                f"{name} {value}/{bounds[1]}"
                for name, value, bounds in (
                    ("CSAT", event.csat, CSAT_RANGE),
                    ("NPS", event.nps, NPS_RANGE),
                    ("CES", event.ces, CES_RANGE),
                )
                if value is not None
            )
            summary = f"{scores or 'Empty'} survey received by {_words(event.channel)}"
            return _with_sentiment(summary, event)
        case ReviewSubmitted():
            # The source is free text typed by a caller; kept out in case it names a person.
            summary = f"Review rated {event.rating}/{RATING_RANGE[1]} received"
            return _with_sentiment(summary, event)
        case VoiceOfCustomerRecorded():
            summary = f"Voice of the customer recorded on {_words(event.channel)}"
            return _with_sentiment(summary, event)
    raise InvariantViolated(f"not a feedback event: {type(event).__name__}")


def _with_sentiment(summary: str, event: FeedbackEvent) -> str:
    """The sentiment label (not personal data; the text it was read from stays out).

    Feedback without an analyzed text (no comment, or recorded before sentiment existed) has none.
    """
    if not event.sentiment_analyzer:
        return summary
    return f"{summary}, {event.sentiment_label.value} sentiment"


def _customer_summary(event: DomainEvent) -> str:
    match event:
        case CustomerRegistered():
            return (
                f"Customer registered: {event.segment.value.upper()}, tier {event.tier.value},"
                f" language {event.language}, {_points(event.contact_points)}"
            )
        case ContactPointsUpdated():
            return f"Contact points updated: {_points(event.contact_points)}"
        case TierChanged():
            return f"Tier changed from {event.from_tier.value} to {event.to_tier.value}"
        case PurchaseRecorded():
            return (
                f"Purchase recorded: order {event.order_id},"
                f" {event.amount_minor} {event.currency} (minor units)"
            )
        case RenewalRecorded():
            return f"Renewal recorded: contract {event.contract_id}"
        case CancellationRecorded():
            return f"Cancellation recorded: contract {event.contract_id}"
        case CustomerMerged():
            return f"Merged into customer {event.into_customer_id}"
        case DuplicateAbsorbed():
            return f"Absorbed duplicate customer {event.duplicate_customer_id}"
        case CustomerMergeUndone():
            return f"Merge into customer {event.from_customer_id} undone"
        case DuplicateReleased():
            return f"Released duplicate customer {event.duplicate_customer_id}"
        case CustomerForgotten():
            profiles = len(event.forgotten_customer_ids)
            noun = "profile" if profiles == 1 else "profiles"
            return f"Customer forgotten: personal data of {profiles} {noun} erased"
    raise InvariantViolated(f"not a customer event: {type(event).__name__}")


def _points(points: tuple[ContactPoint, ...]) -> str:
    """How many contact points on which channels, never the addresses themselves."""
    if not points:
        return "no contact points"
    channels = sorted({_words(point.channel) for point in points})
    noun = "contact point" if len(points) == 1 else "contact points"
    return f"{len(points)} {noun} ({', '.join(channels)})"


def _minutes(instant: datetime) -> str:
    return instant.isoformat(timespec="minutes")


def _words(value: Enum) -> str:
    """An enum value as words: `billing_payment` reads `billing payment`."""
    return str(value.value).replace("_", " ")


def duration(seconds: int) -> str:
    """A compact human duration: 0s, 45s, 5m 20s, 1h 2m 3s."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{secs}s" if secs or not (hours or minutes) else "")
    return " ".join(part for part in parts if part)
