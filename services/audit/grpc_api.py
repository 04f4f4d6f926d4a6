"""AuditService servicer: history, export and verification over the event store (thin)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from crm.blocking import BlockingPool
from crm.command_handling import Clock
from crm.envelope import RecordedEvent
from crm.errors import IntegrityError, InvalidInput
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.grpc_convert import Context, optional_instant
from crm.personal.cipher import PersonalData
from crm.protocodec import actor_to_proto, enum_from_proto, timestamp
from crm.seals import SealVerifier
from crm.v1 import audit_service_pb2, audit_service_pb2_grpc, common_pb2
from crm.vocabulary import ActorKind
from projections.store.port import ViewStore
from projections.timeline import timeline_entry
from services.audit.as_of_api import AsOfReader, AsOfViews
from services.audit.export import export_line
from services.audit.history import HistoryReader, Subject
from services.audit.query import DEFAULT_PAGE_SIZE, HistoryQuery, page_of
from services.audit.seals import SealsApi
from services.audit.store_export import StoreExport
from services.audit.verify import Break, Verification, verify_streams
from services.events import EVENT_TYPES, UPCASTERS

ACTOR_KIND = common_pb2.ActorKind.DESCRIPTOR
EXPORT_BATCH = 200
CODEC = EventCodec(EVENT_TYPES, UPCASTERS)
KNOWN_TYPES = frozenset(CODEC.readable_type_names)  # a filter names the stored type


class AuditServicer(audit_service_pb2_grpc.AuditServiceServicer):
    """The audit API; event-store and view-store reads run on the blocking pool."""

    def __init__(
        self,
        store: EventStore,
        views: ViewStore,
        io: BlockingPool,
        seal_key: SealVerifier | None = None,
        *,
        clock: Clock,
        personal: PersonalData | None = None,
    ) -> None:
        self._store = store
        self._history = HistoryReader(store, views, CODEC)
        self._io = io
        self._seals = SealsApi(store, seal_key, io)
        self._export = StoreExport(store, io)
        # A customer as of a point shows their personal fields opened (or the placeholder once
        # forgotten), as GetCustomer does; history, export and verification keep the stored form.
        as_of_codec = (
            CODEC if personal is None else EventCodec(EVENT_TYPES, UPCASTERS, personal=personal)
        )
        self._as_of = AsOfViews(AsOfReader(store, self._history, as_of_codec, clock), io)

    async def GetHistory(
        self, request: audit_service_pb2.GetHistoryRequest, context: Context
    ) -> audit_service_pb2.HistoryPage:
        query = HistoryQuery(
            subject=subject(request),
            since=optional_instant(request, "since"),
            until=optional_instant(request, "until"),
            by_occurred=_by_occurred(request.time_basis),
            event_types=frozenset(request.event_types),
            actor_ids=frozenset(request.actor_ids),
            actor_kinds=frozenset(
                enum_from_proto(ActorKind, kind, ACTOR_KIND, "actor_kinds")
                for kind in request.actor_kinds
            ),
            page_size=request.page_size or DEFAULT_PAGE_SIZE,
            page_token=request.page_token,
            known_types=KNOWN_TYPES,
        )
        events = await self._io.run(self._history.events, query.subject)
        page = page_of(query, events)
        return audit_service_pb2.HistoryPage(
            events=[history_event(e) for e in page.events], next_page_token=page.next_page_token
        )

    async def ExportHistory(
        self, request: audit_service_pb2.ExportHistoryRequest, context: Context
    ) -> AsyncIterator[audit_service_pb2.ExportLine]:
        events = await self._io.run(self._history.events, subject(request))
        for event in events:
            yield audit_service_pb2.ExportLine(json=export_line(event, description(event)))

    async def VerifyHistory(
        self, request: audit_service_pb2.VerifyHistoryRequest, context: Context
    ) -> audit_service_pb2.VerifyHistoryReply:
        wanted = subject(request)

        def verify() -> Verification:
            return verify_streams(self._history.streams(wanted), self._store.read_stream)

        return verification_to_proto(await self._io.run(verify))

    async def GetCaseAsOf(
        self, request: audit_service_pb2.GetCaseAsOfRequest, context: Context
    ) -> audit_service_pb2.CaseAsOf:
        return await self._as_of.case(request)

    async def GetCustomerAsOf(
        self, request: audit_service_pb2.GetCustomerAsOfRequest, context: Context
    ) -> audit_service_pb2.CustomerAsOf:
        return await self._as_of.customer(request)

    async def GetTimelineAsOf(
        self, request: audit_service_pb2.GetTimelineAsOfRequest, context: Context
    ) -> audit_service_pb2.TimelineAsOf:
        return await self._as_of.timeline(request)

    async def ListSeals(
        self, request: audit_service_pb2.ListSealsRequest, context: Context
    ) -> audit_service_pb2.ListSealsReply:
        return await self._seals.list_seals(request)

    async def VerifyStore(
        self, request: audit_service_pb2.VerifyStoreRequest, context: Context
    ) -> audit_service_pb2.VerifyStoreReply:
        return await self._seals.verify_store(request)

    async def ExportStore(
        self, request: audit_service_pb2.ExportStoreRequest, context: Context
    ) -> AsyncIterator[audit_service_pb2.ExportLine]:
        up_to = await self._export.end(request)  # refused before the first line, not midway
        async for line in self._export.lines(up_to, description):
            yield line


def subject(
    request: (
        audit_service_pb2.GetHistoryRequest
        | audit_service_pb2.ExportHistoryRequest
        | audit_service_pb2.VerifyHistoryRequest
    ),
) -> Subject:
    """The request's subject; none, or an empty id, is refused naming the field."""
    chosen = request.subject.WhichOneof("subject")
    if chosen is None:
        return Subject("", "")  # refused by Subject, naming `subject`
    return Subject(chosen.removesuffix("_id"), getattr(request.subject, chosen))


