"""`make run-distributed`: the distributed shape on one machine, stopped together on Ctrl-C.

Starts a local Kafka broker (KRaft), the gRPC server with its in-process projector and deadline
process off, the relay (event store -> Kafka), one worker per projection (Kafka -> view store) and
the deadline worker; the query API reads the view store the projection workers write. On Ctrl-C
or SIGTERM it stops them in reverse order.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType, ModuleType

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
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default=env("CRM_LISTEN", "127.0.0.1:50051"))
    parser.add_argument("--data-dir", type=Path, default=Path(env("CRM_DATA_DIR", "var")))
    parser.add_argument("--kafka-port", type=int, default=int(env("CRM_KAFKA_PORT", "9092")))
    parser.add_argument("--partitions", type=int, default=int(env("CRM_KAFKA_PARTITIONS", "6")))
    args = parser.parse_args()
    data: Path = args.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)

    broker = _local_kafka().LocalKafka(data / "kafka", port=args.kafka_port)
    broker.start()
    bootstrap: str = broker.bootstrap
    shared = {
        **os.environ,
        "CRM_KAFKA_BOOTSTRAP": bootstrap,
        "CRM_KAFKA_PARTITIONS": str(args.partitions),
        "CRM_EVENT_STORE_URL": f"sqlite:///{data / 'events.db'}",
        "CRM_READ_STORE_URL": f"sqlite:///{data / 'views.db'}",
        "CRM_RELAY_CHECKPOINT_URL": f"sqlite:///{data / 'relay.db'}",
    }
    commands = {
        "relay": [sys.executable, "-m", "relay"],
        **{
            f"worker-{name}": [sys.executable, "-m", "projections.workers", "--projection", name]
            for name in PROJECTION_NAMES
        },
        "deadlines": [sys.executable, "-m", "services.sla"],
        "server": [
            *(sys.executable, "-m", "services.server", "--projector", "off", "--deadlines", "off"),
            *("--listen", args.listen, "--data-dir", str(data)),
        ],
    }
    children = {name: subprocess.Popen(cmd, env=shared) for name, cmd in commands.items()}
    print(f"distributed system up: gRPC on {args.listen}, Kafka on {bootstrap}", flush=True)

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
            # Both resume from their checkpoints, so a restart loses and doubles nothing.
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
