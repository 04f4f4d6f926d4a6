"""Customer command handling, including merges, which append to two streams one after the other.

A merge first records CustomerMerged on the duplicate (its revision guards against a concurrent
merge of the same duplicate), then DuplicateAbsorbed on the survivor. If the process dies between
the two, retrying the same request id finds the first half recorded and completes the second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from crm.command_handling import (
    DEFAULT_EARLIEST,
    Clock,
    CommandContext,
    CommandOutcome,
    Loaded,
    StreamHandler,
    derived_id,
)
from crm.errors import InvalidInput, InvariantViolated
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.folding import Fold
from crm.personal.cipher import PersonalData
from services.customer import domain as customer_domain
from services.customer.commands import (
    CustomerCommand,
    ForgetCustomer,
    MergeCustomers,
    RegisterCustomer,
    UndoMerge,
)
from services.customer.domain import Customer
from services.customer.events import (
    CustomerEvent,
    CustomerMergeUndone,
    DuplicateAbsorbed,
    DuplicateReleased,
)

CUSTOMER_FOLD = Fold(Customer, customer_domain.evolve, customer_domain.FOLD_VERSION)


class CustomerApplication:
    """The customer service's use cases, free of gRPC."""

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        clock: Clock,
        earliest: datetime = DEFAULT_EARLIEST,
    ) -> None:
        self._codec = codec
        self.customers: StreamHandler[Customer, CustomerEvent] = StreamHandler(
            store, codec, "customer", CUSTOMER_FOLD, clock, earliest=earliest
        )

    def handle(self, command: CustomerCommand, context: CommandContext) -> CommandOutcome:
        def decide(state: Customer | None) -> Sequence[CustomerEvent]:
            return customer_domain.decide(command, state)

        return self.customers.execute(
            command.customer_id,
            context,
            command,
            decide,
            _own_id(command.customer_id),
            must_exist=not isinstance(command, RegisterCustomer),
        )

    def merge(self, command: MergeCustomers, context: CommandContext) -> CommandOutcome:
        """Merge a duplicate into a survivor; the outcome is the survivor's side."""
        if command.duplicate_customer_id == command.survivor_customer_id:
            raise InvalidInput("survivor_customer_id", "a customer cannot be merged into itself")
        survivor = self.customers.load_existing(
            command.survivor_customer_id, "survivor_customer_id"
        )
        self.customers.load_existing(command.duplicate_customer_id, "duplicate_customer_id")

        def duplicate_side(duplicate: Customer | None) -> Sequence[CustomerEvent]:
            assert duplicate is not None and survivor.state is not None
            return [customer_domain.decide_merge(command, duplicate, survivor.state)[0]]

        self.customers.execute(
            command.duplicate_customer_id,
            context,
            command,
            duplicate_side,
            _own_id(command.duplicate_customer_id),
        )
        absorbed = DuplicateAbsorbed(
            command.survivor_customer_id,
            command.duplicate_customer_id,
            command.merge_id,
            command.reason,
        )
        return self.customers.execute(
            command.survivor_customer_id,
            context,
            command,
            lambda _survivor: [absorbed],
            _own_id(command.survivor_customer_id),
        )

    def undo_merge(self, command: UndoMerge, context: CommandContext) -> CommandOutcome:
        """Separate a merged duplicate from its survivor again; returns the survivor's side."""
        duplicate = self.customers.load_existing(
            command.duplicate_customer_id, "duplicate_customer_id"
        )
        assert duplicate.state is not None
        undone = self._undo_recorded_by(command.duplicate_customer_id, context.request_id)
        if undone is not None:  # a retry whose first half is recorded already
            survivor_id, merge_id = undone.from_customer_id, undone.merge_id
        elif duplicate.state.merged_into:
            survivor_id, merge_id = duplicate.state.merged_into, duplicate.state.merge_id
        else:
            raise InvariantViolated(
                f"customer {command.duplicate_customer_id} is not merged into another"
            )
        survivor = self.customers.load_existing(survivor_id, "survivor_customer_id")
        assert survivor.state is not None
        survivor_state = survivor.state

        def duplicate_side(state: Customer | None) -> Sequence[CustomerEvent]:
            assert state is not None
            return [customer_domain.decide_unmerge(command, state, survivor_state)[0]]

        self.customers.execute(
            command.duplicate_customer_id,
            context,
            command,
            duplicate_side,
            _own_id(command.duplicate_customer_id),
        )
        released = DuplicateReleased(
            survivor_id, command.duplicate_customer_id, merge_id, command.reason
        )
        return self.customers.execute(
            survivor_id, context, command, lambda _s: [released], _own_id(survivor_id)
        )

    def forget(self, command: ForgetCustomer, context: CommandContext) -> CommandOutcome:
        """Record that the customer is forgotten, then delete their keys (and the keys of the
        profiles merged into them): the event is durable before any key goes, so a crash in
        between is completed by a retry, with the same request id or a new one."""
        personal = self._codec.personal
        if personal is None:
            raise InvariantViolated("personal data is not encrypted here; nothing can be forgotten")
        loaded = self.customers.load_existing(command.customer_id, "customer_id")
        if loaded.state is not None and loaded.state.forgotten:
            # A retry after a crash between the event and the keys: finish the job first.
            _forget_keys(personal, loaded.state.forgotten_customer_ids)
        outcome = self.customers.execute(
            command.customer_id,
            context,
            command,
            lambda state: customer_domain.decide_forget(command, state),
            _own_id(command.customer_id),
        )
        state = self.customers.load(command.customer_id).state
        assert state is not None
        _forget_keys(personal, state.forgotten_customer_ids)
        return outcome

    def get(self, customer_id: str) -> Loaded[Customer]:
        return self.customers.load_existing(customer_id, "customer_id")

    def _undo_recorded_by(self, duplicate_id: str, request_id: str) -> CustomerMergeUndone | None:
        """The undo this request recorded on the duplicate already (found through the index)."""
        for record in self.customers.recorded_by(duplicate_id, request_id):
            event = self._codec.decode(record.type, record.data)
            if isinstance(event, CustomerMergeUndone):
                return event
        return None


def _forget_keys(personal: PersonalData, customer_ids: Sequence[str]) -> None:
    for customer_id in customer_ids:
        personal.forget(customer_id)


def new_merge_id(context: CommandContext) -> str:
    return derived_id("merge", context.request_id)


def _own_id(customer_id: str) -> Callable[[Customer | None, Sequence[CustomerEvent]], str]:
    """Customer streams belong to the customer they are named after."""
    return lambda _state, _events: customer_id
