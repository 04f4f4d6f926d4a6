"""`make run-distributed`: the distributed shape on one machine, stopped together on Ctrl-C.

Starts a local Kafka broker (KRaft), the gRPC server with its in-process projector and deadline
process off, the relay (event store -> Kafka), one worker per projection (Kafka -> view store) and
the deadline worker; the query API reads the view store the projection workers write. On Ctrl-C
or SIGTERM it stops them in reverse order.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType, ModuleType

from crm.settings import DATA_DIR, KAFKA_PARTITIONS, LISTEN, LOCAL_KAFKA_PORT
from crm.startup import SettingsParser, exit_on_error
from projections.catalogue import PROJECTION_NAMES

HERE = Path(__file__).resolve().parent


def _local_kafka() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_kafka", HERE / "kafka" / "local_kafka.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["local_kafka"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = SettingsParser(
        "run_distributed.py", __doc__, (LISTEN, DATA_DIR, KAFKA_PARTITIONS, LOCAL_KAFKA_PORT)
    )
    with exit_on_error(parser.prog):
        settings, _ = parser.settings()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)

    broker = _local_kafka().LocalKafka(data / "kafka", port=settings.local_kafka_port)
    broker.start()
    bootstrap: str = broker.bootstrap
    # Every process derives its store files from the data dir; these are all they need to agree.
    shared = {
        **os.environ,
        "CRM_DATA_DIR": str(data),
        "CRM_LISTEN": settings.listen,
        "CRM_KAFKA_BOOTSTRAP": bootstrap,
        "CRM_KAFKA_PARTITIONS": str(settings.kafka_partitions),
    }
    entry = [sys.executable, "-m"]
    commands = {
        "relay": [*entry, "services.entrypoints.relay"],
        **{
            f"worker-{name}": [
                *entry,
                "services.entrypoints.projection_worker",
                "--projection",
                name,
            ]
            for name in PROJECTION_NAMES
        },
        "deadlines": [*entry, "services.entrypoints.deadline_worker"],
        "server": [
            *entry,
            "services.entrypoints.server",
            "--projector",
            "off",
            "--deadlines",
            "off",
        ],
    }
    children = {name: subprocess.Popen(cmd, env=shared) for name, cmd in commands.items()}
    print(f"distributed system up: gRPC on {settings.listen}, Kafka on {bootstrap}", flush=True)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.wait(1.0):
        if children["server"].poll() is not None:
            print("the gRPC server exited; stopping the rest", file=sys.stderr, flush=True)
            break
        for name in [name for name in children if name != "server"]:
            # A restart loses and doubles nothing. The relay, the workers and the deadline worker
            # resume from their checkpoints (the deadline worker's holds its open cases' timers);
            # whatever the deadline worker re-reads after its last save asks for commands whose
            # request ids derive from their causes, so what it recorded is not recorded again.
            if children[name].poll() is not None:
                print(f"{name} exited; starting it again", file=sys.stderr, flush=True)
                children[name] = subprocess.Popen(commands[name], env=shared)
    for name in ["server", *reversed([name for name in children if name != "server"])]:
        child = children[name]
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
    broker.stop()
    print("distributed system stopped", flush=True)
    return 0 if stop.is_set() else 1


if __name__ == "__main__":
    sys.exit(main())
