"""The catalogue of every event type the services record, for codecs and projections."""

from __future__ import annotations

from crm.eventcodec import EventCodec
from services.case import domain as case
from services.customer import domain as customer
from services.feedback import domain as feedback

DomainEvent = case.CaseEvent | customer.CustomerEvent | feedback.FeedbackEvent

CODEC = EventCodec([*customer.EVENT_TYPES, *case.EVENT_TYPES, *feedback.EVENT_TYPES])
