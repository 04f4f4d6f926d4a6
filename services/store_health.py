"""Health that follows the stores: NOT_SERVING while they cannot be reached, SERVING once they can.

A server whose PostgreSQL (or KurrentDB) is away refuses every call with UNAVAILABLE; reporting
itself SERVING meanwhile would keep load balancers sending it calls it can only refuse. So a
server probes its stores with one cheap read every few seconds and reports each service it serves
by what the probe found. The server as a whole ("") stays SERVING: it is alive, and a liveness
probe that restarted it would not bring the database back. A store that reported itself lost for
good (an SQLite file deleted under it) stays NOT_SERVING whatever the probes find.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer  # health.aio

from crm.eventstore.port import EventStore
from projections.store.port import ViewStore

log = logging.getLogger("crm.health")

PROBE_EVERY_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 30.0  # a store that takes longer to answer one read is not serving
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def reach_stores(store: EventStore, views: ViewStore) -> None:
    """One read of each store; raises when either cannot answer."""
    store.last_position()
    views.timeline_watermark()


class StoreHealth:
    """Probes the stores on the server's loop and sets the served services' health from it."""

    def __init__(
        self,
        health: AsyncHealthServicer,
        served: Sequence[str],
        probe: Callable[[], Awaitable[None]],
        every: float = PROBE_EVERY_SECONDS,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self._health = health
        self._served = tuple(served)
        self._probe = probe
        self._every = every
        self._reachable = True
        self.lost_for_good = False
        self._closing = close

    def close(self) -> None:
        """Release the probe's thread; the server calls it once it stopped probing."""
        self._closing()

    @classmethod
    def of_stores(
        cls,
        health: AsyncHealthServicer,
        served: Sequence[str],
        store: EventStore,
        views: ViewStore,
    ) -> StoreHealth:
        """Probes on a thread of their own: on the servicers' pool a probe would queue behind
        the calls of a busy server and time out, reporting a working store as unreachable."""
        prober = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-health")

        async def probe() -> None:
            loop = asyncio.get_running_loop()
            reached = loop.run_in_executor(prober, reach_stores, store, views)
            await asyncio.wait_for(reached, PROBE_TIMEOUT_SECONDS)

        def close() -> None:
            prober.shutdown(wait=False, cancel_futures=True)

        return cls(health, served, probe, PROBE_EVERY_SECONDS, close)

    async def run(self) -> None:
        """Probe until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self._every)

    async def check(self) -> None:
        """Probe once and report the outcome if it changed."""
        try:
            await self._probe()
        except Exception as error:  # whatever a store raises, it did not answer
            if self._reachable:
                said = str(error) or type(error).__name__  # a timeout says nothing itself
                log.warning("stores unreachable, reporting NOT_SERVING: %s", said)
                await self._report(NOT_SERVING)
            self._reachable = False
            return
        if not self._reachable:
            log.info("stores reachable again, reporting SERVING")
            await self._report(SERVING)
        self._reachable = True

    async def _report(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        if self.lost_for_good:
            return
        for name in self._served:
            await self._health.set(name, status)
