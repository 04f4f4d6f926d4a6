"""Seals through a real server and `crm-audit` with an auditor's token: listing and keeping seals,
verifying the whole store against the newest seal and against a kept one after the store's rows
(and its own seals) were tampered with, tables on a terminal, JSON when piped, exit codes."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bench.server_thread import ServerThread
from crm.identity import Role
from crm.seals import Seal, SealVerifier
from crm.settings import Settings
from crm.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
)
from services.bootstrap import System, build_system
from services.entrypoints import audit
from tests.grpc_client import Client

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    system: System
    server: ServerThread
    client: Client
    data_dir: Path
    token: Path
    case_ids: list[str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """crm-audit in a process of its own; its output is a pipe, so it writes JSON lines."""
        return subprocess.run(
            [
                *(sys.executable, "-m", "services.entrypoints.audit"),
                *("--target", self.server.target, "--token-file", str(self.token), *args),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=ROOT,
        )

    def on_terminal(self, *args: str) -> tuple[int, str]:
        """crm-audit's output as a terminal gets it (the table form)."""
        parsed = audit.parser().parse_args(
            ["--target", self.server.target, "--token-file", str(self.token), *args]
        )
        out = io.StringIO()
        with audit._channel(parsed) as channel:
            status = audit.run(
                audit_service_pb2_grpc.AuditServiceStub(channel), parsed, out, as_json=False
            )
        return status, out.getvalue()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    system = build_system(
        Settings.defaults(data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False)
    )
    server = ServerThread(system)
    client = Client(server.access, prefix="seals")
    token = tmp_path / "auditor.token"
    token.write_text(server.access.token(Role.AUDITOR, "auditor-1"))
    cases = [client.customer_with_a_case("Mei") for _ in range(3)]
    try:
        yield Served(system, server, client, tmp_path, token, cases)
    finally:
        client.close()
        server.stop(1)
        system.close()


def test_seals_are_listed_kept_and_verify_offline(served: Served, tmp_path: Path) -> None:
    assert served.system.sealer is not None
    seal = served.system.sealer.seal_once()
    assert seal is not None and seal.count == served.system.store.last_position() == 6
    kept = tmp_path / "kept"

    listed = served.cli("seals", "--save", str(kept))

    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert Seal.from_dict(json.loads(line)) == seal
    assert Seal.from_dict(json.loads((kept / f"seal-{seal.position}.json").read_text())) == seal
    # The kept public key checks the kept seal outside the system.
    key = load_pem_public_key((kept / "seal-key.pem").read_bytes())
    verifier = SealVerifier(key)  # type: ignore[arg-type]
    assert verifier.problem(seal) == ""
    checked = _outside(kept / f"seal-{seal.position}.json", kept / "seal-key.pem")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: seal at global position {seal.position}: 6 events")
    forged = dict(json.loads((kept / f"seal-{seal.position}.json").read_text()), count=5)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused = _outside(tmp_path / "forged.json", kept / "seal-key.pem")
    assert refused.returncode == 1 and "altered or forged" in refused.stderr
    status, table = served.on_terminal("seals")
    assert status == 0
    assert f"1 seals, signed with key {verifier.key_id}" in table
    assert f"{seal.position:>10}  {seal.count:>8}" in table


