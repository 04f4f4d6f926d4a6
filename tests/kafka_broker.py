"""The `kafka_broker` fixture: one real Kafka broker for the whole test session, started on demand.

Starting a JVM broker takes seconds, so every test that needs Kafka shares one; tests keep apart by
using their own topic and group names. The broker comes from `deploy/kafka/local_kafka.py`, loaded
by path because `deploy/` is not a Python package. Registered as a plugin by tests/conftest.py, so
it also reports the start-up time in the terminal summary.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

LOCAL_KAFKA = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "local_kafka.py"
START_TIMES = pytest.StashKey[list[str]]()


def _load_local_kafka() -> ModuleType:
    """Import deploy/kafka/local_kafka.py by its path, once per process."""
    name = "local_kafka"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LOCAL_KAFKA)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LOCAL_KAFKA}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class KafkaBroker(Protocol):
    """What tests use of deploy/kafka/local_kafka.py's LocalKafka.

    Spelled out here because mypy sees that file under two names when it is both checked by path
    and imported from here; the class is loaded by path at run time.
    """

    data_dir: Path
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str: ...

    def start(self, timeout: float = 60) -> None: ...

    def stop(self, timeout: float = 30) -> None: ...

    def restart(self, timeout: float = 60) -> None: ...


def note_start(config: pytest.Config, what: str, seconds: float) -> None:
    """Remember a shared server's start time for the terminal summary."""
    config.stash.setdefault(START_TIMES, []).append(f"{what} in {seconds:.1f}s")


@pytest.fixture(scope="session")
def kafka_broker(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[KafkaBroker]:
    """A started single-node broker on free ports, stopped when the session ends."""
    local_kafka = _load_local_kafka()
    missing: list[str] = local_kafka.missing_tools()
    if missing:
        # Not a skip: the Kafka path is part of what the suite guards, and CI has both tools.
        pytest.fail(f"a local Kafka broker needs {' and '.join(missing)} on PATH")
    broker: KafkaBroker = local_kafka.LocalKafka(tmp_path_factory.mktemp("kafka"))
    started = time.monotonic()
    broker.start()
    seconds = time.monotonic() - started
    note_start(pytestconfig, f"kafka broker started on {broker.bootstrap}", seconds)
    try:
        yield broker
    finally:
        broker.stop()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say how long the shared servers took to start: the cost every session using them pays."""
    for line in config.stash.get(START_TIMES, []):
        terminalreporter.write_line(line)
