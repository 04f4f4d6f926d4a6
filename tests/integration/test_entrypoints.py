"""Each process as a real command: its --help, the data dir it derives, one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from crm.eventstore.sqlite import SqliteEventStore
from crm.settings import used
from services.entrypoints import (
    admin,
    deadline_worker,
    projection_worker,
    rebuild,
    relay,
    server,
    token,
    what_if,
)
from tests.support import T0, EventLog, opened, registered

ENTRYPOINTS = {
    "server": server.USES,
    "relay": relay.USES,
    "projection_worker": projection_worker.USES,
    "deadline_worker": deadline_worker.USES,
    "what_if": what_if.USES,
    "rebuild": rebuild.USES,
    "admin": admin.USES,
    "token": token.USES,
}
EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "sla-policy.example.json"


def launch(
    name: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m services.entrypoints.<name> args...`, with no CRM_* variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return subprocess.run(
        [sys.executable, "-m", f"services.entrypoints.{name}", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", ENTRYPOINTS)
def test_help_lists_the_settings_the_process_reads(name: str) -> None:
    done = launch(name, "--help")
    assert done.returncode == 0, done.stderr
    for setting in used(ENTRYPOINTS[name]):
        assert setting.flag in done.stdout and setting.env in done.stdout


@pytest.mark.parametrize(
    ("name", "args", "env", "named"),
    [
        ("relay", [], {"CRM_KAFKA_PARTITIONS": "abc"}, "--partitions / CRM_KAFKA_PARTITIONS"),
        ("projection_worker", ["--partitions", "0"], {}, "--partitions / CRM_KAFKA_PARTITIONS"),
        (
            "relay",
            [],
            {"CRM_KAFKA_REPLICATION_FACTOR": "0"},
            "--replication-factor / CRM_KAFKA_REPLICATION_FACTOR",
        ),
        ("server", ["--log-format", "xml"], {}, "--log-format / CRM_LOG_FORMAT"),
        ("server", ["--listen", "localhost"], {}, "--listen / CRM_LISTEN"),
        (
            "server",
            ["--event-store-url", "mysql://db/crm"],
            {},
            "--event-store-url / CRM_EVENT_STORE_URL: unsupported URL",
        ),
        (
            "server",
            ["--event-store-url", "postgresql://crm:s3cret@127.0.0.1:1/crm"],
            {},
            "--event-store-url / CRM_EVENT_STORE_URL: postgresql://crm:***@127.0.0.1:1/crm:"
            " cannot connect to PostgreSQL at 127.0.0.1:1/crm",
        ),
        (
            "relay",
            [],
            {"CRM_EVENT_STORE_URL": "postgres://crm@127.0.0.1:notaport/crm"},
            "--event-store-url / CRM_EVENT_STORE_URL: postgres://crm@127.0.0.1:notaport/crm:"
            " malformed PostgreSQL URL",
        ),
        (
            "deadline_worker",
            [],
            {"CRM_SLA_POLICY_FILE": "missing.json"},
            "--sla-policy-file / CRM_SLA_POLICY_FILE: no file 'missing.json'",
        ),
        (
            "deadline_worker",
            ["--sla-policy-file", "broken.json"],
            {},
            "--sla-policy-file / CRM_SLA_POLICY_FILE: broken.json: $: not valid JSON",
        ),
        (
            "server",
            ["--compensation-limits-file", "broken.json"],
            {},
            "--compensation-limits-file / CRM_COMPENSATION_LIMITS_FILE: broken.json",
        ),
        ("server", ["--auth", "maybe"], {}, "--auth / CRM_AUTH: 'maybe' is not one of jwt, off"),
        (
            "server",
            ["--token-keys", "broken.json"],
            {},
            "--token-keys / CRM_TOKEN_KEYS: 'broken.json' is neither a JWKS",
        ),
        (
            "server",
            [],
            {"CRM_TLS_CERT": "broken.json"},
            "--tls-key / CRM_TLS_KEY: give --tls-cert and --tls-key together",
        ),
        (
            "server",
            ["--tls-cert", "broken.json", "--tls-key", "broken.json"],
            {},
            "--tls-cert / CRM_TLS_CERT: broken.json: is not a PEM certificate chain",
        ),
        (
            "server",
            ["--tls", "off", "--tls-client-ca", "broken.json"],
            {},
            "--tls-client-ca / CRM_TLS_CLIENT_CA: needs TLS",
        ),
        ("server", ["--max-request-bytes", "10"], {}, "--max-request-bytes / CRM_MAX_REQUEST"),
        ("server", ["--seal-key", "broken.json"], {}, "--seal-key / CRM_SEAL_KEY: "),
        (
            "server",
            ["--seal-every-events", "-1"],
            {},
            "--seal-every-events / CRM_SEAL_EVERY_EVENTS",
        ),
        (
            "token",
            ["--role", "agent", "--subject", "agent-7"],
            {},
            "--data-dir / CRM_DATA_DIR: no development key",
        ),
        (
            "what_if",
            ["--policy-file", "broken.json", "--since", "2026-05-01", "--until", "2026-06-01"],
            {},
            "--policy-file: broken.json: $: not valid JSON",
        ),
    ],
)
def test_a_wrong_value_stops_the_process_with_one_line_and_status_2(
    tmp_path: Path, name: str, args: list[str], env: dict[str, str], named: str
) -> None:
    (tmp_path / "broken.json").write_text("{")
    done = launch(name, *args, env={"CRM_DATA_DIR": str(tmp_path / "data"), **env}, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"crm-{name.replace('_', '-')}: {named}"), done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr


def test_a_tool_reads_the_event_store_in_the_data_dir(tmp_path: Path) -> None:
    """CRM_DATA_DIR alone points every process at <data-dir>/events.db, not only the server."""
    store = SqliteEventStore(tmp_path / "events.db")
    EventLog(store, start=T0).record_all(registered("c-1"), opened("k-1", "c-1"))
    store.close()
    done = launch(
        "what_if",
        *("--policy-file", str(EXAMPLE_POLICY), "--scratch", str(tmp_path / "scratch.db")),
        *("--since", "2026-03-01", "--until", "2026-04-01"),
        env={"CRM_DATA_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    counts = next(line for line in done.stdout.splitlines() if line.startswith("cases opened"))
    assert counts.split()[-2:] == ["1", "1"]


@pytest.mark.parametrize(("name", "file"), [("server", "events.db"), ("server", "views.db")])
def test_a_store_file_that_is_not_a_database_stops_the_process_with_one_line(
    tmp_path: Path, name: str, file: str
) -> None:
    (tmp_path / file).write_bytes(b"not a database, " * 400)

    done = launch(name, "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0")

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    setting = "--event-store-url" if file == "events.db" else "--read-store-url"
    assert setting in lines[0] and "not a database" in lines[0]


@pytest.mark.parametrize("holder", ["socket", "grpc server"])
def test_a_listen_address_in_use_stops_the_server_with_one_line_and_status_2(
    tmp_path: Path, holder: str
) -> None:
    """Also when another gRPC server holds the port: SO_REUSEPORT would let both listen."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    other = None
    if holder == "socket":
        taken.listen()
    else:
        taken.close()
        other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        assert other.add_insecure_port(f"127.0.0.1:{port}") == port
        other.start()
    try:
        done = launch(
            "server", "--listen", f"127.0.0.1:{port}", env={"CRM_DATA_DIR": str(tmp_path)}
        )
    finally:
        taken.close()
        if other is not None:
            other.stop(None)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    # gRPC logs a line of its own first.
    assert done.stderr.splitlines()[-1] == (
        f"crm-server: --listen / CRM_LISTEN: cannot listen on 127.0.0.1:{port}: "
        "in use, or not an address of this machine"
    )


def _read_only(path: Path) -> None:
    """No write bit for anyone: the server must refuse it even when it runs as root."""
    path.chmod(0o555 if path.is_dir() else 0o444)


@pytest.mark.parametrize(
    ("made_read_only", "named", "said"),
    [
        ("data dir", "--data-dir / CRM_DATA_DIR: ", "the directory is read-only"),
        ("events.db", "--event-store-url / CRM_EVENT_STORE_URL: ", "the file is read-only"),
        ("views.db", "--read-store-url / CRM_READ_STORE_URL: ", "the file is read-only"),
    ],
)
def test_a_read_only_store_stops_the_server_with_one_line_and_status_2(
    tmp_path: Path, made_read_only: str, named: str, said: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if made_read_only == "data dir":
        SqliteEventStore(data_dir / "events.db").close()
        _read_only(data_dir)
    else:
        SqliteEventStore(data_dir / made_read_only).close()  # any SQLite file will do
        _read_only(data_dir / made_read_only)
    try:
        done = launch("server", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0")
    finally:
        data_dir.chmod(0o755)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"crm-server: {named}"), lines[0]
    assert said in lines[0] and "make it writable" in lines[0], lines[0]
    assert "Traceback" not in done.stderr
