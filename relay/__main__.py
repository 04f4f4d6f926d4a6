"""`crm-relay`: run the relay as a process of its own until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from crm import logs
from crm.eventstore.factory import open_event_store
from crm.urls import sqlite_path
from relay.checkpoint import RelayCheckpoint
from relay.publisher import Relay
from services.bootstrap import CODEC

log = logging.getLogger("crm.relay")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crm-relay", description=__doc__)
    env = os.environ.get
    parser.add_argument(
        "--event-store-url", default=env("CRM_EVENT_STORE_URL", "sqlite:///var/events.db")
    )
    parser.add_argument(
        "--checkpoint-url", default=env("CRM_RELAY_CHECKPOINT_URL", "sqlite:///var/relay.db")
    )
    parser.add_argument("--bootstrap", default=env("CRM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--partitions", type=int, default=int(env("CRM_KAFKA_PARTITIONS", "6")))
    parser.add_argument("--namespace", default=env("CRM_TOPIC_NAMESPACE", ""))
    parser.add_argument(
        "--log-format", choices=("auto", "json", "text"), default=env("CRM_LOG_FORMAT", "auto")
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_format)
    store = open_event_store(args.event_store_url)
    checkpoint = RelayCheckpoint(sqlite_path(args.checkpoint_url, "checkpoint_url"), "relay")
    relay = Relay(
        store,
        checkpoint,
        args.bootstrap,
        partitions=args.partitions,
        namespace=args.namespace,
        codec=CODEC,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        log.info("relay started", extra={"bootstrap": args.bootstrap, "namespace": args.namespace})
        await relay.run(stop)

    try:
        asyncio.run(run())
    finally:
        checkpoint.close()
        store.close()
        log.info("relay stopped")


if __name__ == "__main__":
    main()
