"""A server pointed at a KurrentDB it cannot use stops at start: one line, status 2, no password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # Port 1 on this machine: nothing listens there, so the connection is refused at once.
        ("kurrentdb://admin:s3cret@127.0.0.1:1?tls=false", "cannot reach KurrentDB at"),
        ("esdb://admin:s3cret@localhost:21x3", "which is not host:port"),
        ("kurrentdb://admin:s3cret@localhost:2113?tls=false&Colour=blue", "is malformed"),
    ],
)
def test_an_unusable_kurrentdb_url_stops_the_server_with_one_line(
    tmp_path: Path, url: str, said: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    done = subprocess.run(
        [sys.executable, "-m", "services.entrypoints.server"],
        env={**clean, "CRM_DATA_DIR": str(tmp_path), "CRM_EVENT_STORE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("crm-server: --event-store-url / CRM_EVENT_STORE_URL: ")
    assert said in done.stderr
    assert "s3cret" not in done.stderr and "admin:***@" in done.stderr
