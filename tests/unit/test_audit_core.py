"""The audit's pure parts: who belongs to a history and until when, page tokens bound to their
query, verification naming each stream's first break, and the export line's hashed content."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm.envelope import EventMetadata, RecordedEvent, canonical_json
from crm.errors import InvalidInput
from crm.vocabulary import ActorKind
from services.audit.export import export_line
from services.audit.history import Subject
from services.audit.lineage import membership_end, narrower, within
from services.audit.query import HistoryQuery, page_of
from services.audit.verify import verify_streams
from services.customer.events import CustomerMerged, CustomerMergeUndone, Tier, TierChanged
from tests.unit.test_envelope import new_event, seal

SURVIVOR = Subject("customer", "cust-a")


def _at(position: int, stream: str = "customer-d") -> RecordedEvent:
    (recorded,) = seal([new_event(position)], stream)
    return replace(recorded, global_position=position)


def _merged(position: int, into: str = "cust-a") -> tuple[RecordedEvent, CustomerMerged]:
    return _at(position), CustomerMerged("cust-d", into, f"m-{position}", "same person")


def _undone(position: int, into: str = "cust-a") -> tuple[RecordedEvent, CustomerMergeUndone]:
    return _at(position), CustomerMergeUndone("cust-d", into, f"m-{position}", "not the same")


def test_a_profile_never_merged_into_the_customer_is_not_a_member() -> None:
    tier = TierChanged("cust-d", Tier.STANDARD, Tier.VIP, "loyal")
    assert membership_end([(_at(1), tier), _merged(2, into="cust-b")], "cust-a") == (False, None)


def test_a_profile_still_merged_belongs_without_end() -> None:
    assert membership_end([_merged(3)], "cust-a") == (True, None)


def test_a_released_profile_belongs_up_to_its_undo_and_a_remerge_reopens_it() -> None:
    assert membership_end([_merged(3), _undone(8)], "cust-a") == (True, 8)
    assert membership_end([_merged(3), _undone(8), _merged(12)], "cust-a") == (True, None)
    assert membership_end([_merged(3), _undone(8), _merged(12), _undone(20)], "cust-a") == (
        True,
        20,
    )


def test_a_share_within_a_share_ends_at_the_earlier_end() -> None:
    assert narrower(None, 5) == 5 and narrower(7, None) == 7 and narrower(7, 5) == 5
    assert narrower(None, None) is None
    assert within(5, 5) and not within(6, 5) and within(10**9, None)


def _events(count: int) -> list[RecordedEvent]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        replace(
            _at(n, "case-1"),
            recorded_at=start + timedelta(minutes=n),
            metadata=replace(
                _at(n).metadata,
                actor=replace(_at(n).metadata.actor, id=f"agent-{n % 2}"),
            ),
        )
        for n in range(1, count + 1)
    ]


def test_pages_follow_one_another_and_a_token_resumes_where_its_page_ended() -> None:
    events = _events(7)
    query = HistoryQuery(SURVIVOR, page_size=3)
    first = page_of(query, events)
    second = page_of(replace(query, page_token=first.next_page_token), events)
    third = page_of(replace(query, page_token=second.next_page_token), events)
    assert [e.global_position for e in first.events + second.events + third.events] == [
        *range(1, 8)
    ]
    assert third.next_page_token == ""
    # The page size is not part of the query: a token resumes under another size too.
    assert page_of(HistoryQuery(SURVIVOR, page_size=10, page_token=first.next_page_token), events)


@pytest.mark.parametrize(
    "other",
    [
        HistoryQuery(Subject("customer", "cust-b")),
        HistoryQuery(Subject("case", "cust-a")),
        HistoryQuery(SURVIVOR, actor_ids=frozenset({"agent-1"})),
        HistoryQuery(SURVIVOR, by_occurred=True),
        HistoryQuery(SURVIVOR, since=datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_a_token_of_another_query_is_refused(other: HistoryQuery) -> None:
    token = page_of(HistoryQuery(SURVIVOR, page_size=1), _events(3)).next_page_token
    with pytest.raises(InvalidInput, match="page_token: belongs to another query"):
        replace(other, page_token=token)


@pytest.mark.parametrize("token", ["x", "e30=", base64.urlsafe_b64encode(b'{"v":9}').decode()])
def test_a_token_the_api_did_not_issue_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput, match="page_token"):
        HistoryQuery(SURVIVOR, page_token=token)


def test_filters_match_actor_kind_type_and_recorded_time() -> None:
    events = _events(6)
    since = events[2].recorded_at
    query = HistoryQuery(
        SURVIVOR,
        since=since,
        actor_ids=frozenset({"agent-1"}),
        actor_kinds=frozenset({ActorKind.AGENT}),
        event_types=frozenset({events[0].type}),
        known_types=frozenset({events[0].type}),
    )
    assert [e.global_position for e in page_of(query, events).events] == [3, 5]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (lambda: HistoryQuery(SURVIVOR, page_size=0), "page_size"),
        (lambda: HistoryQuery(SURVIVOR, page_size=501), "page_size"),
        (lambda: HistoryQuery(SURVIVOR, event_types=frozenset({"crm.X.v1"})), "event_types"),
        (
            lambda: HistoryQuery(
                SURVIVOR,
                since=datetime(2026, 3, 2, tzinfo=UTC),
                until=datetime(2026, 3, 1, tzinfo=UTC),
            ),
            "until",
        ),
        (lambda: Subject("customer", ""), "subject.customer_id"),
        (lambda: Subject("", ""), "subject"),
    ],
)
def test_a_bad_query_is_refused_naming_its_field(query: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        query()
    assert raised.value.field == field


def test_verification_names_each_broken_stream_s_first_break_earliest_first() -> None:
    good = seal([new_event(n) for n in range(3)], "case-good")
    bad = [
        replace(e, global_position=e.global_position + 10)
        for e in seal([new_event(n) for n in range(4)], "case-bad")
    ]
    bad[2] = replace(bad[2], data=b'{"note": "rewritten"}')
    moved = seal([new_event(n) for n in range(2)], "case-moved")
    moved[1] = replace(moved[1], global_position=0)
    streams = {"case-good": good, "case-bad": bad, "case-moved": moved}
    found = verify_streams(dict.fromkeys(streams), lambda s: streams[s])
    assert not found.ok
    assert [(b.stream, b.revision, b.global_position) for b in found.breaks] == [
        ("case-moved", 1, 0),
        ("case-bad", 2, 13),
    ]
    assert "altered" in found.breaks[1].problem and "global position" in found.breaks[0].problem
    heads = {h.stream: h for h in found.heads}
    assert heads["case-good"].head_hash == good[-1].content_hash
    assert heads["case-bad"].head_hash == ""


def test_a_share_that_ends_early_is_verified_up_to_its_end() -> None:
    events = seal([new_event(n) for n in range(4)], "customer-d")
    events[3] = replace(events[3], data=b"{}")  # after the share's end: not checked
    found = verify_streams({"customer-d": 3}, lambda _s: events)
    assert found.ok and found.events_checked == 3


def test_an_export_line_holds_exactly_what_its_hash_covers() -> None:
    (event,) = seal([new_event(1, '顧客 "quoted"\n'.encode())])
    line = export_line(event, "Internal note added")
    parsed = json.loads(line)
    assert line == canonical_json(parsed).decode() and "\n" not in line
    data = base64.b64decode(parsed["data_base64"])
    assert data == event.data
    content = {
        key: parsed[key]
        for key in ("previous_hash", "stream", "revision", "event_id", "type", "recorded_at")
    }
    content["metadata"] = parsed["metadata"]
    content["data"] = hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(canonical_json(content)).hexdigest() == event.content_hash
    assert EventMetadata.from_dict(parsed["metadata"]) == event.metadata
