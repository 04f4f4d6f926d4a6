"""AuditService over a real server on SQLite stores and on PostgreSQL stores: history across a
merge and its undo, filters and page tokens, an export the outside script verifies, and a tampered
row found exactly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.identity import Role
from crm.v1 import (
    audit_service_pb2,
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
)
from services.bootstrap import System, build_system
from tests.grpc_client import Client, poll
from tests.raw_stores import BACKENDS, Backend, backend_for

ROOT = Path(__file__).resolve().parents[2]
VERIFY_SCRIPT = ROOT / "deploy" / "verify_export.py"
CASE_OPENED = "crm.case.CaseOpened.v1"


@dataclass
class Story:
    """A survivor, a duplicate merged into it and released again, and what each recorded."""

    system: System
    client: Client
    target: str
    survivor: str
    duplicate: str
    duplicate_case: str
    survivor_case: str
    later_case: str  # opened for the duplicate after its release
    merge_position: int  # the merge's last event (on the survivor's stream)
    undo_position: int  # the duplicate's own CustomerMergeUndone
    last_position: int


@pytest.fixture(scope="module", params=BACKENDS)
def story(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    system, server, client = _serve(backend_for(request, tmp_path_factory.mktemp("audit")))
    survivor = _register(client, "Aiko Tanaka")
    duplicate = _register(client, "A. Tanaka")
    duplicate_case = _open_case(client, duplicate)
    client.cases.AddNote(
        case_service_pb2.AddNoteRequest(
            context=client.context(), case_id=duplicate_case, text="asked twice"
        )
    )
    client.feedback.SubmitSurvey(
        feedback_service_pb2.SubmitSurveyRequest(
            context=client.context(),
            customer_id=duplicate,
            case_id=duplicate_case,
            channel=common_pb2.CHANNEL_EMAIL,
            csat=4,
        )
    )
    merge = client.customers.MergeCustomers(
        customer_service_pb2.MergeCustomersRequest(
            context=client.context(actor_id="supervisor-9", kind=common_pb2.ACTOR_KIND_SUPERVISOR),
            duplicate_customer_id=duplicate,
            survivor_customer_id=survivor,
            reason="same person",
        )
    )
    survivor_case = _open_case(client, survivor)
    undo = client.customers.UndoMerge(
        customer_service_pb2.UndoMergeRequest(
            context=client.context(actor_id="supervisor-9", kind=common_pb2.ACTOR_KIND_SUPERVISOR),
            duplicate_customer_id=duplicate,
            reason="two people after all",
        )
    )
    client.cases.AddNote(
        case_service_pb2.AddNoteRequest(
            context=client.context(), case_id=duplicate_case, text="after the release"
        )
    )
    later_case = _open_case(client, duplicate)
    last = system.store.last_position()
    # The release ends the duplicate's share: its own CustomerMergeUndone (the survivor's
    # DuplicateReleased, the last event of the undo, lies on the survivor's stream).
    (released,) = [
        e.global_position
        for e in system.store.read_stream(f"customer-{duplicate}")
        if e.type == "crm.customer.CustomerMergeUndone.v1"
    ]
    del undo
    # The cases and feedback of a profile are found through the timeline: wait until projected.
    poll(lambda: system.view_store.entries_after(duplicate, last - 1, 10))
    yield Story(
        system,
        client,
        server.target,
        survivor,
        duplicate,
        duplicate_case,
        survivor_case,
        later_case,
        merge.global_position,
        released,
        last,
    )
    client.close()
    server.stop(1)
    system.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A test's own stores, of each kind in turn."""
    return backend_for(request, tmp_path)


def _serve(stores: Backend) -> tuple[System, ServerThread, Client]:
    system = build_system(stores.settings())
    assert stores.serves(system.store, system.view_store)
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system)
    _auditor_token(server, stores.data_dir)
    return system, server, Client(server.access, prefix=stores.data_dir.name)


def _register(client: Client, name: str) -> str:
    return client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name=name,
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id


def _open_case(client: Client, customer_id: str) -> str:
    return client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=client.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_EMAIL,
            category=case_events_pb2.CATEGORY_SHIPPING_FEES,
            subject="Parcel late",
        )
    ).aggregate_id


def _customer(customer_id: str) -> audit_service_pb2.AuditSubject:
    return audit_service_pb2.AuditSubject(customer_id=customer_id)


