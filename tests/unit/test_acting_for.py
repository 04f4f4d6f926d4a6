"""The caller a bot or system acted through (`via`) is stored, hashed and carried on Kafka."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from crm.envelope import (
    GENESIS_HASH,
    EventMetadata,
    NewEvent,
    RecordedEvent,
    chain_hash,
    verify_chain,
)
from crm.errors import IntegrityError
from crm.vocabulary import Actor, ActorKind
from crm.wire import from_kafka, to_kafka
from services.bootstrap import CODEC
from services.case.events import CaseNoteAdded

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "agent-7")
IVR = Actor(ActorKind.SYSTEM, "ivr")
METADATA = EventMetadata("cust-1", AT, AGENT, "corr-1", "", "req-1", "digest-1", via=IVR)


def _recorded(metadata: EventMetadata) -> tuple[RecordedEvent, CaseNoteAdded]:
    event = CaseNoteAdded(case_id="case-1", note_id="n-1", text="called back")
    type_name, data = CODEC.encode(event)
    new = NewEvent("ev-1", type_name, data, metadata)
    content_hash = chain_hash(GENESIS_HASH, "case-1", 0, new, AT)
    recorded = RecordedEvent(
        "case-1", 0, 1, "ev-1", type_name, data, metadata, AT, GENESIS_HASH, content_hash
    )
    return recorded, event


def test_via_round_trips_through_the_stored_form_and_is_absent_when_unset() -> None:
    stored = METADATA.to_dict()
    assert (stored["via_kind"], stored["via_id"]) == ("system", "ivr")
    assert EventMetadata.from_dict(stored) == METADATA
    assert "via_kind" not in replace(METADATA, via=None).to_dict()


def test_via_is_covered_by_the_hash_chain() -> None:
    recorded, _ = _recorded(METADATA)
    assert verify_chain([recorded]) == 1
    forged = replace(recorded, metadata=replace(METADATA, via=Actor(ActorKind.SYSTEM, "shop")))
    with pytest.raises(IntegrityError, match="altered"):
        verify_chain([forged])


@pytest.mark.parametrize("via", [IVR, None], ids=["acted for", "itself"])
def test_via_travels_on_kafka(via: Actor | None) -> None:
    recorded, event = _recorded(replace(METADATA, via=via))
    received, decoded = from_kafka(to_kafka(recorded, event).value, CODEC)
    assert received.metadata.via == via
    assert received.metadata.actor == AGENT
    assert decoded == event
