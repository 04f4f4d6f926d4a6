"""A history an older release stored with version 0 of ContactRecorded, read by the release with
version 1 and its upcaster, on SQLite and PostgreSQL event stores: the aggregate loads and takes
new commands (which append version 1), projections rebuild to the views of a history written in
version 1 alone, a replay up to a position in the old part gives the view live had then, and the
stored rows, untouched, still verify.

The version 0 is made up (tests/retired_contact.py); the store, the fold, the loader, the
projections, the runner and the command path are the product's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm.command_handling import CommandContext
from crm.envelope import EventMetadata, NewEvent
from crm.errors import HistoryBroken
from crm.eventcodec import EventCodec
from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore, StreamState
from crm.folding import StateLoader
from crm.upcasting import Upcaster
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from projections.kpi_report import KpiQuery
from projections.runner import InProcessProjector, decode_batch, rebuild
from projections.store.port import ViewStore
from projections.store.sqlite import SqliteViewStore
from services.audit.as_of import AsOf, timeline_as_of
from services.audit.case_checkpoints import case_as_of_from
from services.audit.history import HistoryReader, Subject
from services.audit.verify import verify_streams
from services.case import domain as case_domain
from services.case.application import CASE_FOLD, CaseApplication, CustomerStanding
from services.case.commands import AddNote, OpenCase, RecordContact, ResolveCase
from services.case.events import Category, ContactOutcome, ContactRecorded
from services.customer import domain as customer_domain
from services.customer.commands import RegisterCustomer
from services.customer.events import ContactPoint, CustomerMerged, DuplicateAbsorbed, Segment
from tests.retired_contact import CURRENT, OLD_RELEASE, ContactRecordedV0, as_old_release

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = START + timedelta(days=3)
AGENT = Actor(ActorKind.AGENT, "agent-7")
CUSTOMER, CASE = "cust-1", "case-1"
CASE_STREAM = f"case-{CASE}"


def _contact(contact_id: str, kind: ActorKind, handler: str, minutes: int) -> RecordContact:
    return RecordContact(
        case_id=CASE,
        contact_id=contact_id,
        channel=Channel.PHONE,
        direction=Direction.INBOUND,
        handler_kind=kind,
        handler_id=handler,
        outcome=ContactOutcome.BOT_RESOLVED if kind is ActorKind.BOT else ContactOutcome.ANSWERED,
        started_at=START + timedelta(minutes=minutes),
        talk_seconds=240,
        hold_seconds=30,
        after_work_seconds=45,
    )


OLD_COMMANDS: list[Any] = [
    OpenCase(CASE, CUSTOMER, Channel.PHONE, Category.BILLING_PAYMENT, Priority.HIGH, "Bill", ""),
    _contact("call-1", ActorKind.AGENT, "agent-7", 5),
    _contact("chat-1", ActorKind.BOT, "bot-2", 60),
    AddNote(CASE, "note-1", "asked for a refund"),
]
"""What the older release was told; its events are written below as it recorded them."""

NEW_COMMANDS: list[Any] = [
    _contact("call-2", ActorKind.SUPERVISOR, "sup-1", 180),
    ResolveCase(CASE, "refunded", "refund sent"),
]
"""What the newer release is told, through its command path."""


def _old_release_writes(store: EventStore, codec: EventCodec, old_form: bool) -> None:
    """The customer and the case's first events, as the older release recorded them (old_form)
    or as a release that only ever knew version 1 would have: same ids, metadata and times."""
    registered = customer_domain.decide(
        RegisterCustomer(
            CUSTOMER, "Aiko", (ContactPoint(Channel.PHONE, "+81"),), "ja", Segment.B2C
        ),
        None,
    )
    _append(store, codec, f"customer-{CUSTOMER}", registered, 0, old_form)
    state: case_domain.Case | None = None
    for index, command in enumerate(OLD_COMMANDS, start=1):
        decided = case_domain.decide(command, state)
        for event in decided:
            state = case_domain.evolve(state, event, START + timedelta(minutes=index))
        revision = StreamState.NO_STREAM if index == 1 else _last_revision(store)
        _append(store, codec, CASE_STREAM, decided, index, old_form, revision)


def _last_revision(store: EventStore) -> int:
    return store.read_stream(CASE_STREAM)[-1].revision


def _append(
    store: EventStore,
    codec: EventCodec,
    stream: str,
    events: list[Any],
    index: int,
    old_form: bool,
    expected: Any = StreamState.NO_STREAM,
) -> None:
    metadata = EventMetadata(
        CUSTOMER, START + timedelta(minutes=index), AGENT, f"corr-{index}", "", f"req-{index}"
    )
    new = []
    for n, event in enumerate(events):
        type_name, data = codec.encode(as_old_release(event) if old_form else event)
        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stream}/{index}/{n}"))
        new.append(NewEvent(event_id, type_name, data, metadata))
    store.append(stream, new, expected)


def _new_release_handles(store: EventStore) -> CaseApplication:
    """The newer release's case service over the store, told NEW_COMMANDS."""
    cases = CaseApplication(store, CURRENT, lambda: NOW, lambda _: CustomerStanding(False, ""))
    for index, command in enumerate(NEW_COMMANDS, start=100):
        context = CommandContext(f"req-{index}", AGENT, START + timedelta(minutes=index))
        cases.handle(command, context)
    return cases


