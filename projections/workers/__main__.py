"""`crm-projection-worker`: one faust worker of one named projection, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import os

import faust

from crm import logs
from crm.kafka_admin import ensure_topics
from crm.wire import topic_names
from projections.catalogue import PROJECTION_NAMES
from projections.store.factory import open_view_store
from projections.workers.app import WorkerSettings, create_app
from services.bootstrap import CODEC


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="crm-projection-worker", description=__doc__)
    parser.add_argument("--bootstrap", default=env("CRM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument(
        "--read-store-url", default=env("CRM_READ_STORE_URL", "sqlite:///var/views.db")
    )
    parser.add_argument(
        "--projection",
        choices=PROJECTION_NAMES,
        default=env("CRM_PROJECTION"),
        required=env("CRM_PROJECTION") is None,
    )
    parser.add_argument("--partitions", type=int, default=int(env("CRM_KAFKA_PARTITIONS", "6")))
    parser.add_argument("--namespace", default=env("CRM_TOPIC_NAMESPACE", ""))
    parser.add_argument(
        "--session-timeout", type=float, default=float(env("CRM_KAFKA_SESSION_TIMEOUT", "6"))
    )
    parser.add_argument(
        "--log-format", choices=("auto", "json", "text"), default=env("CRM_LOG_FORMAT", "auto")
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_format)
    read_store = open_view_store(args.read_store_url)
    settings = WorkerSettings(
        bootstrap=args.bootstrap,
        projection=args.projection,
        namespace=args.namespace,
        partitions=args.partitions,
        session_timeout=args.session_timeout,
    )
    asyncio.run(
        ensure_topics(settings.bootstrap, topic_names(settings.namespace), settings.partitions)
    )
    app = create_app(settings, read_store, CODEC)
    worker = faust.Worker(app, loglevel="info", override_logging=False, quiet=True)
    worker.spinner = None  # logs are structured lines; no terminal spinner on stdout
    try:
        worker.execute_from_commandline()
    finally:
        read_store.close()


if __name__ == "__main__":
    main()
