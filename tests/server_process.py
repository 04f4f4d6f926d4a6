"""`crm-server` as a child process, for the end-to-end tests that kill it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.grpc_client import poll


class ServerProcess:
    """`crm-server` as a child process on a free port, with its log in a file."""

    def __init__(self, data_dir: Path, log_path: Path, *extra: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "services.entrypoints.server"),
                *("--listen", "127.0.0.1:0"),
                *("--data-dir", str(data_dir), "--log-format", "json"),
                *extra,
            ],
            stderr=self._log,
            stdout=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.target = poll(self._listening, timeout=30)

    def _listening(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"server exited early:\n{self.log_path.read_text()}")
        for line in self.log_path.read_text().splitlines():
            record = json.loads(line)
            if record["message"].startswith("listening on"):
                return f"127.0.0.1:{record['port']}"
        return None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        self._log.close()
        return code
