"""CustomerService servicer: proto request -> domain command -> application -> proto reply."""

from __future__ import annotations

from collections.abc import Iterable

from crm.blocking import BlockingPool
from crm.command_handling import derived_id
from crm.grpc_convert import Context, command_context, command_result, optional_enum, required_enum
from crm.protocodec import to_message
from crm.v1 import common_pb2, customer_events_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm.v1.common_pb2 import CommandResult
from crm.vocabulary import Channel
from services.customer.application import CustomerApplication, new_merge_id
from services.customer.commands import (
    ChangeTier,
    CustomerCommand,
    MergeCustomers,
    RecordCancellation,
    RecordPurchase,
    RecordRenewal,
    RegisterCustomer,
    UndoMerge,
    UpdateContactPoints,
)
from services.customer.domain import Customer
from services.customer.events import ContactPoint, Segment, Tier

CHANNEL = common_pb2.Channel.DESCRIPTOR
SEGMENT = customer_events_pb2.Segment.DESCRIPTOR
TIER = customer_events_pb2.Tier.DESCRIPTOR


class CustomerServicer(customer_service_pb2_grpc.CustomerServiceServicer):
    def __init__(self, application: CustomerApplication, io: BlockingPool) -> None:
        self._app = application
        self._io = io

    async def _run(self, request: object, command: CustomerCommand) -> CommandResult:
        context = command_context(request)  # type: ignore[arg-type]
        return command_result(await self._io.run(self._app.handle, command, context))

    async def RegisterCustomer(
        self, request: customer_service_pb2.RegisterCustomerRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = RegisterCustomer(
            customer_id=request.customer_id or derived_id("customer", ctx.request_id),
            name=request.name,
            contact_points=_contact_points(request.contact_points),
            language=request.language,
            segment=required_enum(Segment, request.segment, SEGMENT, "segment"),
            company=request.company,
            tier=optional_enum(Tier, request.tier, TIER, "tier", Tier.STANDARD),
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def UpdateContactPoints(
        self,
        request: customer_service_pb2.UpdateContactPointsRequest,
        context: Context,
    ) -> CommandResult:
        points = _contact_points(request.contact_points)
        return await self._run(request, UpdateContactPoints(request.customer_id, points))

    async def ChangeTier(
        self, request: customer_service_pb2.ChangeTierRequest, context: Context
    ) -> CommandResult:
        tier = required_enum(Tier, request.tier, TIER, "tier")
        return await self._run(request, ChangeTier(request.customer_id, tier, request.reason))

    async def RecordPurchase(
        self, request: customer_service_pb2.RecordPurchaseRequest, context: Context
    ) -> CommandResult:
        command = RecordPurchase(
            request.customer_id,
            request.order_id,
            request.product,
            request.amount_minor,
            request.currency,
        )
        return await self._run(request, command)

    async def RecordRenewal(
        self, request: customer_service_pb2.RecordRenewalRequest, context: Context
    ) -> CommandResult:
        command = RecordRenewal(request.customer_id, request.contract_id, request.product)
        return await self._run(request, command)

    async def RecordCancellation(
        self,
        request: customer_service_pb2.RecordCancellationRequest,
        context: Context,
    ) -> CommandResult:
        command = RecordCancellation(request.customer_id, request.contract_id, request.reason)
        return await self._run(request, command)

    async def MergeCustomers(
        self, request: customer_service_pb2.MergeCustomersRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = MergeCustomers(
            duplicate_customer_id=request.duplicate_customer_id,
            survivor_customer_id=request.survivor_customer_id,
            merge_id=new_merge_id(ctx),
            reason=request.reason,
        )
        return command_result(await self._io.run(self._app.merge, command, ctx))

    async def UndoMerge(
        self, request: customer_service_pb2.UndoMergeRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = UndoMerge(request.duplicate_customer_id, request.reason)
        return command_result(await self._io.run(self._app.undo_merge, command, ctx))

    async def GetCustomer(
        self, request: customer_service_pb2.GetCustomerRequest, context: Context
    ) -> customer_service_pb2.Customer:
        loaded = await self._io.run(self._app.get, request.customer_id)
        assert loaded.state is not None  # load_existing raised NotFound otherwise
        return customer_to_proto(loaded.state, loaded.revision)


def customer_to_proto(state: Customer, revision: int) -> customer_service_pb2.Customer:
    """The customer as GetCustomer returns it (the audit API's as-of view too)."""
    reply = to_message(state, customer_service_pb2.Customer())
    assert isinstance(reply, customer_service_pb2.Customer)
    reply.revision = revision
    return reply


def _contact_points(
    points: Iterable[customer_events_pb2.ContactPoint],
) -> tuple[ContactPoint, ...]:
    return tuple(
        ContactPoint(
            required_enum(Channel, point.channel, CHANNEL, f"contact_points[{index}].channel"),
            point.address,
        )
        for index, point in enumerate(points)
    )
