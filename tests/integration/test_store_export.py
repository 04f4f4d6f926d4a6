"""The whole store exported (ExportStore, `crm-audit export --all`) and checked against a kept seal
outside the system by deploy/verify_export.py --seal under `python -I`: an intact export passes;
every tampering the issue lists, in a copy of the export or in the store's rows, fails naming the
check (content hash, stream chain, order, count, position, head).

The story: c0 k0 n n c1 k1 c2 k2 (global positions 1-8: customers, cases, two notes on case k0),
sealed at 8; then a note on case k1 (9), after the seal.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.blocking import BlockingPool
from crm.envelope import stored_content_hash
from crm.identity import Role
from crm.seals import Seal
from crm.settings import Settings
from crm.v1 import (
    audit_service_pb2,
    case_service_pb2,
)
from services.audit.grpc_api import description
from services.audit.store_export import StoreExport
from services.bootstrap import System, build_system
from tests.grpc_client import Client

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "verify_export.py"
Line = dict[str, Any]


@dataclass
class Story:
    system: System
    server: ServerThread
    client: Client
    data_dir: Path
    token: Path
    cases: list[str]
    seal: Seal
    kept: Path  # the kept seal's file, as `crm-audit seals --save` wrote it

    def cli(self, *args: str, token: Path | None = None) -> subprocess.CompletedProcess[str]:
        """crm-audit in a process of its own (piped: JSON lines)."""
        return subprocess.run(
            [
                *(sys.executable, "-m", "services.entrypoints.audit"),
                *("--target", self.server.target, "--token-file", str(token or self.token)),
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=ROOT,
        )

    def export(self, name: str, *args: str) -> Path:
        path = self.data_dir / name
        done = self.cli("export", "--all", "-o", str(path), *args)
        assert done.returncode == 0, done.stderr
        return path


@pytest.fixture
def story(tmp_path: Path) -> Iterator[Story]:
    system = build_system(
        Settings.defaults(data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False)
    )
    server = ServerThread(system)
    client = Client(server.access, prefix="export")
    token = tmp_path / "auditor.token"
    token.write_text(server.access.token(Role.AUDITOR, "auditor-1"))
    try:
        cases = [client.customer_with_a_case("Ines")]
        _note(client, cases[0])
        _note(client, cases[0])
        cases += [client.customer_with_a_case("Ines"), client.customer_with_a_case("Ines")]
        assert system.sealer is not None
        seal = system.sealer.seal_once()
        assert seal is not None and (seal.position, seal.count) == (8, 8)
        _note(client, cases[1])
        assert system.store.last_position() == 9
        kept = tmp_path / "kept"
        partial = Story(system, server, client, tmp_path, token, cases, seal, kept)
        assert partial.cli("seals", "--save", str(kept)).returncode == 0
        partial.kept = kept / f"seal-{seal.position}.json"
        yield partial
    finally:
        client.close()
        server.stop(1)
        system.close()


def _note(client: Client, case_id: str) -> None:
    client.cases.AddNote(
        case_service_pb2.AddNoteRequest(context=client.context(), case_id=case_id, text="called")
    )


def _outside(export: Path, seal: Path | None) -> subprocess.CompletedProcess[str]:
    """deploy/verify_export.py as an auditor runs it: isolated (-I), no project on the path."""
    return subprocess.run(
        [
            *(sys.executable, "-I", str(SCRIPT), str(export)),
            *(("--seal", str(seal)) if seal else ()),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd="/",
    )


def _read(path: Path) -> list[Line]:
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, lines: list[Line]) -> Path:
    texts = (
        json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for e in lines
    )
    path.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
    return path


def _rehash(line: Line) -> Line:
    """What a forger does so the line's own hash holds again."""
    line["content_hash"] = stored_content_hash(
        line["previous_hash"],
        line["stream"],
        line["revision"],
        line["event_id"],
        line["type"],
        base64.b64decode(line["data_base64"]),
        line["metadata"],
        line["recorded_at"],
    )
    return line


