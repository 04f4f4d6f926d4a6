"""The asyncio gRPC server on an event loop in a thread of its own, for synchronous callers.

Tests and `make bench` keep their own clients (blocking, or on a loop of their own); the server
they talk to is the production one, created and stopped on its loop through `call`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from bench.credentials import ClientAccess, suite_security
from crm.tokens import TokenRules
from services.grpc_server import GrpcServer, Served, create_server
from services.server_security import ServerSecurity

T = TypeVar("T")
TIMEOUT = 30.0


class ServerThread:
    """A started server on an ephemeral port (or `listen`); `stop` it, or use it as a context."""

    def __init__(
        self,
        system: Served,
        listen: str = "127.0.0.1:0",
        *,
        security: ServerSecurity | None = None,
        **options: Any,
    ) -> None:
        """`security` defaults to bearer tokens checked against a fresh key, in plaintext."""
        self.security = security or suite_security()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-aio", daemon=True)
        self._thread.start()
        try:
            self.server: GrpcServer = self.call(
                create_server(system, listen, security=self.security, **options)
            )
            self.call(self.server.start())
        except BaseException:
            self._end_loop()
            raise
        self.port = self.server.port
        self.target = f"127.0.0.1:{self.port}"
        authenticator = self.security.authenticator
        self.access = ClientAccess(
            self.target,
            None if authenticator is None else authenticator.keys,
            authenticator.rules if authenticator is not None else TokenRules("crm"),
            None if self.security.tls is None else self.security.tls.certificate_chain,
        )

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def tasks(self) -> int:
        """How many tasks the server's loop runs now: one per call in progress, and a few more."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return self.call(count())

    def stop(self, grace: float = 1.0) -> None:
        """Stop the server as crm-server does (calls get `grace` seconds), then end the loop."""
        if self.loop.is_closed():
            return
        try:
            self.call(self.server.stop(grace), timeout=grace + TIMEOUT)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        self.loop.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
