"""`crm-server`: the gRPC services it is told to serve (all four by default), stores, projector.

It registers gRPC health checking and server reflection, logs where it listens, and on SIGTERM or
Ctrl-C stops taking calls, lets running calls finish within a grace period, stops the deadline
process and the projector and closes the stores.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from crm import logs
from crm.settings import (
    COMPENSATION_LIMITS_FILE,
    DATA_DIR,
    DEADLINE_CHECKPOINT_URL,
    DEADLINES,
    EARLIEST_OCCURRED_AT,
    EVENT_STORE_URL,
    GRACE_SECONDS,
    HEALTH_LISTEN,
    LISTEN,
    LOG_FORMAT,
    MAX_CONCURRENT_CALLS,
    PROJECTOR,
    READ_STORE_URL,
    SEALING,
    SECURITY,
    SERVICES,
    SLA_POLICY_FILE,
    Settings,
)
from crm.startup import SettingsParser, exit_on_error
from crm.urls import redacted
from services.bootstrap import Server, build_server

PROG = "crm-server"
USES = (
    LISTEN,
    HEALTH_LISTEN,
    SERVICES,
    DATA_DIR,
    EVENT_STORE_URL,
    READ_STORE_URL,
    LOG_FORMAT,
    SLA_POLICY_FILE,
    COMPENSATION_LIMITS_FILE,
    PROJECTOR,
    DEADLINES,
    DEADLINE_CHECKPOINT_URL,
    GRACE_SECONDS,
    MAX_CONCURRENT_CALLS,
    EARLIEST_OCCURRED_AT,
    *SECURITY,
    *SEALING,
)

log = logging.getLogger("crm.server")


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        asyncio.run(run(settings))


async def run(settings: Settings) -> None:
    """Build the server on this event loop (a StartupError leaves it unserved), then serve."""
    await serve(await build_server(settings), settings)


async def serve(server: Server, settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order."""
    system = server.system
    if system.projector is not None:
        system.projector.start()
    if system.deadlines is not None:
        system.deadlines.start()
    if system.sealer is not None:
        system.sealer.start()
    await server.grpc.start()
    host = settings.listen.rsplit(":", 1)[0]
    log.info(
        "listening on %s:%d",
        host,
        server.port,
        extra={
            "port": server.port,
            "services": list(settings.services),
            "event_store": redacted(settings.event_store_url),  # a server URL may hold a password
            "view_store": redacted(settings.read_store_url),
        },
    )
    if server.grpc.health_port is not None:
        health_host = settings.health_listen.rsplit(":", 1)[0]
        log.info(
            "health checks in plaintext on %s:%d",
            health_host,
            server.grpc.health_port,
            extra={"health_port": server.grpc.health_port},
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        log.info("received %s, shutting down", signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await stop.wait()
    await server.grpc.stop(settings.grace_seconds)
    system.close()
    log.info("stopped")


if __name__ == "__main__":
    main()