def test_a_whole_store_export_proves_the_kept_seal_outside_the_system(story: Story) -> None:
    path = story.export("store.jsonl")
    lines = _read(path)
    assert [e["global_position"] for e in lines] == list(range(1, 10))

    checked = _outside(path, story.kept)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the 8 events up to 8 chain to the seal's head" in checked.stdout
    assert _outside(path, None).returncode == 0
    # The same lines ExportHistory gives for a case, in the same form.
    case = story.client.audit.ExportHistory(
        audit_service_pb2.ExportHistoryRequest(
            subject=audit_service_pb2.AuditSubject(case_id=story.cases[0])
        )
    )
    texts = path.read_text(encoding="utf-8").splitlines()
    assert [line.json for line in case] == [t for t in texts if f'"case-{story.cases[0]}"' in t]
    # Piped to standard output, the same lines.
    piped = story.cli("export", "--all")
    assert piped.returncode == 0 and piped.stdout.splitlines() == texts


def _case_stream(story: Story, n: int) -> str:
    return f"case-{story.cases[n]}"


def _altered(lines: list[Line], story: Story) -> list[Line]:
    lines[2]["metadata"]["actor_id"] = "someone-else"
    return lines


def _last_of_stream_deleted(lines: list[Line], story: Story) -> list[Line]:
    return [e for e in lines if e["global_position"] != 4]  # case k0 revision 2


def _stream_deleted(lines: list[Line], story: Story) -> list[Line]:
    return [e for e in lines if e["stream"] != _case_stream(story, 0)]


def _sealed_last_deleted(lines: list[Line], story: Story) -> list[Line]:
    return [e for e in lines if e["global_position"] != 8]  # case k2, at the seal's position


def _forged_inserted(lines: list[Line], story: Story) -> list[Line]:
    forged = _rehash(dict(lines[4], stream="case-forged", revision=0, previous_hash="0" * 64))
    for e in lines[4:]:
        e["global_position"] += 1  # make room, as a forger renumbering the store would
    return [*lines[:4], dict(forged, global_position=5), *lines[4:]]


def _swapped(lines: list[Line], story: Story) -> list[Line]:
    first, second = lines[4], lines[5]  # customer c1 and case k1: different streams
    first["global_position"], second["global_position"] = 6, 5
    return [*lines[:4], second, first, *lines[6:]]


def _swapped_lines(lines: list[Line], story: Story) -> list[Line]:
    return [*lines[:4], lines[5], lines[4], *lines[6:]]


def _relinked(lines: list[Line], story: Story) -> list[Line]:
    first, deleted, last = lines[1], lines[2], lines[3]  # case k0 revisions 0, 1, 2
    assert (first["revision"], deleted["revision"], last["revision"]) == (0, 1, 2)
    last["revision"], last["previous_hash"] = 1, first["content_hash"]
    _rehash(last)  # the next event relinked over the deleted one, its hash forged to match
    return [e for e in lines if e is not deleted]


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (_altered, "line 3: case-"),
        (_last_of_stream_deleted, "7 events up to the seal, it has 8 (count)"),
        (_stream_deleted, "5 events up to the seal, it has 8 (count)"),
        (_sealed_last_deleted, "past the seal's position 8, no line there (position)"),
        (_forged_inserted, "the global chain up to here is not the seal's head (head)"),
        (_swapped, "the global chain up to here is not the seal's head (head)"),
        (_swapped_lines, "not after global position 6 (lines out of order)"),
        (_relinked, "7 events up to the seal, it has 8 (count)"),
    ],
)
def test_each_tampering_of_an_export_fails_naming_the_check(
    story: Story, tamper: Any, named: str
) -> None:
    intact = story.export("store.jsonl")
    copy = _write(story.data_dir / "tampered.jsonl", tamper(_read(intact), story))

    checked = _outside(copy, story.kept)

    assert checked.returncode == 1, checked.stdout
    assert named in checked.stdout
    if tamper is _altered:
        assert "does not hash to its content_hash (altered)" in checked.stdout
    if named.endswith(("(count)", "(position)", "(head)")):
        assert "altered, inserted, removed or reordered" in checked.stdout


def test_an_export_of_a_store_missing_a_stream_fails_against_the_kept_seal(story: Story) -> None:
    with sqlite3.connect(story.data_dir / "events.db") as raw:
        raw.execute("DELETE FROM events WHERE stream = ?", (_case_stream(story, 1),))  # pos 6
    deleted = _outside(story.export("deleted.jsonl"), story.kept)
    assert deleted.returncode == 1
    assert "7 events up to the seal, it has 8 (count)" in deleted.stdout


