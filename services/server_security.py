"""How the gRPC server protects itself: credentials, TLS, request size and per-caller limits.

The composition root builds a `ServerSecurity` from the settings; the server takes its
interceptor, its channel options and its port from it. `OPEN` (no authentication, plaintext)
serves only where a test or a benchmark asks for it by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc

from services.authentication import AuthenticationInterceptor, Authenticator
from services.caller_limits import CallerLimits, Limits

DEFAULT_MAX_REQUEST_BYTES = 256 * 1024
"""The largest request accepted: a command's longest texts (10,000 characters each, up to four
bytes a character) fit several times over, while a caller cannot make the server buffer the
library's default of 4 MiB per call."""


@dataclass(frozen=True)
class TlsFiles:
    """The server's PEM certificate chain and key, and the CAs of client certificates (mTLS)."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None


@dataclass(frozen=True)
class ServerSecurity:
    """Everything the server needs to know to let only the right callers in, and not too much."""

    authenticator: Authenticator | None  # None: authentication off
    tls: TlsFiles | None  # None: plaintext
    limits: Limits = field(default_factory=Limits)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    reflection_open: bool = False

    def interceptor(self) -> AuthenticationInterceptor:
        """The interceptor that checks every call (one per server: it counts per caller)."""
        return AuthenticationInterceptor(
            self.authenticator, CallerLimits(self.limits), reflection_open=self.reflection_open
        )

    def options(self) -> list[tuple[str, Any]]:
        """Channel options of the server: the request size is chosen here, not left to grpc."""
        return [("grpc.max_receive_message_length", self.max_request_bytes)]

    def add_port(self, server: grpc.aio.Server, listen: str) -> int:
        """Bind `listen` with TLS or in plaintext; the port bound (0: it could not bind)."""
        if self.tls is None:
            return server.add_insecure_port(listen)
        credentials = grpc.ssl_server_credentials(
            [(self.tls.private_key, self.tls.certificate_chain)],
            root_certificates=self.tls.client_ca,
            # grpc can only require client certificates or not ask for them at all.
            require_client_auth=self.tls.client_ca is not None,
        )
        return server.add_secure_port(listen, credentials)


OPEN = ServerSecurity(authenticator=None, tls=None)
"""No credential asked, plaintext: what `create_server` does when not told otherwise."""
