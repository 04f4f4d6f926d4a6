"""CaseService servicer: proto request -> domain command -> application -> proto reply."""

from __future__ import annotations

from crm.blocking import BlockingPool
from crm.command_handling import derived_id
from crm.grpc_convert import (
    Context,
    actor,
    command_context,
    command_result,
    optional_enum,
    required_enum,
    required_instant,
)
from crm.protocodec import to_message
from crm.v1 import case_events_pb2, case_service_pb2, case_service_pb2_grpc, common_pb2
from crm.v1.common_pb2 import CommandResult
from crm.vocabulary import Channel, Direction, Priority
from services.case.application import CaseApplication
from services.case.commands import (
    AddNote,
    AssignCase,
    CaseCommand,
    ChangePriority,
    CloseCase,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    ResumeCase,
    SetPendingOnCustomer,
    TransferCase,
)
from services.case.compensation import CompensationKind, DecideCompensation, OfferCompensation
from services.case.escalation import DeEscalateCase, EscalateCase
from services.case.events import DEFAULT_DEPARTMENT, Category, ContactOutcome

CHANNEL = common_pb2.Channel.DESCRIPTOR
PRIORITY = common_pb2.Priority.DESCRIPTOR
DIRECTION = common_pb2.Direction.DESCRIPTOR
CATEGORY = case_events_pb2.Category.DESCRIPTOR
OUTCOME = case_events_pb2.ContactOutcome.DESCRIPTOR
KIND = case_events_pb2.CompensationKind.DESCRIPTOR


class CaseServicer(case_service_pb2_grpc.CaseServiceServicer):
    def __init__(self, application: CaseApplication, io: BlockingPool) -> None:
        self._app = application
        self._io = io

    async def _run(self, request: object, command: CaseCommand) -> CommandResult:
        context = command_context(request)  # type: ignore[arg-type]
        return command_result(await self._io.run(self._app.handle, command, context))

    async def OpenCase(
        self, request: case_service_pb2.OpenCaseRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = OpenCase(
            case_id=request.case_id or derived_id("case", ctx.request_id),
            customer_id=request.customer_id,
            channel=required_enum(Channel, request.channel, CHANNEL, "channel"),
            category=required_enum(Category, request.category, CATEGORY, "category"),
            priority=optional_enum(
                Priority, request.priority, PRIORITY, "priority", Priority.NORMAL
            ),
            subject=request.subject,
            description=request.description,
            department=request.department or DEFAULT_DEPARTMENT,
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def RecordContact(
        self, request: case_service_pb2.RecordContactRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        handler = actor(request, "handled_by")
        command = RecordContact(
            case_id=request.case_id,
            contact_id=request.contact_id or derived_id("contact", ctx.request_id),
            channel=required_enum(Channel, request.channel, CHANNEL, "channel"),
            direction=required_enum(Direction, request.direction, DIRECTION, "direction"),
            handler_kind=handler.kind,
            handler_id=handler.id,
            outcome=required_enum(ContactOutcome, request.outcome, OUTCOME, "outcome"),
            started_at=required_instant(request, "started_at", "started_at"),
            talk_seconds=request.talk_seconds,
            hold_seconds=request.hold_seconds,
            after_work_seconds=request.after_work_seconds,
            handover_to_agent_id=request.handover_to_agent_id,
            handover_to_team=request.handover_to_team,
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def AssignCase(
        self, request: case_service_pb2.AssignCaseRequest, context: Context
    ) -> CommandResult:
        return await self._run(request, AssignCase(request.case_id, request.agent_id, request.team))

    async def TransferCase(
        self, request: case_service_pb2.TransferCaseRequest, context: Context
    ) -> CommandResult:
        command = TransferCase(request.case_id, request.to_department, request.reason)
        return await self._run(request, command)

    async def ChangePriority(
        self, request: case_service_pb2.ChangePriorityRequest, context: Context
    ) -> CommandResult:
        priority = required_enum(Priority, request.priority, PRIORITY, "priority")
        return await self._run(request, ChangePriority(request.case_id, priority, request.reason))

    async def AddNote(
        self, request: case_service_pb2.AddNoteRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        note_id = request.note_id or derived_id("note", ctx.request_id)
        command = AddNote(request.case_id, note_id, request.text)
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def SetPendingOnCustomer(
        self, request: case_service_pb2.SetPendingOnCustomerRequest, context: Context
    ) -> CommandResult:
        return await self._run(request, SetPendingOnCustomer(request.case_id, request.reason))

    async def ResumeCase(
        self, request: case_service_pb2.ResumeCaseRequest, context: Context
    ) -> CommandResult:
        return await self._run(request, ResumeCase(request.case_id, request.reason))

    async def ResolveCase(
        self, request: case_service_pb2.ResolveCaseRequest, context: Context
    ) -> CommandResult:
        command = ResolveCase(request.case_id, request.resolution_code, request.note)
        return await self._run(request, command)

    async def ReopenCase(
        self, request: case_service_pb2.ReopenCaseRequest, context: Context
    ) -> CommandResult:
        return await self._run(request, ReopenCase(request.case_id, request.reason))

    async def CloseCase(
        self, request: case_service_pb2.CloseCaseRequest, context: Context
    ) -> CommandResult:
        return await self._run(request, CloseCase(request.case_id, request.reason))

    async def EscalateCase(
        self, request: case_service_pb2.EscalateCaseRequest, context: Context
    ) -> CommandResult:
        command = EscalateCase(request.case_id, request.level, request.note)
        return await self._run(request, command)

    async def DeEscalateCase(
        self, request: case_service_pb2.DeEscalateCaseRequest, context: Context
    ) -> CommandResult:
        return await self._run(request, DeEscalateCase(request.case_id, request.note))

    async def OfferCompensation(
        self, request: case_service_pb2.OfferCompensationRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = OfferCompensation(
            case_id=request.case_id,
            compensation_id=request.compensation_id or derived_id("compensation", ctx.request_id),
            kind=required_enum(CompensationKind, request.kind, KIND, "kind"),
            amount_minor=request.amount_minor,
            currency=request.currency,
            note=request.note,
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def DecideCompensation(
        self, request: case_service_pb2.DecideCompensationRequest, context: Context
    ) -> CommandResult:
        command = DecideCompensation(
            request.case_id, request.compensation_id, request.approve, request.reason
        )
        return await self._run(request, command)

    async def GetCaseSummary(
        self, request: case_service_pb2.GetCaseSummaryRequest, context: Context
    ) -> case_service_pb2.CaseSummary:
        text, revision = await self._io.run(self._app.summary, request.case_id)
        return case_service_pb2.CaseSummary(case_id=request.case_id, text=text, revision=revision)

    async def GetCase(
        self, request: case_service_pb2.GetCaseRequest, context: Context
    ) -> case_service_pb2.Case:
        loaded = await self._io.run(self._app.get, request.case_id)
        reply = to_message(loaded.state, case_service_pb2.Case())
        assert isinstance(reply, case_service_pb2.Case)
        reply.revision = loaded.revision
        assert loaded.state is not None
        reply.escalation_level = loaded.state.escalation_level
        return reply
