"""The catalogue of every event type the services record, read by the composition root (to build
the codec), the projections and the deadline process; no service imports it."""

from __future__ import annotations

from crm.upcasting import Upcaster
from services.case import events as case_events
from services.case.events import CaseEvent
from services.customer import events as customer_events
from services.customer.events import CustomerEvent
from services.feedback import events as feedback_events
from services.feedback.events import FeedbackEvent

DomainEvent = CaseEvent | CustomerEvent | FeedbackEvent

EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    *customer_events.EVENT_TYPES,
    *case_events.EVENT_TYPES,
    *feedback_events.EVENT_TYPES,
)

UPCASTERS: tuple[Upcaster, ...] = ()
"""How each retired event version reads as the current one (README "Changing an event's schema").
None yet: no event type has had a second version; tests/integration/test_upcasting.py shows one."""