def _whole(
    client: Client, request: audit_service_pb2.GetHistoryRequest
) -> list[audit_service_pb2.HistoryEvent]:
    """Every page of the history, following the tokens."""
    events: list[audit_service_pb2.HistoryEvent] = []
    while True:
        page = client.audit.GetHistory(request)
        events.extend(page.events)
        if not page.next_page_token:
            return events
        request.page_token = page.next_page_token


def _store_events(story: Story) -> list[tuple[int, str]]:
    return [(e.global_position, e.stream) for e in story.system.store.read_all(0, 10_000)]


def test_a_released_duplicate_shows_its_past_up_to_its_release_in_global_order(
    story: Story,
) -> None:
    events = _whole(
        story.client, audit_service_pb2.GetHistoryRequest(subject=_customer(story.survivor))
    )
    positions = [e.global_position for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    streams = {e.stream for e in events}
    assert {
        f"customer-{story.survivor}",
        f"customer-{story.duplicate}",
        f"case-{story.duplicate_case}",
        f"case-{story.survivor_case}",
    } <= streams
    assert any(s.startswith("feedback-") for s in streams)
    assert f"case-{story.later_case}" not in streams
    # Everything of the survivor and of the duplicate up to its release, nothing after it.
    expected = [
        position
        for position, stream in _store_events(story)
        if stream in streams
        and not (stream.endswith(story.duplicate_case) and position > story.undo_position)
        and not (stream == f"customer-{story.duplicate}" and position > story.undo_position)
    ]
    assert positions == expected
    assert (
        max(
            e.global_position
            for e in events
            if story.duplicate in e.stream or e.customer_id == story.duplicate
        )
        == story.undo_position
    )
    merged = next(e for e in events if e.global_position == story.merge_position)
    assert merged.actor.id == "supervisor-9"
    assert merged.description == f"Absorbed duplicate customer {story.duplicate}"
    assert all(e.description and e.content_hash and e.previous_hash for e in events)


def test_the_duplicate_s_own_history_is_whole_and_holds_no_survivor_stream(story: Story) -> None:
    events = _whole(
        story.client, audit_service_pb2.GetHistoryRequest(subject=_customer(story.duplicate))
    )
    streams = {e.stream for e in events}
    assert f"case-{story.later_case}" in streams
    assert not any(story.survivor in stream for stream in streams)
    assert events[-1].global_position == story.last_position


def test_a_case_s_history_holds_its_stream_and_the_feedback_naming_it(story: Story) -> None:
    subject = audit_service_pb2.AuditSubject(case_id=story.duplicate_case)
    events = _whole(story.client, audit_service_pb2.GetHistoryRequest(subject=subject))
    assert {e.stream.split("-")[0] for e in events} == {"case", "feedback"}
    assert events[0].event_type == CASE_OPENED


def test_pages_of_any_size_add_up_to_the_whole_and_a_token_always_resumes_alike(
    story: Story,
) -> None:
    subject = _customer(story.survivor)
    whole = _whole(
        story.client, audit_service_pb2.GetHistoryRequest(subject=subject, page_size=500)
    )
    paged = _whole(story.client, audit_service_pb2.GetHistoryRequest(subject=subject, page_size=3))
    assert [e.event_id for e in paged] == [e.event_id for e in whole]
    first = story.client.audit.GetHistory(
        audit_service_pb2.GetHistoryRequest(subject=subject, page_size=3)
    )
    again = audit_service_pb2.GetHistoryRequest(
        subject=subject, page_size=3, page_token=first.next_page_token
    )
    assert story.client.audit.GetHistory(again) == story.client.audit.GetHistory(again)


@pytest.mark.parametrize(
    ("request_of", "field"),
    [
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(
                subject=_customer(s.duplicate), page_token=token
            ),
            "page_token",
        ),
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(
                subject=_customer(s.survivor), event_types=[CASE_OPENED], page_token=token
            ),
            "page_token",
        ),
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(
                subject=_customer(s.survivor), page_token="not-a-token"
            ),
            "page_token",
        ),
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(
                subject=_customer(s.survivor), page_size=501
            ),
            "page_size",
        ),
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(
                subject=_customer(s.survivor), event_types=["crm.Nope.v1"]
            ),
            "event_types",
        ),
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(
                subject=_customer(s.survivor),
                time_basis=7,  # type: ignore[arg-type]
            ),
            "time_basis",
        ),
        (lambda s, token: audit_service_pb2.GetHistoryRequest(), "subject"),
        (
            lambda s, token: audit_service_pb2.GetHistoryRequest(subject=_customer("bad id!")),
            "subject.customer_id",
        ),
    ],
)
def test_a_foreign_token_or_a_bad_filter_is_refused_naming_the_field(
    story: Story,
    request_of: Callable[[Story, str], audit_service_pb2.GetHistoryRequest],
    field: str,
) -> None:
    first = story.client.audit.GetHistory(
        audit_service_pb2.GetHistoryRequest(subject=_customer(story.survivor), page_size=2)
    )
    assert first.next_page_token
    with pytest.raises(grpc.RpcError) as raised:
        story.client.audit.GetHistory(request_of(story, first.next_page_token))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert str(raised.value.details()).startswith(f"{field}:")