def _views(views: ViewStore) -> tuple[Any, ...]:
    """What people read: the customer's timeline, the case view, risk and the KPI totals."""
    return (
        views.entries_after(CUSTOMER, 0, 1000),
        views.case_view(CASE),
        views.customer_risk(CUSTOMER),
        views.kpis(KpiQuery(date(2026, 3, 1), date(2026, 4, 1))),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    """The event store the older release wrote and the newer one reads."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'events.db'}"
    opened = open_event_store(url)
    yield opened
    opened.close()


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[EventStore]:
    """The same history written in version 1 alone, for comparison."""
    opened = open_event_store(f"sqlite:///{tmp_path / 'twin.db'}")
    yield opened
    opened.close()


def _view_store(tmp_path: Path, name: str) -> SqliteViewStore:
    return SqliteViewStore(tmp_path / f"views-{name}.db")


def test_old_history_replays_live_and_as_of_like_one_written_in_the_current_version(
    store: EventStore, twin: EventStore, tmp_path: Path
) -> None:
    _old_release_writes(store, OLD_RELEASE, old_form=True)
    _old_release_writes(twin, CURRENT, old_form=False)
    middle = store.last_position()
    stored_types = [e.type for e in store.read_stream(CASE_STREAM)]
    assert stored_types.count(ContactRecordedV0.TYPE) == 2
    assert ContactRecorded.TYPE not in stored_types

    # The newer release starts: its projector catches up on the old history (live, then).
    live = _view_store(tmp_path, "live")
    projector = InProcessProjector(store, live, CURRENT, batch_size=3, poll_interval=0.05)
    projector.start()
    try:
        assert projector.wait_until(middle, timeout=60)
        live_then = _views(live)
        # Its case service loads the old stream and appends version 1 after version 0.
        _new_release_handles(store)
        assert projector.wait_until(store.last_position(), timeout=60)
    finally:
        assert projector.stop()
    live_now = _views(live)
    _new_release_handles(twin)

    rows = store.read_stream(CASE_STREAM)
    assert [e.type for e in rows[: len(stored_types)]] == stored_types  # old rows untouched
    assert ContactRecorded.TYPE in [e.type for e in rows[len(stored_types) :]]
    state, revision = StateLoader(store, CURRENT, CASE_FOLD).load(CASE_STREAM)
    assert (state, revision) == StateLoader(twin, CURRENT, CASE_FOLD).load(CASE_STREAM)
    assert state is not None and state.contact_count == 3
    assert state.contact_ids == frozenset({"call-1", "chat-1", "call-2"})

    # Rebuilt from event 0: the views live built, and those of the history written in v1 alone.
    rebuilt, twin_views = _view_store(tmp_path, "rebuilt"), _view_store(tmp_path, "twin")
    rebuild(store, rebuilt, CURRENT, batch_size=4)
    rebuild(twin, twin_views, CURRENT, batch_size=4)
    assert _views(rebuilt) == live_now == _views(twin_views)
    # The handlers the upcaster split out of `handled_by` count as the current ones do.
    (kpis_then,), (kpis_now,) = live_then[3].groups, live_now[3].groups
    assert (kpis_then.average_handling_time.handled, kpis_now.average_handling_time.handled) == (
        1,  # agent-7's call; the bot's chat counts as contained instead
        2,
    )
    assert kpis_then.bot_containment.numerator == 1
    contacts = [e.summary for e in live_now[0] if e.event_type == ContactRecorded.TYPE]
    assert [summary.split(":")[0] for summary in contacts] == [
        "Inbound phone contact handled by agent agent-7",
        "Inbound phone contact handled by bot bot-2",
        "Inbound phone contact handled by supervisor sup-1",
    ]  # every contact, stored as version 0 or 1, shows on the timeline as version 1

    # As of the middle (old events only): the pure replay gives what live showed then.
    as_of = _view_store(tmp_path, "as_of")
    as_of.apply(decode_batch(CURRENT, store.read_all(after=0, limit=middle)))
    assert _views(as_of) == live_then
    # The audit's as-of views (services/audit/as_of.py) fold the stored rows the same way.
    point = AsOf(position=middle)
    (view, _) = case_as_of_from(None, store.read_stream(CASE_STREAM), point, CURRENT)
    assert view == live_then[1]
    streams = {e.stream: store.read_stream(e.stream) for e in store.read_all(0, 1000)}
    assert timeline_as_of(CUSTOMER, streams, point, CURRENT) == live_then[0]

    # The audit reads the stored rows: their own type names, a chain that still verifies.
    reader = HistoryReader(store, live, CURRENT)
    history = reader.events(Subject("case", CASE))
    assert [e.type for e in history][: len(stored_types)] == stored_types
    verification = verify_streams(reader.streams(Subject("customer", CUSTOMER)), store.read_stream)
    assert verification.ok and verification.events_checked == store.last_position()
    for view_store in (live, rebuilt, twin_views, as_of):
        view_store.close()


def test_a_snapshot_folded_from_upcast_events_is_used_as_any_other(
    store: EventStore, tmp_path: Path
) -> None:
    _old_release_writes(store, OLD_RELEASE, old_form=True)
    full = StateLoader(store, CURRENT, CASE_FOLD, snapshot_every=10_000).load(CASE_STREAM)
    StateLoader(store, CURRENT, CASE_FOLD, snapshot_every=2).load(CASE_STREAM)  # saves one
    snapshot = store.read_snapshot(CASE_STREAM, after_revision=-1)
    assert snapshot is not None and snapshot.version == CASE_FOLD.version
    assert StateLoader(store, CURRENT, CASE_FOLD).load(CASE_STREAM) == full


def test_a_release_without_the_upcaster_refuses_old_events_by_name(store: EventStore) -> None:
    _old_release_writes(store, OLD_RELEASE, old_form=True)
    before = store.last_position()
    first_old = next(e for e in store.read_stream(CASE_STREAM) if e.type == ContactRecordedV0.TYPE)
    without = EventCodec(CURRENT.class_for(name) for name in CURRENT.type_names)
    cases = CaseApplication(store, without, lambda: NOW, lambda _: CustomerStanding(False, ""))
    context = CommandContext("req-refused", AGENT, NOW)
    with pytest.raises(HistoryBroken) as refused:  # DATA_LOSS on the wire, with an alert
        cases.handle(AddNote(CASE, "note-2", "again"), context)
    assert (refused.value.stream, refused.value.revision) == (CASE_STREAM, first_old.revision)
    assert "this release cannot read it: unknown event type crm.case.ContactRecorded.v0" in str(
        refused.value
    )
    assert store.last_position() == before  # nothing appended on top


def _into_renamed(plain: dict[str, Any]) -> dict[str, Any]:
    """A made-up v0 of CustomerMerged named the survivor `into`."""
    return {**plain, "into_customer_id": plain.pop("into")}


def test_the_audit_follows_a_merge_stored_as_an_older_version(
    store: EventStore, tmp_path: Path
) -> None:
    merged_v0 = "crm.customer.CustomerMerged.v0"
    codec = EventCodec(
        (CURRENT.class_for(name) for name in CURRENT.type_names),
        (Upcaster(merged_v0, CustomerMerged.TYPE, _into_renamed),),
    )
    for index, customer in enumerate(("survivor", "duplicate")):
        registered = customer_domain.decide(
            RegisterCustomer(customer, "Aiko", (), "ja", Segment.B2C), None
        )
        _append(store, codec, f"customer-{customer}", registered, index, old_form=False)
    absorbed = DuplicateAbsorbed("survivor", "duplicate", "merge-1", "same person")
    _append(store, codec, "customer-survivor", [absorbed], 2, old_form=False, expected=0)
    old_merge = b'{"customer_id": "duplicate", "into": "survivor", "merge_id": "merge-1",'
    old_merge += b' "reason": "same person"}'
    metadata = EventMetadata("duplicate", START, AGENT, "corr-3", "", "req-3")
    store.append("customer-duplicate", [NewEvent("ev-merge", merged_v0, old_merge, metadata)], 0)

    views = _view_store(tmp_path, "audit")
    try:
        members = HistoryReader(store, views, codec).members("survivor")
    finally:
        views.close()
    assert [(m.customer_id, m.until) for m in members] == [("survivor", None), ("duplicate", None)]