def _by_occurred(number: int) -> bool:
    """Whether since/until compare with the occurred time (unspecified: the recorded time)."""
    if number not in audit_service_pb2.TimeBasis.values():
        raise InvalidInput("time_basis", f"unknown time basis {number}")
    return number == audit_service_pb2.TIME_BASIS_OCCURRED


def description(event: RecordedEvent, codec: EventCodec = CODEC) -> str:
    """The timeline's one-line summary (no personal data), or why there is none."""
    try:
        return timeline_entry(*codec.decode_recorded(event)).summary
    except (IntegrityError, ValueError, TypeError, KeyError) as exc:
        return f"(not decodable: {type(exc).__name__}; VerifyHistory checks this event)"


def current_type(event: RecordedEvent, codec: EventCodec = CODEC) -> str:
    """The type the event reads as now (its own unless upcast); "" for one no release knows."""
    try:
        return codec.current_type(event.type)
    except IntegrityError:
        return ""


def history_event(
    event: RecordedEvent, codec: EventCodec = CODEC
) -> audit_service_pb2.HistoryEvent:
    """The API's form of a stored event: its stored type, and the type it reads as now."""
    meta = event.metadata
    return audit_service_pb2.HistoryEvent(
        global_position=event.global_position,
        stream=event.stream,
        revision=event.revision,
        event_id=event.event_id,
        event_type=event.type,
        customer_id=meta.customer_id,
        actor=actor_to_proto(meta.actor.kind, meta.actor.id),
        occurred_at=timestamp(meta.occurred_at),
        recorded_at=timestamp(event.recorded_at),
        correlation_id=meta.correlation_id,
        causation_id=meta.causation_id,
        request_id=meta.request_id,
        description=description(event, codec),
        previous_hash=event.previous_hash,
        content_hash=event.content_hash,
        current_event_type=current_type(event, codec),
    )


def _break(found: Break) -> audit_service_pb2.HistoryBreak:
    return audit_service_pb2.HistoryBreak(
        stream=found.stream,
        revision=found.revision,
        global_position=found.global_position,
        problem=found.problem,
    )


def verification_to_proto(found: Verification) -> audit_service_pb2.VerifyHistoryReply:
    reply = audit_service_pb2.VerifyHistoryReply(
        ok=found.ok,
        events_checked=found.events_checked,
        streams_checked=len(found.heads),
        breaks=[_break(b) for b in found.breaks],
        heads=[
            audit_service_pb2.StreamHead(
                stream=h.stream,
                events=h.events,
                last_revision=max(h.last_revision, 0),
                head_hash=h.head_hash,
            )
            for h in found.heads
        ],
    )
    if found.breaks:
        reply.first_break.CopyFrom(_break(found.breaks[0]))
    return reply