def test_an_unknown_subject_is_not_found(story: Story) -> None:
    for subject in (_customer("ghost"), audit_service_pb2.AuditSubject(case_id="ghost")):
        with pytest.raises(grpc.RpcError) as raised:
            story.client.audit.GetHistory(audit_service_pb2.GetHistoryRequest(subject=subject))
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND


def test_filters_by_type_actor_and_time(story: Story) -> None:
    subject = _customer(story.survivor)
    whole = _whole(story.client, audit_service_pb2.GetHistoryRequest(subject=subject))
    opened = _whole(
        story.client,
        audit_service_pb2.GetHistoryRequest(subject=subject, event_types=[CASE_OPENED]),
    )
    assert [e.stream for e in opened] == [
        f"case-{story.duplicate_case}",
        f"case-{story.survivor_case}",
    ]
    by_supervisor = _whole(
        story.client,
        audit_service_pb2.GetHistoryRequest(subject=subject, actor_ids=["supervisor-9"]),
    )
    assert {e.request_id for e in by_supervisor} == {
        e.request_id for e in whole if e.actor.id == "supervisor-9"
    }
    assert len(by_supervisor) == 4  # the merge and its undo, each on two streams
    kinds = _whole(
        story.client,
        audit_service_pb2.GetHistoryRequest(
            subject=subject, actor_kinds=[common_pb2.ACTOR_KIND_SUPERVISOR]
        ),
    )
    assert kinds == by_supervisor
    middle = whole[len(whole) // 2]
    since = _whole(
        story.client, audit_service_pb2.GetHistoryRequest(subject=subject, since=middle.recorded_at)
    )
    assert since == [
        e for e in whole if e.recorded_at.ToDatetime() >= middle.recorded_at.ToDatetime()
    ]
    until = _whole(
        story.client,
        audit_service_pb2.GetHistoryRequest(
            subject=subject,
            until=middle.occurred_at,
            time_basis=audit_service_pb2.TIME_BASIS_OCCURRED,
        ),
    )
    assert until == [
        e for e in whole if e.occurred_at.ToDatetime() < middle.occurred_at.ToDatetime()
    ]
    assert until and since


def _export(client: Client, subject: audit_service_pb2.AuditSubject, path: Path) -> list[str]:
    lines = [
        line.json
        for line in client.audit.ExportHistory(
            audit_service_pb2.ExportHistoryRequest(subject=subject)
        )
    ]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return lines


def _readme_script(directory: Path) -> Path:
    """The verification script the README's Audit section shows, written to a file."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Checking an export**") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    script = directory / "readme_verify.py"
    script.write_text(code[: code.index("```")], encoding="utf-8")
    return script


def _outside_check(path: Path, script: Path = VERIFY_SCRIPT) -> subprocess.CompletedProcess[str]:
    """Run a verification script in a fresh interpreter that sees none of the project."""
    return subprocess.run(
        [sys.executable, "-I", str(script), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=path.parent,
    )


def test_the_export_is_the_history_and_verifies_with_the_outside_script(
    story: Story, tmp_path: Path
) -> None:
    subject = _customer(story.survivor)
    lines = _export(story.client, subject, tmp_path / "export.jsonl")
    history = _whole(story.client, audit_service_pb2.GetHistoryRequest(subject=subject))
    parsed = [json.loads(line) for line in lines]
    assert [p["event_id"] for p in parsed] == [e.event_id for e in history]
    assert [p["content_hash"] for p in parsed] == [e.content_hash for e in history]
    checked = _outside_check(tmp_path / "export.jsonl")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("ok")


def _tampered(lines: list[str], how: str) -> tuple[list[str], int]:
    """The export altered one way, and the (1-based) line the script must name."""
    changed = list(lines)
    streams = [json.loads(line)["stream"] for line in lines]
    if how == "byte":
        at = len(lines) // 2
        # One byte of a hashed field: the version of the event type (the line's last key).
        changed[at] = changed[at].replace('.v1"}', '.v2"}', 1)
        assert changed[at] != lines[at]
        return changed, at + 1
    if how == "removed":
        # A line in the middle whose stream goes on after it: the next line of that stream
        # no longer continues the chain.
        at = next(i for i in range(1, len(lines) - 1) if streams[i] in streams[i + 1 :])
        following = streams.index(streams[at], at + 1)
        del changed[at]
        return changed, following
    at = next(i for i in range(1, len(lines) - 1) if streams[i] != streams[i + 1])
    changed[at], changed[at + 1] = changed[at + 1], changed[at]
    return changed, at + 2  # the line moved up now comes after a later position


@pytest.mark.parametrize("script", ["deploy", "readme"])
@pytest.mark.parametrize("how", ["byte", "removed", "swapped"])
def test_the_outside_script_names_the_line_of_an_altered_export(
    story: Story, tmp_path: Path, how: str, script: str
) -> None:
    lines = _export(story.client, _customer(story.survivor), tmp_path / "export.jsonl")
    checker = VERIFY_SCRIPT if script == "deploy" else _readme_script(tmp_path)
    assert _outside_check(tmp_path / "export.jsonl", checker).returncode == 0
    changed, line = _tampered(lines, how)
    (tmp_path / "tampered.jsonl").write_text("".join(f"{x}\n" for x in changed), encoding="utf-8")
    checked = _outside_check(tmp_path / "tampered.jsonl", checker)
    said = checked.stdout + checked.stderr  # the README's script exits with its message
    assert checked.returncode == 1, said
    assert said.startswith(f"line {line}:"), said


def test_an_intact_history_verifies_stream_by_stream(story: Story) -> None:
    reply = story.client.audit.VerifyHistory(
        audit_service_pb2.VerifyHistoryRequest(subject=_customer(story.survivor))
    )
    history = _whole(
        story.client, audit_service_pb2.GetHistoryRequest(subject=_customer(story.survivor))
    )
    assert reply.ok and not reply.breaks and not reply.HasField("first_break")
    assert reply.events_checked == len(history)
    assert all(e.current_event_type == e.event_type != "" for e in history)  # none upcast here
    assert reply.streams_checked == len({e.stream for e in history}) == len(reply.heads)
    last_of = {e.stream: e for e in history}
    for head in reply.heads:
        assert head.head_hash == last_of[head.stream].content_hash
        assert head.last_revision == last_of[head.stream].revision


def test_verify_pinpoints_a_row_altered_in_the_store(backend: Backend, tmp_path: Path) -> None:
    system, server, client = _serve(backend)
    try:
        customer = _register(client, "Chika Mori")
        case = _open_case(client, customer)
        note = client.cases.AddNote(
            case_service_pb2.AddNoteRequest(
                context=client.context(), case_id=case, text="call back"
            )
        )
        client.cases.AddNote(
            case_service_pb2.AddNoteRequest(context=client.context(), case_id=case, text="again")
        )
        poll(lambda: system.view_store.entries_after(customer, note.global_position, 10))
        ((data,),) = backend.execute(
            "SELECT data FROM events WHERE global_position = ?", "", note.global_position
        )
        backend.execute(
            "UPDATE events SET data = ? WHERE global_position = ?",
            "",
            # The note's text is sealed (crm.personal): alter a field stored in the clear.
            bytes(data).replace(b'"note_id": "', b'"note_id": "X', 1),
            note.global_position,
        )
        for subject in (_customer(customer), audit_service_pb2.AuditSubject(case_id=case)):
            reply = client.audit.VerifyHistory(
                audit_service_pb2.VerifyHistoryRequest(subject=subject)
            )
            assert not reply.ok
            assert (
                reply.first_break.stream,
                reply.first_break.revision,
                reply.first_break.global_position,
            ) == (
                f"case-{case}",
                note.revision,
                note.global_position,
            )
            assert "altered" in reply.first_break.problem
            assert list(reply.breaks) == [reply.first_break]
        refused = _cli(server.target, "verify", "--case", case)
        assert refused.returncode == 1 and json.loads(refused.stdout)["ok"] is False
        lines = _export(client, _customer(customer), tmp_path / "export.jsonl")
        checked = _outside_check(tmp_path / "export.jsonl")
        broken_line = 1 + [json.loads(x)["global_position"] for x in lines].index(
            note.global_position
        )
        assert checked.returncode == 1
        assert checked.stdout.startswith(f"line {broken_line}:") and "altered" in checked.stdout
    finally:
        client.close()
        server.stop(1)
        system.close()


_AUDITOR_TOKENS: dict[str, Path] = {}
"""A file with an auditor's token for each server of this module, by its target."""


def _auditor_token(server: ServerThread, tmp_path: Path) -> None:
    path = tmp_path / f"auditor-{server.port}.token"
    path.write_text(server.access.token(Role.AUDITOR, "auditor-1"))
    _AUDITOR_TOKENS[server.target] = path


def _cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    """crm-audit in a process of its own; its output is a pipe, so it writes JSON lines."""
    token = _AUDITOR_TOKENS.get(target)
    credential = () if token is None else ("--token-file", str(token))
    return subprocess.run(
        [
            *(sys.executable, "-m", "services.entrypoints.audit", "--target", target),
            *credential,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )


def test_the_cli_lists_exports_and_verifies_a_history(story: Story, tmp_path: Path) -> None:
    target = story.target
    history = _whole(
        story.client, audit_service_pb2.GetHistoryRequest(subject=_customer(story.survivor))
    )
    listed = _cli(target, "history", "--customer", story.survivor, "--page-size", "4")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["event_id"] for row in rows] == [e.event_id for e in history]
    exported = _cli(target, "export", "--customer", story.survivor, "-o", str(tmp_path / "x.jsonl"))
    assert exported.returncode == 0, exported.stderr
    assert _outside_check(tmp_path / "x.jsonl").returncode == 0
    verified = _cli(target, "verify", "--case", story.duplicate_case)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True


def test_the_cli_says_what_went_wrong_and_exits_2(story: Story) -> None:
    target = story.target
    unknown = _cli(target, "verify", "--customer", "ghost")
    assert unknown.returncode == 2 and "NOT_FOUND" in unknown.stderr
    bad = _cli(target, "history", "--customer", story.survivor, "--page-size", "9999")
    assert bad.returncode == 2 and "INVALID_ARGUMENT: page_size" in bad.stderr
    usage = _cli(target, "history")
    assert usage.returncode == 2 and "--customer" in usage.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    unreachable = _cli(closed, "verify", "--customer", story.survivor)
    assert unreachable.returncode == 2 and "UNAVAILABLE" in unreachable.stderr


def test_verify_names_a_row_whose_metadata_no_longer_decodes(backend: Backend) -> None:
    system, server, client = _serve(backend)
    try:
        customer = _register(client, "Daichi Sato")
        case = _open_case(client, customer)
        note = client.cases.AddNote(
            case_service_pb2.AddNoteRequest(context=client.context(), case_id=case, text="x")
        )
        poll(lambda: system.view_store.entries_after(customer, note.global_position - 1, 10))
        backend.execute(
            "UPDATE events SET metadata = json_set(metadata, '$.actor_kind', 'admin')"
            " WHERE global_position = ?",
            'UPDATE events SET metadata = (metadata::jsonb || \'{"actor_kind": "admin"}\')::text'
            " WHERE global_position = ?",
            note.global_position,
        )
        subject = _customer(customer)
        reply = client.audit.VerifyHistory(audit_service_pb2.VerifyHistoryRequest(subject=subject))
        assert not reply.ok
        found = reply.first_break
        assert (found.stream, found.revision, found.global_position) == (
            f"case-{case}",
            note.revision,
            note.global_position,
        )
        assert "metadata no longer decodes" in found.problem
        # The history itself cannot be shown past such a row: refused as lost data, named.
        with pytest.raises(grpc.RpcError) as raised:
            client.audit.GetHistory(audit_service_pb2.GetHistoryRequest(subject=subject))
        assert raised.value.code() is grpc.StatusCode.DATA_LOSS
        assert f"revision {note.revision}" in str(raised.value.details())
    finally:
        client.close()
        server.stop(1)
        system.close()
