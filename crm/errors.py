"""One error tree for the whole system, mapped to gRPC status codes in crm.grpc_errors."""

from __future__ import annotations


class CrmError(Exception):
    """Root of every error the system raises on purpose."""


class DomainError(CrmError):
    """A command was refused by the rules of the domain."""


class InvalidInput(DomainError):
    """A field of a command is missing or malformed; names the field so a caller can fix it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvariantViolated(DomainError):
    """The command is well formed but illegal in the aggregate's current state."""


class NotFound(DomainError):
    """The command or query names something that does not exist."""


class AlreadyExists(DomainError):
    """The command would create something that exists already."""


class ConcurrencyConflict(CrmError):
    """Another writer appended to the stream first; the expected revision no longer holds."""


class PermissionDenied(CrmError):
    """The caller is known but may not do this."""


class Unauthenticated(CrmError):
    """The caller did not prove who it is."""


class ResourceExhausted(CrmError):
    """The caller has used up a limit (calls in progress, open watches); retry later."""


class PersistenceError(CrmError):
    """A store failed for reasons outside the domain (named after PEP 249's tree)."""


class OperationalError(PersistenceError):
    """The store is unavailable or timed out; retrying later may succeed."""


class IntegrityError(PersistenceError):
    """The store detected data that breaks its own guarantees (e.g. a broken hash chain)."""
