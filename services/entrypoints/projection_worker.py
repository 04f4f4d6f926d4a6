"""`crm-projection-worker`: one faust worker of one named projection, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio

import faust

from crm import logs
from crm.kafka_admin import ensure_topics
from crm.settings import (
    KAFKA_BOOTSTRAP,
    KAFKA_PARTITIONS,
    KAFKA_REPLICATION_FACTOR,
    KAFKA_SESSION_TIMEOUT,
    LOG_FORMAT,
    PROJECTION,
    READ_STORE_URL,
    TOPIC_NAMESPACE,
)
from crm.startup import SettingsParser, exit_on_error
from crm.wire import topic_names
from services.bootstrap import ProjectionWorker, build_projection_worker

PROG = "crm-projection-worker"
USES = (
    PROJECTION,
    READ_STORE_URL,
    KAFKA_BOOTSTRAP,
    KAFKA_PARTITIONS,
    KAFKA_REPLICATION_FACTOR,
    TOPIC_NAMESPACE,
    KAFKA_SESSION_TIMEOUT,
    LOG_FORMAT,
)


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        worker = build_projection_worker(settings)
    try:
        run(worker)
    finally:
        worker.view_store.close()


def run(worker: ProjectionWorker) -> None:
    """Create the topics if missing, then hand over to faust, which handles the signals."""
    settings = worker.settings
    asyncio.run(
        ensure_topics(
            settings.bootstrap,
            topic_names(settings.namespace),
            settings.partitions,
            replication_factor=settings.replication_factor,
        )
    )
    runner = faust.Worker(worker.app, loglevel="info", override_logging=False, quiet=True)
    runner.spinner = None  # logs are structured lines; no terminal spinner on stdout
    runner.execute_from_commandline()


if __name__ == "__main__":
    main()
