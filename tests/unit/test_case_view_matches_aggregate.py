"""The case view re-folds part of what the case aggregate folds: a property proves them equal.

Lists and dashboards read the case view (no personal data); the rules read the aggregate. Both fold
the same stream, so on every field they share they must agree after every event, whatever history
the commands produce: transfers, reopenings, pauses, escalations, SLA facts, compensation and
hand-overs included. The view is fed what production feeds it: the event decoded from its stored
form, in an envelope at the next global position, delivered twice (at least once). And whatever
people wrote (subject, description, notes, reasons) stays out of the view.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from crm.envelope import RecordedEvent
from projections.case_view import CaseView, apply_case_event
from services.bootstrap import CODEC
from services.case.commands import CaseCommand, CloseCase, OpenCase
from services.case.domain import Case, decide, evolve
from services.case.events import CaseEvent
from tests.case_strategies import (
    REFUSALS,
    closings,
    commands_before_closing,
    every_case_command,
    instant,
    valid_openings,
)
from tests.support import recorded

# 20-60 commands make about 20 accepted events a history (up to ~40); 200 histories take ~6 s.
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def shared_by_aggregate(case: Case) -> dict[str, Any]:
    """The aggregate's side of every field the view also carries, named as the view names it."""
    return {
        "case_id": case.case_id,
        "customer_id": case.customer_id,
        "status": case.status,
        "priority": case.priority,
        "category": case.category,
        "channel": case.channel,
        "department": case.department,
        "assignee": case.assignee,
        "team": case.team,
        "contact_count": case.contact_count,
        "inbound_contacts": len(case.inbound_contacts),
        "transfer_count": case.transfer_count,
        "reopen_count": case.reopen_count,
        "opened_at": case.opened_at,
        "first_response_at": case.first_response_at,
        "resolved_at": case.resolved_at,
        "closed_at": case.closed_at,
        "escalation_level": case.escalation_level,
        "escalation_reasons": case.escalation,
        "escalated": case.escalation_level > 0,
        "sla_dues": case.sla.dues,
        "sla_paused": case.sla.paused,
    }


def shared_by_view(view: CaseView) -> dict[str, Any]:
    """The view's side of the same fields."""
    return {
        "case_id": view.case_id,
        "customer_id": view.customer_id,
        "status": view.status,
        "priority": view.priority,
        "category": view.category,
        "channel": view.channel,
        "department": view.department,
        "assignee": view.assignee,
        "team": view.team,
        "contact_count": view.contact_count,
        "inbound_contacts": view.kpis.inbound_contacts,
        "transfer_count": view.transfer_count,
        "reopen_count": view.reopen_count,
        "opened_at": view.opened_at,
        "first_response_at": view.first_response_at,
        "resolved_at": view.resolved_at,
        "closed_at": view.closed_at,
        "escalation_level": view.escalation_level,
        "escalation_reasons": tuple(active.reason for active in view.escalation_reasons),
        "escalated": view.escalated_since is not None,
        "sla_dues": view.sla_dues,
        "sla_paused": view.sla_paused,
    }


FREE_TEXT = ("subject", "description", "text", "note", "reason")


def free_text_of(event: CaseEvent) -> set[str]:
    """What people wrote in an event: personal data the view must never carry."""
    return {value for name in FREE_TEXT if (value := getattr(event, name, "")).strip()}


def strings_in(value: object) -> set[str]:
    """Every string the view holds, however deeply nested."""
    if isinstance(value, str):
        return {value}
    if is_dataclass(value) and not isinstance(value, type):
        return set().union(*(strings_in(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, tuple):
        return set().union(*(strings_in(item) for item in value))
    return set()


def delivered(view: CaseView | None, envelope: RecordedEvent) -> CaseView:
    """Apply the stored event as the projection runner does: decoded from its stored form."""
    event = cast(CaseEvent, CODEC.decode(envelope.type, envelope.data))
    return apply_case_event(view, event, envelope)


@PROPERTY_SETTINGS
@given(
    valid_openings,
    st.lists(commands_before_closing, min_size=20, max_size=60),
    st.one_of(st.none(), closings),
    st.lists(every_case_command, max_size=5),
)
def test_the_case_view_agrees_with_the_aggregate_on_every_shared_field(
    opening: OpenCase,
    commands: list[CaseCommand],
    closing: CloseCase | None,
    afterwards: list[CaseCommand],
) -> None:
    # Closing refuses all but notes, so a history closed half of the time, at its end, loses
    # nothing to a closing drawn at random in the middle.
    state: Case | None = None
    view: CaseView | None = None
    history: list[CaseEvent] = []  # what was accepted: the readable part of a failing example
    written: set[str] = set()
    position = 0
    for command in [opening, *commands, *([closing] if closing else []), *afterwards]:
        try:
            decided = decide(command, state)
        except REFUSALS:
            continue  # refused: nothing recorded, nothing to project
        for event in decided:
            at = instant(position)
            position += 1
            state = evolve(state, event, at)
            history.append(event)
            written |= free_text_of(event)
            envelope = recorded(event, position, "cust-1", at=at)
            view = delivered(view, envelope)
            assert delivered(view, envelope) == view, "a redelivered event changes nothing"
            assert shared_by_view(view) == shared_by_aggregate(state), history
            assert view.last_position == position
            assert view.last_event_at == at
            assert not strings_in(view) & written, "the view carries no personal data"
