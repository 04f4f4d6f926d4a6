"""`crm-relay`: publishes the event store's global order to Kafka until SIGTERM or Ctrl-C.

Several copies may run; the one holding the lease beside the checkpoint publishes, the others
wait as standbys and take over when it is gone (crm/lease.py). A copy that loses its lease stops
publishing and exits with status 1, to be started again as a standby.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading

from crm import logs
from crm.settings import (
    EVENT_STORE_URL,
    KAFKA_BOOTSTRAP,
    KAFKA_PARTITIONS,
    KAFKA_REPLICATION_FACTOR,
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
    KAFKA_REPLICATION_FACTOR,
    TOPIC_NAMESPACE,
    LOG_FORMAT,
)

log = logging.getLogger("crm.relay")
LEASE_CHECK_SECONDS = 1.0


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        process = build_relay(settings)
    try:
        lost = asyncio.run(run(process, settings))
    finally:
        process.close()
        log.info("relay stopped")
    if lost:
        sys.exit(1)


async def run(process: RelayProcess, settings: Settings) -> bool:
    """Wait for the lease, then publish until stopped; True if the lease was lost meanwhile."""
    stop = asyncio.Event()
    stopping = threading.Event()  # the same request, for the thread waiting on the lease
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stop.set()
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    if not process.lease.try_acquire():
        log.info("relay standby: another copy is active; taking over when it is gone")
        if not await asyncio.to_thread(process.lease.wait, stopping):
            return False
    log.info(
        "relay active",
        extra={"bootstrap": settings.kafka_bootstrap, "namespace": settings.topic_namespace},
    )
    lost = asyncio.create_task(_lease_lost(process, stop))
    await process.relay.run(stop)
    lost.cancel()
    return not process.lease.held()


async def _lease_lost(process: RelayProcess, stop: asyncio.Event) -> None:
    """Stop publishing as soon as the lease is gone: another copy may be active by then."""
    while not stop.is_set():
        await asyncio.sleep(LEASE_CHECK_SECONDS)
        if not await asyncio.to_thread(process.lease.held):
            log.error("relay lost its lease; stopping so that only one copy publishes")
            stop.set()


if __name__ == "__main__":
    main()