def test_an_export_of_a_reordered_store_fails_against_the_kept_seal(story: Story) -> None:
    with sqlite3.connect(story.data_dir / "events.db") as raw:
        # Two events of different streams swap places in the global order (positions 1 and 2).
        raw.execute("UPDATE events SET global_position = -1 WHERE global_position = 1")
        raw.execute("UPDATE events SET global_position = 1 WHERE global_position = 2")
        raw.execute("UPDATE events SET global_position = 2 WHERE global_position = -1")
    swapped = _outside(story.export("swapped.jsonl"), story.kept)
    assert swapped.returncode == 1
    assert "line 8: case-" in swapped.stdout and "(head)" in swapped.stdout
    assert _outside(story.export("swapped.jsonl"), None).returncode == 0  # streams still whole


def test_an_export_that_stops_before_the_seal_cannot_prove_it(story: Story) -> None:
    path = story.export("part.jsonl", "--up-to", "5")
    assert [e["global_position"] for e in _read(path)] == [1, 2, 3, 4, 5]
    assert _outside(path, None).returncode == 0
    checked = _outside(path, story.kept)
    assert checked.returncode == 1
    assert "ends at global position 5, before the seal (position)" in checked.stdout


def test_export_refuses_bad_input_precisely(story: Story) -> None:
    beyond = story.cli("export", "--all", "--up-to", "10")
    assert beyond.returncode == 2
    assert "INVALID_ARGUMENT: up_to: is beyond the store's head, global position 9" in beyond.stderr
    misplaced = story.cli("export", "--case", story.cases[0], "--up-to", "3")
    assert misplaced.returncode == 2 and "--up-to goes with --all" in misplaced.stderr
    for up_to in (2**63, 2**64 - 1):
        with pytest.raises(grpc.RpcError) as refused:
            list(story.client.audit.ExportStore(audit_service_pb2.ExportStoreRequest(up_to=up_to)))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "up_to" in (refused.value.details() or "")
    (story.data_dir / "bad-seal.json").write_text('{"position": "8"}')
    usage = _outside(story.export("store.jsonl"), story.data_dir / "bad-seal.json")
    assert usage.returncode == 1 and "usage" in usage.stderr
    lines = _read(story.data_dir / "store.jsonl")
    lines[0]["global_position"] = "1"
    odd = _outside(_write(story.data_dir / "odd.jsonl", lines), story.kept)
    assert odd.returncode == 1 and "line 1: not an export line (TypeError" in odd.stdout
    missing = _outside(story.data_dir / "store.jsonl", story.data_dir / "none.json")
    assert missing.returncode == 1 and "cannot check: FileNotFoundError" in missing.stderr


def test_only_auditors_and_admins_may_export_the_store(story: Story) -> None:
    agent = story.data_dir / "agent.token"
    agent.write_text(story.server.access.token(Role.AGENT, "agent-1"))
    as_agent = story.cli("export", "--all", token=agent)
    assert as_agent.returncode == 2 and "PERMISSION_DENIED" in as_agent.stderr


def test_the_export_streams_in_batches_and_stops_at_its_end(story: Story) -> None:
    io = BlockingPool(1)

    async def collect(up_to: int) -> list[int]:
        export = StoreExport(story.system.store, io)
        end = await export.end(audit_service_pb2.ExportStoreRequest(up_to=up_to))
        lines = export.lines(end, description, batch=2)
        return [json.loads(line.json)["global_position"] async for line in lines]

    try:
        assert asyncio.run(collect(0)) == list(range(1, 10))
        assert asyncio.run(collect(7)) == list(range(1, 8))
    finally:
        io.shutdown()


def test_a_row_that_no_longer_decodes_stops_the_export_with_data_loss(story: Story) -> None:
    with sqlite3.connect(story.data_dir / "events.db") as raw:
        raw.execute("UPDATE events SET metadata = '{not json' WHERE global_position = 3")
    stopped = story.cli("export", "--all", "-o", str(story.data_dir / "broken.jsonl"))
    assert stopped.returncode == 2
    assert "DATA_LOSS" in stopped.stderr and "INTERNAL" not in stopped.stderr, stopped.stderr
    assert "revision 1 (global position 3): its stored metadata no longer decodes" in stopped.stderr
