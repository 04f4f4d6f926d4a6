"""A real PostgreSQL server in a temporary directory, for tests, benchmarks and local runs.

It uses this machine's PostgreSQL binaries (Debian's `postgresql` package; `make postgres-binaries`
installs them where missing). `initdb` and `pg_ctl` refuse to run as root, and CI runs as root, so
as root the server runs as the unprivileged `postgres` user (`runuser`); this is also why the tests
do not use pytest-postgresql, which has no such option. The server listens on 127.0.0.1 only, on a
free port, with trust authentication for the one role `crm`: a throwaway server, never a production
one. Stdlib only: tests load this file by path, and `python deploy/postgres/local_postgres.py` runs
a server in the foreground and prints its URL.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
ROLE = "crm"
SERVER_USER = "postgres"  # the unprivileged account Debian's package creates
# Settings for a test server: enough connections for several processes with pools; fsync stays on
# so that crash tests mean what they say.
SERVER_OPTIONS = {
    "listen_addresses": HOST,
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}


class LocalPostgresError(RuntimeError):
    """The binaries are missing, or the server did not start or stop as asked."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: pg_config's answer, Debian's layout, then PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(done.stdout.strip())
        if done.returncode == 0 and (candidate / "pg_ctl").exists():
            return candidate
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if versions:
        return Path(versions[0]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class LocalPostgres:
    """One server: `start()` runs initdb and pg_ctl; `stop()` shuts it down, removes its files."""

    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise LocalPostgresError(
                "PostgreSQL's binaries (initdb, pg_ctl) were not found:"
                " run `make postgres-binaries` (apt-get install postgresql)"
            )
        self.bindir = bindir
        self._owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="crm-postgres-"))
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "socket"
        self.log_file = self.directory / "server.log"
        self.port = port or free_port()
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The URL of the `crm` database that `start()` creates."""
        return self.database_url(ROLE)

    def database_url(self, database: str) -> str:
        """The URL of one database of this server, for the `crm` role."""
        return f"postgresql://{ROLE}@{HOST}:{self.port}/{database}"

    def start(self, timeout: float = 60) -> None:
        """Create the cluster (first start only) and start the server; returns once it accepts."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_root:
            account = pwd.getpwnam(SERVER_USER)
            for path in (self.directory, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", ROLE, "--auth=trust",
                "--encoding=UTF8", "--no-locale", "--no-sync",
            )  # fmt: skip
        options = " ".join(f"-c {name}={value}" for name, value in SERVER_OPTIONS.items())
        options += f" -p {self.port} -k {self.socket_dir}"
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options,
            "-w", "-t", str(int(timeout)), "start",
        )  # fmt: skip
        self._create_database(ROLE)

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (fast shutdown) and, if the directory was ours, remove it."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)),
                "stop", check=False,
            )  # fmt: skip
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; `start()` recovers from the WAL."""
        pid_file = self.data_dir / "postmaster.pid"
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def create_database(self, name: str) -> str:
        """A new empty database on this server; returns its URL."""
        self._create_database(name)
        return self.database_url(name)

    def _create_database(self, name: str) -> None:
        done = self._run(
            "psql", "-h", HOST, "-p", str(self.port), "-U", ROLE, "-d", "postgres", "-tA",
            "-c", f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        )  # fmt: skip
        if done.stdout.strip() != "1":
            self._run("createdb", "-h", HOST, "-p", str(self.port), "-U", ROLE, name)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if self._as_root and tool in ("initdb", "pg_ctl"):
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise LocalPostgresError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}"
            )
        return done

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temp directory")
    parser.add_argument(
        "--check", action="store_true", help="only say whether the binaries are here (exit 0 or 1)"
    )
    arguments = parser.parse_args()
    if arguments.check:
        bindir = find_bindir()
        print(bindir or "PostgreSQL's binaries are missing")
        return 0 if bindir else 1
    server = LocalPostgres(arguments.data_dir, arguments.port)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server.start()
    print(f"PostgreSQL is up: CRM_EVENT_STORE_URL={server.url}", flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
