"""The KurrentDB adapter's pure mappings: URLs, stream names, revisions, positions, events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import kurrentdbclient as kdb
import pytest

from crm.envelope import GENESIS_HASH, EventMetadata, NewEvent, chain_hash
from crm.errors import IntegrityError, InvalidInput
from crm.eventstore.factory import open_event_store
from crm.eventstore.kurrentdb_mapping import (
    StreamNames,
    client_event_id,
    commit_position,
    exact_version,
    from_client_event,
    global_position,
    revision_matches,
    to_client_event,
)
from crm.eventstore.kurrentdb_url import connection_uri, is_kurrentdb
from crm.eventstore.port import StreamState
from crm.urls import redacted
from crm.vocabulary import Actor, ActorKind

FIELD = "event_store_url"


def event(data: bytes = b'{"n": 1}', event_id: str | None = None) -> NewEvent:
    return NewEvent(
        event_id=event_id or str(uuid.uuid4()),
        type="crm.case.CaseOpened.v1",
        data=data,
        metadata=EventMetadata(
            customer_id="cust-1",
            occurred_at=datetime(2024, 3, 1, 8, 0, 0, 250, tzinfo=timezone(timedelta(hours=9))),
            actor=Actor(ActorKind.BOT, "bot-3"),
            correlation_id="corr",
            causation_id="cause",
            request_id="req-1",
            command_digest="d-1",
        ),
    )


def as_recorded(
    new: kdb.NewEvent, stream: str, revision: int, commit: int, id_: uuid.UUID | None = None
) -> kdb.RecordedEvent:
    """What the server would hand back for `new` (its fields, and a place in the log)."""
    return kdb.RecordedEvent(
        type=new.type,
        data=new.data,
        metadata=new.metadata,
        content_type=new.content_type,
        id=id_ or new.id,
        stream_name=stream,
        stream_position=revision,
        commit_position=commit,
        prepare_position=commit,
    )


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "kurrentdb://admin:changeit@localhost:2113",
        "kurrentdb://localhost:2113?tls=false",
        "esdb://127.0.0.1:2113?Tls=false&ConnectionName=crm",
        "kurrentdb+discover://admin:changeit@cluster.example:2113",
        "esdb://a:2113,b:2114,c:2115?tls=false&NodePreference=leader",
        "kurrentdb://localhost?tls=false",  # the client adds the default port, 2113
    ],
)
def test_well_formed_urls_are_taken_as_they_are(url: str) -> None:
    assert is_kurrentdb(url)
    assert connection_uri(url, FIELD) == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("kurrentdb://", "No targets"),
        ("kurrentdb://localhost:2113", "Username and password are required"),
        ("esdb://localhost:2113?tls=false&Bogus=1", "Unknown field"),
        ("esdb://localhost:2113?tls=maybe", "not one of"),
        ("kurrentdb://localhost:21x3?tls=false", "not host:port"),
        ("kurrentdb://localhost:70000?tls=false", "not host:port"),
        ("esdb+discover://a:1,b:2?tls=false", "More than one target"),
    ],
)
def test_malformed_urls_name_the_setting(url: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as caught:
        connection_uri(url, FIELD)
    assert caught.value.field == FIELD
    assert "kurrentdb://[user:password@]host:2113" in str(caught.value)


def test_a_password_never_reaches_the_message() -> None:
    url = "kurrentdb://admin:s3cret@localhost:99999"
    with pytest.raises(InvalidInput) as caught:
        connection_uri(url, FIELD)
    assert "s3cret" not in str(caught.value)
    assert redacted(url) == "kurrentdb://admin:***@localhost:99999"
    assert redacted("esdb://h:1?tls=false") == "esdb://h:1?tls=false"


@pytest.mark.parametrize("url", ["sqlite:///x.db", "postgresql://h/db", "kurrent://h", "esdbx://h"])
def test_other_schemes_are_not_kurrentdb(url: str) -> None:
    assert not is_kurrentdb(url)


def test_the_factory_refuses_a_malformed_kurrentdb_url_naming_the_setting() -> None:
    with pytest.raises(InvalidInput, match="malformed") as caught:
        open_event_store("esdb://localhost:2113")
    assert caught.value.field == FIELD


def test_the_factory_refuses_an_unreachable_server_at_start() -> None:
    # Port 1 on this machine: nothing listens, so the connection is refused at once.
    with pytest.raises(InvalidInput, match="cannot reach KurrentDB at esdb://") as caught:
        open_event_store("esdb://127.0.0.1:1?tls=false")
    assert caught.value.field == FIELD
    assert "\n" not in str(caught.value)


def test_the_factory_names_kurrentdb_among_the_supported_urls() -> None:
    with pytest.raises(InvalidInput, match=r"sqlite:///<path>, kurrentdb://") as caught:
        open_event_store("mysql://localhost/crm")
    assert caught.value.field == FIELD


# --- stream names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream", ["", "$all", "$$Case-1", "crm-request-r1", "crm-snapshot-Case-1", "crm-event-e1"]
)
def test_streams_of_the_server_or_of_the_store_are_refused(stream: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        StreamNames().check(stream)
    assert caught.value.field == "stream"


@pytest.mark.parametrize("stream", ["Case-1", "customer-c1", "crm.case-9", "Crm-request-x"])
def test_ordinary_streams_are_taken(stream: str) -> None:
    StreamNames().check(stream)
    assert StreamNames().is_event_stream(stream)


def test_a_namespace_prefixes_every_stream_of_the_store() -> None:
    names = StreamNames("t42_")
    assert names.server("Case-1") == "t42_Case-1"
    assert names.port("t42_Case-1") == "Case-1"
    assert names.request("r") == "t42_crm-request-r"
    assert names.snapshot("Case-1") == "t42_crm-snapshot-Case-1"
    assert names.event_key("e") == "t42_crm-event-e"
    with pytest.raises(IntegrityError):
        names.port("other_Case-1")


@pytest.mark.parametrize(
    ("namespace", "stream", "kept"),
    [
        ("", "Case-1", True),
        ("", "$all", False),
        ("", "$$Case-1", False),
        ("", "$et-crm.case.CaseOpened.v1", False),
        ("", "crm-request-r", False),
        ("", "crm-snapshot-Case-1", False),
        ("", "crm-event-e", False),
        ("t1_", "t1_Case-1", True),
        ("t1_", "Case-1", False),
        ("t1_", "t2_Case-1", False),
        ("t1_", "t1_crm-request-r", False),
        ("t1_", "$$t1_crm-snapshot-Case-1", False),
    ],
)
def test_the_events_filter_keeps_the_event_streams_only(
    namespace: str, stream: str, kept: bool
) -> None:
    # The client anchors the pattern at both ends; the server's regex dialect reads these
    # constructs (a lookahead, escapes) as Python's does.
    assert StreamNames(namespace).is_event_stream(stream) is kept


@pytest.mark.parametrize("namespace", ["t-1", "a b", "x$"])
def test_a_namespace_is_letters_digits_and_underscores(namespace: str) -> None:
    with pytest.raises(InvalidInput):
        StreamNames(namespace)


# --- expected revisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        (StreamState.ANY, -1, True),
        (StreamState.ANY, 7, True),
        (StreamState.NO_STREAM, -1, True),
        (StreamState.NO_STREAM, 0, False),
        (0, -1, False),
        (0, 0, True),
        (3, 4, False),
        (4, 4, True),
    ],
)
def test_expected_revisions_match_the_streams_last_revision(
    expected: int | StreamState, actual: int, matches: bool
) -> None:
    assert revision_matches(expected, actual) is matches


def test_appends_are_sent_at_the_exact_revision_read() -> None:
    assert exact_version(-1) is kdb.StreamState.NO_STREAM
    assert exact_version(0) == 0
    assert exact_version(12) == 12


# --- positions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("commit", [0, 1, 1_000, 2**63])
def test_positions_are_commit_positions_plus_one_and_back(commit: int) -> None:
    position = global_position(commit)
    assert position == commit + 1
    assert commit_position(position) == commit


def test_position_0_reads_from_the_start_and_keeps_the_order() -> None:
    assert commit_position(0) is None
    commits = [0, 5, 17, 18, 4_000]
    positions = [global_position(c) for c in commits]
    assert positions == sorted(set(positions))
    assert min(positions) >= 1
    with pytest.raises(InvalidInput):
        commit_position(-1)
    with pytest.raises(IntegrityError):
        global_position(-1)


# --- events -------------------------------------------------------------------------------------


def test_uuid_event_ids_are_the_servers_ids() -> None:
    event_id = str(uuid.uuid4())
    assert client_event_id(event_id) == uuid.UUID(event_id)


def test_other_event_ids_map_to_stable_distinct_uuids() -> None:
    upper = str(uuid.uuid4()).upper()
    assert client_event_id("evt-1") == client_event_id("evt-1")
    assert client_event_id("evt-1") != client_event_id("evt-2")
    # Not the UUID the text parses to: "ABC..." and "abc..." are two ids to this system.
    assert client_event_id(upper) != uuid.UUID(upper)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"text": "\xc3\xa9\xe2\x82\xac"}', "application/json"),
        (bytes(range(256)), "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_an_event_round_trips_byte_exact_through_the_clients_shapes(
    data: bytes, content_type: str
) -> None:
    new = event(data)
    recorded_at = datetime(2024, 3, 1, 0, 0, 0, 1, tzinfo=UTC)
    content_hash = chain_hash(GENESIS_HASH, "Case-1", 0, new, recorded_at)
    sent = to_client_event(new, recorded_at, GENESIS_HASH, content_hash)
    assert (sent.type, sent.data, sent.content_type) == (new.type, data, content_type)
    assert sent.id == uuid.UUID(new.event_id)
    names = StreamNames("ns_")
    back = from_client_event(as_recorded(sent, "ns_Case-1", 0, 4_096), names)
    assert (back.stream, back.revision, back.global_position) == ("Case-1", 0, 4_097)
    assert (back.event_id, back.type, back.data) == (new.event_id, new.type, data)
    assert back.metadata == new.metadata
    assert back.metadata.occurred_at.utcoffset() == timedelta(hours=9)
    assert back.recorded_at == recorded_at
    assert (back.previous_hash, back.content_hash) == (GENESIS_HASH, content_hash)


def test_an_event_whose_server_id_is_not_its_own_is_refused() -> None:
    sent = to_client_event(event(), datetime.now(UTC), GENESIS_HASH, "h")
    with pytest.raises(IntegrityError, match="does not belong"):
        from_client_event(as_recorded(sent, "Case-1", 0, 9, uuid.uuid4()), StreamNames())


@pytest.mark.parametrize(
    "metadata", [b"", b"{}", b"not json", json.dumps({"event_id": 1}).encode()]
)
def test_an_event_this_store_did_not_record_is_refused(metadata: bytes) -> None:
    foreign = kdb.NewEvent(type="SomethingElse", data=b"{}", metadata=metadata)
    with pytest.raises(IntegrityError, match="Case-1@3"):
        from_client_event(as_recorded(foreign, "Case-1", 3, 9), StreamNames())
