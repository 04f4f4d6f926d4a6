"""The pure projections: timeline entries (kinds, channels, summaries free of personal data).

Also the case view fold, merge lineage, and the read store port's pure parts (queries, page tokens,
batch fold).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput, InvariantViolated
from crm.instants import sortable_instant
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from projections.case_view import CaseView, apply_case_event, case_view_changes, escalated_since
from projections.catalogue import news
from projections.lineage import (
    MergeLink,
    merge_chain,
    merge_link,
    merged_into,
    newer_link,
    survivor_of,
    timeline_members,
)
from projections.store.queries import (
    PageCursor,
    TimelineQuery,
    decode_page_token,
    encode_page_token,
)
from projections.timeline import EntryKind, duration, timeline_changes, timeline_entry
from services.bootstrap import CODEC
from services.case.compensation import (
    CompensationGranted,
    CompensationKind,
    CompensationRejected,
    CompensationRequested,
)
from services.case.escalation import CaseEscalationChanged, EscalationReason
from services.case.events import (
    CaseAssigned,
    CaseClosed,
    CaseEvent,
    CaseNoteAdded,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseStatus,
    CaseTransferred,
    Category,
    ContactHandedOver,
    ContactOutcome,
)
from services.case.sla_facts import (
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaFulfilled,
    SlaPaused,
    SlaResumed,
    SlaTarget,
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
    Segment,
    Tier,
    TierChanged,
)
from services.events import DomainEvent
from services.feedback.events import (
    ReviewSubmitted,
    SentimentLabel,
    SurveySubmitted,
    VoiceOfCustomerRecorded,
)
from tests.support import T0, contact, opened, recorded

CUSTOMER = "c-1"
CASE = "case-1"

# Every personal value below must stay out of every summary: it is encrypted per customer later.
NAME = "Hanako Yamada"
EMAIL = "hanako@example.com"
PHONE = "+81 90 1234 5678"
HANDLE = "@hanako_y"
COMPANY = "Yamada Trading KK"
SUBJECT = "My card was charged twice"
DESCRIPTION = "The May invoice was debited twice from my card ending 4242."
PRODUCT = "Premium Plan Gold"
NOTE = "Customer sounded upset, call back after 6pm"
COMMENT = "The agent was rude and I waited forever"
REVIEW = "Terrible hold music, lovely staff"
REVIEW_SOURCE = "Trustpilot"
VOICE = "Please add a dark mode to the app"
REASONS = {
    "tier": "Spends a fortune at the Ginza store",
    "cancel": "Moving abroad to live with her sister",
    "merge": "Same person signed up twice with Yahoo",
    "unmerge": "Twins sharing a laptop",
    "transfer": "Needs a card dispute specialist",
    "priority": "Threatened to call the newspaper",
    "pending": "Waiting for the bank statement scan",
    "resume": "Statement arrived by post",
    "resolve": "Refunded 12900 yen to the Visa card",
    "reopen": "The refund never arrived",
    "close": "Customer asked us to stop writing",
    "compensate": "Her daughter's birthday present arrived broken",
}
PERSONAL = [
    NAME,
    EMAIL,
    PHONE,
    HANDLE,
    COMPANY,
    SUBJECT,
    DESCRIPTION,
    PRODUCT,
    NOTE,
    COMMENT,
    REVIEW,
    REVIEW_SOURCE,
    VOICE,
    *REASONS.values(),
]

NEGATIVE = SentimentLabel.NEGATIVE
NEUTRAL = SentimentLabel.NEUTRAL
POSITIVE = SentimentLabel.POSITIVE
VADER = "vader-3.3.2"
OPENED = replace(opened(CASE, CUSTOMER), subject=SUBJECT, description=DESCRIPTION)
CONTACT = contact(CASE, "ct-1")


@dataclass(frozen=True)
class Row:
    """What the timeline entry of one event must say."""

    event: DomainEvent
    kind: EntryKind
    summary: str
    channel: str = ""
    direction: str = ""
    case_id: str = ""
    customer_id: str = CUSTOMER


K = EntryKind
REGISTERED = CustomerRegistered(
    CUSTOMER,
    NAME,
    (ContactPoint(Channel.EMAIL, EMAIL), ContactPoint(Channel.PHONE, PHONE)),
    "ja",
    Segment.B2B,
    COMPANY,
    Tier.VIP,
)
ROWS = [
    Row(
        REGISTERED,
        K.CUSTOMER,
        "Customer registered: B2B, tier vip, language ja, 2 contact points (email, phone)",
    ),
    Row(
        ContactPointsUpdated(CUSTOMER, (ContactPoint(Channel.SOCIAL, HANDLE),)),
        K.CUSTOMER,
        "Contact points updated: 1 contact point (social)",
    ),
    Row(
        TierChanged(CUSTOMER, Tier.STANDARD, Tier.VIP, REASONS["tier"]),
        K.CUSTOMER,
        "Tier changed from standard to vip",
    ),
    Row(
        PurchaseRecorded(CUSTOMER, "o-1", PRODUCT, 12900, "JPY"),
        K.CUSTOMER,
        "Purchase recorded: order o-1, 12900 JPY (minor units)",
    ),
    Row(
        RenewalRecorded(CUSTOMER, "k-1", PRODUCT),
        K.CUSTOMER,
        "Renewal recorded: contract k-1",
    ),
    Row(
        CancellationRecorded(CUSTOMER, "k-1", REASONS["cancel"]),
        K.CUSTOMER,
        "Cancellation recorded: contract k-1",
    ),
    Row(
        CustomerMerged("c-9", "c-2", "m-1", REASONS["merge"]),
        K.CUSTOMER,
        "Merged into customer c-2",
        customer_id="c-9",
    ),
    Row(
        DuplicateAbsorbed("c-2", "c-9", "m-1", REASONS["merge"]),
        K.CUSTOMER,
        "Absorbed duplicate customer c-9",
        customer_id="c-2",
    ),
    Row(
        CustomerMergeUndone("c-9", "c-2", "m-1", REASONS["unmerge"]),
        K.CUSTOMER,
        "Merge into customer c-2 undone",
        customer_id="c-9",
    ),
    Row(
        DuplicateReleased("c-2", "c-9", "m-1", REASONS["unmerge"]),
        K.CUSTOMER,
        "Released duplicate customer c-9",
        customer_id="c-2",
    ),
    Row(
        CustomerForgotten("c-2", "ticket GDPR-17", ("c-2", "c-9")),
        K.CUSTOMER,
        "Customer forgotten: personal data of 2 profiles erased",
        customer_id="c-2",
    ),
    Row(
        OPENED,
        K.CASE,
        "Case opened on phone: billing payment, priority high",
        "phone",
        case_id=CASE,
    ),
    Row(
        CONTACT,
        K.CONTACT,
        "Inbound phone contact handled by agent a-17: answered (talk 5m 20s, hold 0s, wrap-up 30s)",
        "phone",
        "inbound",
        CASE,
    ),
    Row(
        ContactHandedOver(CASE, "ct-2", "bot-1", "a-17", "tier1"),
        K.CONTACT,
        "Contact ct-2 handed over from bot bot-1 to a human (agent a-17, team tier1)",
        case_id=CASE,
    ),
    Row(
        CaseAssigned(CASE, "a-17", "billing-1", "a-3", "billing-2"),
        K.CASE,
        "Case assigned to agent a-17 in team billing-1 (was agent a-3 in team billing-2)",
        case_id=CASE,
    ),
    Row(
        CaseTransferred(CASE, "billing", "technical", REASONS["transfer"]),
        K.CASE,
        "Case transferred from billing to technical",
        case_id=CASE,
    ),
    Row(
        CasePriorityChanged(CASE, Priority.HIGH, Priority.URGENT, REASONS["priority"]),
        K.CASE,
        "Priority changed from high to urgent",
        case_id=CASE,
    ),
    Row(CaseNoteAdded(CASE, "n-1", NOTE), K.CASE, "Internal note n-1 added", case_id=CASE),
    Row(
        CasePendingOnCustomer(CASE, REASONS["pending"]),
        K.CASE,
        "Case pending on the customer (SLA clock paused)",
        case_id=CASE,
    ),
    Row(
        CaseResumed(CASE, REASONS["resume"]),
        K.CASE,
        "Case resumed (SLA clock running)",
        case_id=CASE,
    ),
    Row(
        CaseResolved(CASE, "refund-issued", REASONS["resolve"]),
        K.CASE,
        "Case resolved with code refund-issued",
        case_id=CASE,
    ),
    Row(CaseReopened(CASE, REASONS["reopen"]), K.CASE, "Case reopened", case_id=CASE),
    Row(CaseClosed(CASE, REASONS["close"]), K.CASE, "Case closed", case_id=CASE),
    Row(
        SurveySubmitted(
            "f-1", CUSTOMER, CASE, Channel.EMAIL, 2, None, None, COMMENT, NEGATIVE, -0.5, VADER
        ),
        K.FEEDBACK,
        "CSAT 2/5 survey received by email, negative sentiment",
        "email",
        case_id=CASE,
    ),
    Row(
        ReviewSubmitted("f-2", CUSTOMER, "", 2, REVIEW, REVIEW_SOURCE, NEUTRAL, 0.0, VADER),
        K.FEEDBACK,
        "Review rated 2/5 received, neutral sentiment",
    ),
    Row(
        VoiceOfCustomerRecorded("f-3", CUSTOMER, "", Channel.SOCIAL, VOICE, POSITIVE, 0.318, VADER),
        K.FEEDBACK,
        "Voice of the customer recorded on social, positive sentiment",
        "social",
    ),
    Row(
        SlaApplied(
            CASE,
            "default-1",
            True,
            (SlaDue(SlaTarget.FIRST_RESPONSE, T0, T0 + timedelta(minutes=15)),),
            "opened",
        ),
        K.SLA,
        "SLA policy default-1 applied (VIP targets): first response due 2026-03-02T09:15+00:00",
        case_id=CASE,
    ),
    Row(SlaPaused(CASE), K.SLA, "SLA clock paused", case_id=CASE),
    Row(SlaResumed(CASE, ()), K.SLA, "SLA clock resumed: no open target", case_id=CASE),
    Row(
        SlaAtRisk(CASE, SlaTarget.RESOLUTION, T0),
        K.SLA,
        "SLA resolution at risk, due 2026-03-02T09:00+00:00",
        case_id=CASE,
    ),
    Row(
        SlaBreached(CASE, SlaTarget.FIRST_RESPONSE, T0),
        K.SLA,
        "SLA first response breached, was due 2026-03-02T09:00+00:00",
        case_id=CASE,
    ),
    Row(
        SlaFulfilled(CASE, SlaTarget.RESOLUTION, False),
        K.SLA,
        "SLA resolution fulfilled late",
        case_id=CASE,
    ),
    Row(
        CaseEscalationChanged(
            CASE,
            1,
            2,
            (EscalationReason.REOPENED,),
            (EscalationReason.SLA_AT_RISK,),
            (EscalationReason.BOUNCED, EscalationReason.REOPENED),
            "the customer asked for a manager",
        ),
        K.ESCALATION,
        "Escalation level 1 -> 2 (+reopened, -sla at risk)",
        case_id=CASE,
    ),
    Row(
        CompensationGranted(
            CASE, "k1", CompensationKind.REFUND, 3000, "JPY", 5000, False, REASONS["compensate"]
        ),
        K.CASE,
        "Compensation k1 granted: refund 3000 JPY (minor units),"
        " within the agent's limit of 5000 JPY",
        case_id=CASE,
    ),
    Row(
        CompensationRequested(
            CASE, "k2", CompensationKind.UPGRADE, 9000, "JPY", 5000, REASONS["compensate"]
        ),
        K.CASE,
        "Compensation k2 requested: upgrade 9000 JPY (minor units), above the agent's limit"
        " of 5000; awaiting a supervisor",
        case_id=CASE,
    ),
    Row(
        CompensationRejected(CASE, "k2", REASONS["compensate"]),
        K.CASE,
        "Compensation k2 rejected by a supervisor",
        case_id=CASE,
    ),
]


def entry_of(event: DomainEvent, position: int = 1) -> str:
    return timeline_entry(recorded(event, position, CUSTOMER), event).summary


# ---------------------------------------------------------------- timeline entries


def test_the_table_covers_every_registered_event_type() -> None:
    assert sorted({type(row.event).TYPE for row in ROWS}) == CODEC.type_names


@pytest.mark.parametrize("row", ROWS, ids=lambda row: type(row.event).__name__)
def test_timeline_entry_of_each_event_type(row: Row) -> None:
    event, kind, summary = row.event, row.kind, row.summary
    channel, direction, case_id, customer_id = (
        row.channel,
        row.direction,
        row.case_id,
        row.customer_id,
    )
    actor = Actor(ActorKind.SUPERVISOR, "s-4")
    at = datetime(2026, 3, 2, 18, 30, tzinfo=timezone(timedelta(hours=9)))
    # Case events name no customer themselves; their envelope does.
    rec = recorded(event, 42, customer_id, at=at, actor=actor)

    entry = timeline_entry(rec, event)

    assert entry.kind is kind
    assert (entry.channel, entry.direction) == (channel, direction)
    assert (entry.case_id, entry.customer_id) == (case_id, customer_id)
    assert entry.summary == summary
    assert (entry.event_id, entry.global_position) == (rec.event_id, 42)
    assert entry.event_type == type(event).TYPE
    assert entry.actor == "supervisor:s-4"
    assert entry.occurred_at == at


def test_no_summary_contains_personal_data() -> None:
    summaries = [entry_of(row.event) for row in ROWS]
    for summary in summaries:
        for value in PERSONAL:
            assert value not in summary, f"{value!r} leaked into {summary!r}"


@pytest.mark.parametrize(
    ("event", "summary"),
    [
        (
            replace(
                CONTACT,
                channel=Channel.EMAIL,
                direction=Direction.OUTBOUND,
                handler_kind=ActorKind.SUPERVISOR,
                handler_id="s-4",
                talk_seconds=3723,
                hold_seconds=60,
                after_work_seconds=0,
            ),
            "Outbound email contact handled by supervisor s-4: answered"
            " (talk 1h 2m 3s, hold 1m, wrap-up 0s)",
        ),
        (
            replace(
                CONTACT,
                channel=Channel.CHATBOT,
                handler_kind=ActorKind.BOT,
                handler_id="bot-1",
                outcome=ContactOutcome.HANDED_TO_HUMAN,
                talk_seconds=0,
                after_work_seconds=0,
            ),
            "Inbound chatbot contact handled by bot bot-1: handed to human"
            " (talk 0s, hold 0s, wrap-up 0s)",
        ),
        (
            ContactHandedOver(CASE, "ct-2", "bot-1", "", ""),
            "Contact ct-2 handed over from bot bot-1 to a human",
        ),
        (
            CaseAssigned(CASE, "a-17", "billing-1", "", ""),
            "Case assigned to agent a-17 in team billing-1",
        ),
        (
            SurveySubmitted("f-1", CUSTOMER, "", Channel.WEB_FORM, 5, 9, 2, ""),
            "CSAT 5/5, NPS 9/10, CES 2/7 survey received by web form",  # no comment: no sentiment
        ),
        (
            VoiceOfCustomerRecorded("f-3", CUSTOMER, "", Channel.SOCIAL, VOICE),
            "Voice of the customer recorded on social",  # recorded before sentiment existed
        ),
        (
            ContactPointsUpdated(CUSTOMER, ()),
            "Contact points updated: no contact points",
        ),
        (
            CompensationGranted(CASE, "k3", CompensationKind.DISCOUNT, 9000, "JPY", 5000, True, ""),
            "Compensation k3 granted: discount 9000 JPY (minor units), approved by a supervisor",
        ),
    ],
)
def test_summary_variants(event: DomainEvent, summary: str) -> None:
    assert entry_of(event) == summary


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (320, "5m 20s"), (3600, "1h"), (3723, "1h 2m 3s")],
)
def test_duration(seconds: int, text: str) -> None:
    assert duration(seconds) == text


# ---------------------------------------------------------------- case view


def fold(*events: CaseEvent, start: int = 1) -> CaseView:
    view: CaseView | None = None
    for offset, event in enumerate(events):
        at = T0 + timedelta(minutes=offset)
        view = apply_case_event(view, event, recorded(event, start + offset, CUSTOMER, at=at))
    assert view is not None
    return view


def test_case_view_after_opening() -> None:
    view = fold(OPENED)

    assert view == CaseView(
        case_id=CASE,
        customer_id=CUSTOMER,
        status=CaseStatus.OPEN,
        priority=Priority.HIGH,
        category=Category.BILLING_PAYMENT,
        channel=Channel.PHONE,
        assignee="",
        team="",
        department="billing",
        contact_count=0,
        transfer_count=0,
        reopen_count=0,
        opened_at=T0,
        first_response_at=None,
        resolved_at=None,
        closed_at=None,
        last_event_at=T0,
        last_position=1,
    )


def test_first_response_is_the_first_human_answer_not_a_bot() -> None:
    bot = Actor(ActorKind.BOT, "bot-1")
    answered_at = T0 + timedelta(minutes=42)
    view = fold(
        OPENED,
        contact(CASE, "ct-1", Channel.CHATBOT, handler=bot, started_at=T0),
        contact(CASE, "ct-2", outcome=ContactOutcome.ABANDONED, started_at=T0),
        contact(CASE, "ct-3", started_at=answered_at),
        contact(CASE, "ct-4", started_at=answered_at + timedelta(hours=1)),
    )

    assert view.contact_count == 4
    assert view.first_response_at == answered_at


def test_outbound_contact_by_an_agent_is_a_response() -> None:
    view = fold(OPENED, contact(CASE, "ct-1", direction=Direction.OUTBOUND, started_at=T0))

    assert view.first_response_at == T0


def test_case_view_follows_the_whole_life_of_a_case() -> None:
    view = fold(
        OPENED,
        CaseAssigned(CASE, "a-17", "billing-1", "", ""),
        CaseTransferred(CASE, "billing", "technical", "x"),
        ContactHandedOver(CASE, "ct-1", "bot-1", "a-20", "tech-1"),
        CaseTransferred(CASE, "technical", "development", "x"),
        CasePriorityChanged(CASE, Priority.HIGH, Priority.URGENT, ""),
        CaseNoteAdded(CASE, "n-1", NOTE),
        CasePendingOnCustomer(CASE, "x"),
    )
    assert (view.status, view.priority) == (CaseStatus.PENDING_CUSTOMER, Priority.URGENT)
    assert (view.department, view.assignee, view.team) == ("development", "", "tech-1")
    assert view.transfer_count == 2
    assert (view.last_position, view.last_event_at) == (8, T0 + timedelta(minutes=7))

    view = _continue(
        view,
        CaseResumed(CASE, ""),
        CaseResolved(CASE, "fixed", ""),
        CaseReopened(CASE, "x"),
    )
    assert (view.status, view.resolved_at, view.reopen_count) == (CaseStatus.OPEN, None, 1)

    view = _continue(view, CaseResolved(CASE, "fixed", ""), CaseClosed(CASE, ""))
    assert view.status is CaseStatus.CLOSED
    assert view.resolved_at is not None
    assert view.closed_at == view.last_event_at


def _continue(view: CaseView, *events: CaseEvent) -> CaseView:
    for event in events:
        position = view.last_position + 1
        at = view.last_event_at + timedelta(minutes=1)
        view = apply_case_event(view, event, recorded(event, position, CUSTOMER, at=at))
    return view


def test_redelivered_case_events_change_nothing() -> None:
    view = fold(OPENED, CONTACT)

    again_open = apply_case_event(view, OPENED, recorded(OPENED, 1, CUSTOMER))
    again_contact = apply_case_event(view, CONTACT, recorded(CONTACT, 2, CUSTOMER))

    assert again_open == view
    assert again_contact == view


def test_a_case_event_before_the_opening_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="of case case-1 precedes its CaseOpened"):
        apply_case_event(None, CONTACT, recorded(CONTACT, 1, CUSTOMER))


# ---------------------------------------------------------------- lineage


def link(duplicate: str, survivor: str, active: bool = True, position: int = 1) -> MergeLink:
    return MergeLink(duplicate, survivor, "m-1", active, position)


def test_merge_links_come_from_the_duplicate_side_only() -> None:
    merged = CustomerMerged("c-9", "c-2", "m-1", "")
    undone = CustomerMergeUndone("c-9", "c-2", "m-1", "")

    assert merge_link(recorded(merged, 5), merged) == link("c-9", "c-2", True, 5)
    assert merge_link(recorded(undone, 7), undone) == link("c-9", "c-2", False, 7)
    absorbed = DuplicateAbsorbed("c-2", "c-9", "m-1", "")
    assert merge_link(recorded(absorbed, 6), absorbed) is None


def test_newer_link_keeps_the_later_fact() -> None:
    merged, undone = link("c-9", "c-2", True, 5), link("c-9", "c-2", False, 7)

    assert newer_link(None, merged) == merged
    assert newer_link(merged, undone) == undone
    assert newer_link(undone, merged) == undone


def test_timeline_members_follow_active_chains() -> None:
    links = {
        "a": link("a", "b"),
        "b": link("b", "c"),
        "x": link("x", "c", active=False),
        "y": link("y", "a"),
    }

    assert timeline_members("c", merged_into(links.values())) == {"a", "b", "c", "y"}
    assert timeline_members("b", merged_into(links.values())) == {"a", "b", "y"}
    assert timeline_members("x", merged_into(links.values())) == {"x"}


def test_timeline_members_survive_a_cycle() -> None:
    links = {"a": link("a", "b"), "b": link("b", "a")}

    assert timeline_members("a", merged_into(links.values())) == {"a", "b"}
    assert survivor_of("a", merged_into(links.values())) == "b"


def test_the_survivor_is_the_end_of_the_active_chain() -> None:
    merged = merged_into([link("a", "b"), link("b", "c"), link("c", "d", active=False)])

    assert merge_chain("a", merged) == ["a", "b", "c"]
    assert survivor_of("a", merged) == "c"
    assert survivor_of("c", merged) == "c"
    assert survivor_of("unknown", merged) == "unknown"


# ---------------------------------------------------------------- view store queries, pure parts


def test_page_tokens_round_trip() -> None:
    cursor = PageCursor("2026-05-04T09:00:00.000000", 1234)
    assert decode_page_token(encode_page_token(cursor)) == cursor
    assert decode_page_token("") is None


def test_v1_page_tokens_are_refused() -> None:
    """v1 tokens held a position in global order; the timeline is now in occurred order."""
    with pytest.raises(InvalidInput) as raised:
        TimelineQuery(CUSTOMER, page_token="djE6NQ==")  # v1:5
    assert raised.value.field == "page_token"


@pytest.mark.parametrize(
    "token",
    [
        "nope",
        "djI6NQ==",
        "djE6LTU=",
        "djE6eA==",
        "!!!!",
        "é",
        "djI6MjAyNi0wNS0wNHw1",  # v2:2026-05-04|5, not the canonical instant
        "djI6MjAyNi0wNS0wNFQwOTowMDowMC4wMDAwMDB8MA==",  # v2:...|0
    ],
)
def test_malformed_page_tokens_are_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        TimelineQuery(CUSTOMER, page_token=token)
    assert raised.value.field == "page_token"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"customer_id": ""}, "customer_id"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 501}, "page_size"),
        ({"channels": frozenset({"fax"})}, "channels"),
        ({"kinds": frozenset({"gossip"})}, "kinds"),
        ({"since": T0, "until": T0}, "until"),
    ],
)
def test_timeline_query_validation(changes: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"customer_id": CUSTOMER, **changes}
    with pytest.raises(InvalidInput) as raised:
        TimelineQuery(**arguments)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_sortable_instants_order_like_the_instants_whatever_the_offset() -> None:
    tokyo = timezone(timedelta(hours=9))
    earlier = datetime(2026, 3, 2, 17, 0, tzinfo=tokyo)  # 08:00 UTC
    later = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    assert sortable_instant(earlier) < sortable_instant(later)
    assert sortable_instant(later.replace(tzinfo=None)) == sortable_instant(later)


def test_a_projection_applies_only_the_news_after_its_checkpoint() -> None:
    merged = CustomerMerged("c-9", "c-2", "m-1", "")
    batch: list[tuple[RecordedEvent, DomainEvent]] = [
        (recorded(merged, 5), merged),
        (recorded(OPENED, 3, CUSTOMER), OPENED),
        (recorded(CONTACT, 4, CUSTOMER), CONTACT),
    ]

    fresh = news(batch, 3)
    timeline = timeline_changes(fresh)
    views = case_view_changes(fresh, lambda case_id: fold(OPENED, start=3))

    assert [entry.global_position for entry in timeline.entries] == [4, 5]
    assert views[CASE].contact_count == 1
    assert timeline.merge_links == {"c-9": link("c-9", "c-2", True, 5)}


def test_an_escalation_keeps_its_start_while_it_rises_and_ends_at_level_zero() -> None:
    """`escalated_since` is when the current escalation began: a rise from watch (1) to
    escalated (2) or critical (3) keeps it; a fall to 0 ends it; a new one starts afresh."""
    t1, t2, t3, t4 = (datetime(2026, 3, 1, h, tzinfo=UTC) for h in (9, 10, 11, 12))

    def change(from_level: int, to_level: int) -> CaseEscalationChanged:
        return CaseEscalationChanged("k-1", from_level, to_level, (), (), (), "")

    assert escalated_since(None, change(0, 1), t1) == t1
    assert escalated_since(t1, change(1, 2), t2) == t1
    assert escalated_since(t1, change(2, 3), t3) == t1
    assert escalated_since(t1, change(3, 0), t3) is None
    assert escalated_since(None, change(0, 2), t4) == t4


def test_a_case_is_settled_at_its_resolution_or_else_at_its_close() -> None:
    resolved_then_closed = _continue(
        fold(OPENED, CONTACT), CaseResolved(CASE, "fixed", ""), CaseClosed(CASE, "")
    )
    assert resolved_then_closed.settled_position == 3  # the resolution, not the close (4)
    closed_unresolved = _continue(fold(OPENED, CONTACT), CaseClosed(CASE, "spam"))
    assert closed_unresolved.settled_position == 3  # the close itself


def test_each_escalation_reason_keeps_the_instant_it_began_while_it_holds() -> None:
    at_risk, breached = EscalationReason.SLA_AT_RISK, EscalationReason.SLA_BREACHED
    view = _continue(
        fold(OPENED),
        CaseEscalationChanged(CASE, 0, 1, (at_risk,), (), (at_risk,), ""),
        CaseEscalationChanged(CASE, 1, 2, (breached,), (), (at_risk, breached), ""),
    )
    since = {active.reason: active.since for active in view.escalation_reasons}
    assert since[at_risk] == T0 + timedelta(minutes=1)  # kept from the first change
    assert since[breached] == T0 + timedelta(minutes=2)


def test_a_fulfilled_target_leaves_the_other_due() -> None:
    first = SlaDue(SlaTarget.FIRST_RESPONSE, T0 + timedelta(hours=3), T0 + timedelta(hours=4))
    resolution = SlaDue(SlaTarget.RESOLUTION, T0 + timedelta(hours=19), T0 + timedelta(hours=24))
    view = _continue(
        fold(OPENED),
        SlaApplied(CASE, "default-1", False, (first, resolution), "opened"),
        SlaFulfilled(CASE, SlaTarget.FIRST_RESPONSE, True),
    )
    assert view.sla_dues == (resolution,)
    assert view.next_due_at == resolution.due_at


def test_an_event_the_case_view_does_not_know_is_refused_by_name() -> None:
    view = fold(OPENED)
    stranger = CaseNoteAdded(CASE, "n-1", "x")
    unknown: Any = SimpleNamespace(case_id=CASE, TYPE="crm.case.Unknown.v1")
    with pytest.raises(InvariantViolated, match="unknown case event"):
        apply_case_event(view, unknown, recorded(stranger, 2, CUSTOMER, at=T0))
