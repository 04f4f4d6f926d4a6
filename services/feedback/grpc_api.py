"""FeedbackService servicer: proto request -> domain command -> application -> proto reply."""

from __future__ import annotations

from crm.blocking import BlockingPool
from crm.command_handling import derived_id
from crm.grpc_convert import Context, command_context, command_result, required_enum
from crm.protocodec import timestamp, to_message
from crm.v1 import common_pb2, feedback_service_pb2, feedback_service_pb2_grpc
from crm.v1.common_pb2 import CommandResult
from crm.vocabulary import Channel
from services.feedback.application import FeedbackApplication
from services.feedback.commands import RecordVoiceOfCustomer, SubmitReview, SubmitSurvey
from services.feedback.events import ReviewSubmitted, SurveySubmitted, VoiceOfCustomerRecorded

CHANNEL = common_pb2.Channel.DESCRIPTOR
DETAIL_FIELD = {
    SurveySubmitted: "survey",
    ReviewSubmitted: "review",
    VoiceOfCustomerRecorded: "voice_of_customer",
}


class FeedbackServicer(feedback_service_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, application: FeedbackApplication, io: BlockingPool) -> None:
        self._app = application
        self._io = io

    async def SubmitSurvey(
        self, request: feedback_service_pb2.SubmitSurveyRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = SubmitSurvey(
            feedback_id=request.feedback_id or derived_id("feedback", ctx.request_id),
            customer_id=request.customer_id,
            channel=required_enum(Channel, request.channel, CHANNEL, "channel"),
            case_id=request.case_id,
            csat=request.csat if request.HasField("csat") else None,
            nps=request.nps if request.HasField("nps") else None,
            ces=request.ces if request.HasField("ces") else None,
            comment=request.comment,
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def SubmitReview(
        self, request: feedback_service_pb2.SubmitReviewRequest, context: Context
    ) -> CommandResult:
        ctx = command_context(request)
        command = SubmitReview(
            feedback_id=request.feedback_id or derived_id("feedback", ctx.request_id),
            customer_id=request.customer_id,
            rating=request.rating,
            text=request.text,
            source=request.source,
            case_id=request.case_id,
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def RecordVoiceOfCustomer(
        self,
        request: feedback_service_pb2.RecordVoiceOfCustomerRequest,
        context: Context,
    ) -> CommandResult:
        ctx = command_context(request)
        command = RecordVoiceOfCustomer(
            feedback_id=request.feedback_id or derived_id("feedback", ctx.request_id),
            customer_id=request.customer_id,
            channel=required_enum(Channel, request.channel, CHANNEL, "channel"),
            text=request.text,
            case_id=request.case_id,
        )
        return command_result(await self._io.run(self._app.handle, command, ctx))

    async def GetFeedback(
        self, request: feedback_service_pb2.GetFeedbackRequest, context: Context
    ) -> feedback_service_pb2.Feedback:
        loaded = await self._io.run(self._app.get, request.feedback_id)
        feedback = loaded.state
        assert feedback is not None
        reply = feedback_service_pb2.Feedback(
            feedback_id=feedback.feedback_id,
            customer_id=feedback.customer_id,
            case_id=feedback.case_id,
            received_at=timestamp(feedback.received_at),
            revision=loaded.revision,
        )
        to_message(feedback.event, getattr(reply, DETAIL_FIELD[type(feedback.event)]))
        return reply
