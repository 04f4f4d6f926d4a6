"""`crm-audit as-of` against a real server with an auditor's token: JSON when piped, a table on a
terminal, exit status 2 with the server's reason for a refused request."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from google.protobuf.message import Message

from crm.v1 import (
    audit_service_pb2_grpc,
)
from services.entrypoints import audit as audit_cli
from services.entrypoints.audit_output import message_json
from tests.as_of_story import Story, told
from tests.integration.test_audit_history import _cli
from tests.raw_stores import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def story(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    yield from told(request, tmp_path_factory)


def _plain(message: Message) -> object:
    return json.loads(message_json(message))


def test_the_cli_prints_json_when_piped_with_an_auditor_s_token(story: Story) -> None:
    target, position = story.target, story.before_transfer
    case = _cli(target, "as-of", "--case", story.case_id, "--position", str(position))
    assert case.returncode == 0, case.stderr
    reply = json.loads(case.stdout)
    assert reply["case"] == _plain(story.cases[position])
    assert int(reply["last_position"]) == story.cases[position].last_position
    merged_at = max(p for p, c in story.customers.items() if c.duplicates)
    customer = _cli(target, "as-of", "--customer", story.survivor, "--position", str(merged_at))
    assert customer.returncode == 0, customer.stderr
    assert json.loads(customer.stdout)["customer"] == _plain(story.customers[merged_at])
    timeline = _cli(
        target,
        "as-of",
        "--customer",
        story.survivor,
        "--timeline",
        "--position",
        str(merged_at),
        "--page-size",
        "2",
    )
    assert timeline.returncode == 0, timeline.stderr
    rows = [json.loads(line) for line in timeline.stdout.splitlines()]
    assert rows == [_plain(entry) for entry in story.timelines[merged_at]]


def test_the_cli_prints_a_table_on_a_terminal(story: Story) -> None:
    stub = audit_service_pb2_grpc.AuditServiceStub(story.auditor_channel)
    position = story.before_transfer
    args = audit_cli.parser().parse_args(
        ["as-of", "--case", story.case_id, "--position", str(position)]
    )
    out = io.StringIO()
    assert audit_cli.run(stub, args, out, as_json=False) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        f"case {story.case_id} as of global position {position}"
        f" (its last event: {story.cases[position].last_position})"
    )
    assert (
        "  assignee" in out.getvalue()
        and lines[1:]
        and all(line.startswith("  ") for line in lines[1:])
    )
    assert any(line.split() == ["assignee", "agent-7"] for line in lines)
    args = audit_cli.parser().parse_args(
        ["as-of", "--customer", story.survivor, "--timeline", "--position", str(position)]
    )
    out = io.StringIO()
    assert audit_cli.run(stub, args, out, as_json=False) == 0
    rows = out.getvalue().splitlines()
    assert [int(row.split()[0]) for row in rows] == [
        e.global_position for e in story.timelines[position]
    ]


def test_the_cli_says_what_went_wrong_and_exits_2(story: Story) -> None:
    target = story.target
    beyond = _cli(target, "as-of", "--case", story.case_id, "--position", "999999")
    assert beyond.returncode == 2
    assert "INVALID_ARGUMENT: as_of.global_position" in beyond.stderr
    missing = _cli(target, "as-of", "--case", "ghost", "--position", "1")
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr
    no_point = _cli(target, "as-of", "--case", story.case_id)
    assert no_point.returncode == 2 and "--position" in no_point.stderr
    wrong = _cli(target, "as-of", "--case", story.case_id, "--timeline", "--position", "1")
    assert wrong.returncode == 2 and "--timeline needs --customer" in wrong.stderr
