"""`crm-relay`: publishes the event store's global order to Kafka until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal

from crm import logs
from crm.settings import (
    EVENT_STORE_URL,
    KAFKA_BOOTSTRAP,
    KAFKA_PARTITIONS,
    LOG_FORMAT,
    RELAY_CHECKPOINT_URL,
    TOPIC_NAMESPACE,
    Settings,
)
from crm.startup import SettingsParser, exit_on_error
from services.bootstrap import RelayProcess, build_relay

PROG = "crm-relay"
USES = (
    EVENT_STORE_URL,
    RELAY_CHECKPOINT_URL,
    KAFKA_BOOTSTRAP,
    KAFKA_PARTITIONS,
    TOPIC_NAMESPACE,
    LOG_FORMAT,
)

log = logging.getLogger("crm.relay")


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        process = build_relay(settings)
    try:
        asyncio.run(run(process, settings))
    finally:
        process.close()
        log.info("relay stopped")


async def run(process: RelayProcess, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "relay started",
        extra={"bootstrap": settings.kafka_bootstrap, "namespace": settings.topic_namespace},
    )
    await process.relay.run(stop)


if __name__ == "__main__":
    main()
