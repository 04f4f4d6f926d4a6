"""One error tree for the whole system, mapped to gRPC status codes in crm.grpc_errors."""

from __future__ import annotations

from typing import Protocol


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


class HistoryBroken(IntegrityError):
    """A stored event no longer matches its hash chain: altered, moved or cut loose.

    Names the first bad event exactly, so an operator can find it; nothing is appended on top.
    """

    def __init__(self, event: StoredPlace, problem: str) -> None:
        super().__init__(
            f"the history of {event.stream} is broken at revision {event.revision}"
            f" (global position {event.global_position}): {problem}"
        )
        self.stream = event.stream
        self.revision = event.revision
        self.global_position = event.global_position


class PersonalDataUnreadable(IntegrityError):
    """Sealed personal data of a customer never forgotten does not open: their key is missing,
    wrapped by another master key, or the sealed bytes were altered. Data is lost, not forgotten,
    so it is reported (DATA_LOSS, with an alert), never shown as the placeholder."""


class StoredPlace(Protocol):
    """Where an event sits in the store (crm.envelope.RecordedEvent has these)."""

    @property
    def stream(self) -> str: ...

    @property
    def revision(self) -> int: ...

    @property
    def global_position(self) -> int: ...


class PersonalDataForgotten(InvariantViolated):
    """The customer was forgotten: their data key is gone, so no new personal data is recorded."""