def _outside(seal: Path, key: Path) -> subprocess.CompletedProcess[str]:
    """deploy/verify_seal.py, as an auditor runs it outside the system."""
    script = ROOT / "deploy" / "verify_seal.py"
    return subprocess.run(
        [sys.executable, str(script), str(seal), str(key)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_whole_store_verifies_and_a_kept_seal_pinpoints_a_removed_case(
    served: Served, tmp_path: Path
) -> None:
    assert served.system.sealer is not None
    seal = served.system.sealer.seal_once()
    assert seal is not None
    kept = tmp_path / "kept"
    assert served.cli("seals", "--save", str(kept)).returncode == 0
    verified = served.cli("verify", "--all")
    assert verified.returncode == 0, verified.stderr
    reply = json.loads(verified.stdout)
    assert reply["ok"] is True and reply["events_checked"] == "6"
    status, table = served.on_terminal("verify", "--all")
    assert status == 0
    assert table.startswith(
        f"ok: 6 events in 6 streams checked against seal at global position {seal.position}"
    )

    # Behind the server's back: the second case's stream goes, and so do the store's own seals.
    stream = f"case-{served.case_ids[1]}"
    with sqlite3.connect(served.data_dir / "events.db") as raw:
        (position,) = raw.execute(
            "SELECT global_position FROM events WHERE stream = ?", (stream,)
        ).fetchone()
        raw.execute("DELETE FROM events WHERE stream = ?", (stream,))
    newest = served.cli("verify", "--all")
    assert newest.returncode == 1
    first = json.loads(newest.stdout)["first_break"]
    assert (first["stream"], first["revision"], first["global_position"]) == (
        stream,
        "0",
        str(position),
    )
    assert first["problem"].startswith("missing")
    with sqlite3.connect(served.data_dir / "events.db") as raw:
        raw.execute("DELETE FROM seals")
    assert served.cli("verify", "--all").returncode == 0  # nothing in the store to compare with
    against_kept = served.cli("verify", "--all", "--seal", str(kept / f"seal-{seal.position}.json"))
    assert against_kept.returncode == 1
    found = json.loads(against_kept.stdout)
    assert found["exact"] is False
    assert any("keeps no seal" in b["problem"] for b in found["breaks"])
    assert any("5 events found, 6 sealed" in b["problem"] for b in found["breaks"])
    status, table = served.on_terminal(
        "verify", "--all", "--seal", str(kept / f"seal-{seal.position}.json")
    )
    assert status == 1 and table.startswith("BROKEN: 5 events")
    assert "the store's own seals do not hold" in table


def test_the_cli_says_what_is_wrong_and_exits_2(served: Served, tmp_path: Path) -> None:
    misplaced = served.cli("verify", "--customer", "c-1", "--seal", "x.json")
    assert misplaced.returncode == 2 and "--seal goes with --all" in misplaced.stderr
    missing = served.cli("verify", "--all", "--seal", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "none.json" in missing.stderr
    (tmp_path / "bad.json").write_text('{"position": 1}')
    bad = served.cli("verify", "--all", "--seal", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "not a kept seal" in bad.stderr
    (tmp_path / "zero.json").write_text(
        json.dumps({"position": 0, "count": 0, "head": "0" * 64, "sealed_at": "x"})
    )
    refused = served.cli("verify", "--all", "--seal", str(tmp_path / "zero.json"))
    assert refused.returncode == 2 and "INVALID_ARGUMENT: seal" in refused.stderr


def test_only_auditors_and_admins_may_list_seals_or_verify_the_store(served: Served) -> None:
    agent = served.data_dir / "agent.token"
    agent.write_text(served.server.access.token(Role.AGENT, "agent-1"))
    as_agent = subprocess.run(
        [
            *(sys.executable, "-m", "services.entrypoints.audit"),
            *("--target", served.server.target, "--token-file", str(agent), "seals"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )
    assert as_agent.returncode == 2 and "PERMISSION_DENIED" in as_agent.stderr


def test_list_seals_refuses_a_limit_out_of_range(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        served.client.audit.ListSeals(audit_service_pb2.ListSealsRequest(limit=5000))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in (refused.value.details() or "")


def test_json_may_follow_the_subcommand_and_the_outside_check_says_how_to_call_it(
    served: Served,
) -> None:
    before = audit.parser().parse_args(["--json", "seals"])
    after = audit.parser().parse_args(["seals", "--json"])
    plain = audit.parser().parse_args(["seals"])
    assert (before.json, after.json, plain.json) == (True, True, False)
    listed = served.cli("seals", "--json")
    assert listed.returncode == 0, listed.stderr
    called = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "verify_seal.py")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert called.returncode == 1
    assert called.stderr.startswith("usage: python verify_seal.py SEAL.json KEY.pem")
