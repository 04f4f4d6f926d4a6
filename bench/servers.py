"""The two servers `make bench` calls: the real embedded system, and a bare grpc.aio echo baseline.

Both run on an event loop in a thread of their own, as `crm-server` would on its main loop; the
bench's callers run on another loop, so both servers share the process with their callers alike.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench.server_thread import ServerThread
from crm.command_handling import CommandContext
from crm.settings import Settings
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from services.bootstrap import System, build_system
from services.case.commands import AddNote, OpenCase
from services.case.events import Category
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment

ECHO_METHOD = "/bench.Echo/Echo"
AGENT = Actor(ActorKind.AGENT, "agent-1")


def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


class EchoServer:
    """A grpc.aio server with one unary method returning its request: the floor of a call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="echo", daemon=True)
        self._thread.start()
        self.port = self._call(self._start())
        self.target = f"127.0.0.1:{self.port}"

    async def _start(self) -> int:
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
        )
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((handler,))
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    def _call(self, coroutine: Coroutine[Any, Any, int]) -> int:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._server.stop(0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


@contextmanager
def embedded(data_dir: Path) -> Iterator[tuple[System, ServerThread]]:
    """The system `crm-server` runs (projector and deadline process running) on a free port."""
    system = build_system(Settings.defaults(data_dir=data_dir, listen="127.0.0.1:0"))
    assert system.projector is not None and system.deadlines is not None
    system.projector.start()
    system.deadlines.start()
    server = ServerThread(system)
    try:
        yield system, server
    finally:
        server.stop()
        system.close()


def open_cases(system: System, customers: int, cases: int, prefix: str) -> list[str]:
    """Register customers and open cases on them through the applications; the case ids."""
    now = datetime.now(UTC)
    for c in range(customers):
        system.customers.handle(
            RegisterCustomer(f"{prefix}c-{c}", "Bench", (), "en", Segment.B2C),
            CommandContext(f"{prefix}reg-{c}", AGENT, now),
        )
    ids = [f"{prefix}k-{k}" for k in range(cases)]
    for k, case_id in enumerate(ids):
        system.cases.handle(
            OpenCase(
                case_id,
                f"{prefix}c-{k % customers}",
                Channel.EMAIL,
                Category.USAGE_QUESTION,
                Priority.LOW,
                "s",
                "",
            ),
            CommandContext(f"{prefix}open-{k}", AGENT, now),
        )
    return ids


def add_notes(system: System, case_id: str, count: int) -> None:
    """Grow a case's stream by `count` notes through the application (no gRPC)."""
    now = datetime.now(UTC)
    for i in range(count):
        system.cases.handle(
            AddNote(case_id, f"{case_id}-pre-{i}", "called back"),
            CommandContext(f"{case_id}-pre-{i}", AGENT, now),
        )
