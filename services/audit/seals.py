"""The seal RPCs of AuditService: list the kept seals, verify the whole store against a seal.

Kept apart from grpc_api.py's history calls; the servicer delegates to `SealsApi`.
"""

from __future__ import annotations

from crm.blocking import BlockingPool
from crm.errors import InvalidInput
from crm.eventstore.port import EventStore
from crm.seals import Seal, SealVerifier
from crm.v1 import audit_service_pb2
from services.audit.store_verify import StoreVerification, StoreVerifier

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


class SealsApi:
    """ListSeals and VerifyStore over the event store; store reads run on the blocking pool."""

    def __init__(self, store: EventStore, key: SealVerifier | None, io: BlockingPool) -> None:
        self._store = store
        self._key = key
        self._io = io

    async def list_seals(
        self, request: audit_service_pb2.ListSealsRequest
    ) -> audit_service_pb2.ListSealsReply:
        if request.limit < 0 or request.limit > MAX_LIMIT:
            raise InvalidInput("limit", f"give 1 to {MAX_LIMIT} (0: {DEFAULT_LIMIT})")
        seals = await self._io.run(
            self._store.read_seals, request.after, request.limit or DEFAULT_LIMIT
        )
        reply = audit_service_pb2.ListSealsReply(seals=[seal_to_proto(s) for s in seals])
        if self._key is not None:
            reply.public_key_pem = self._key.public_pem()
            reply.key_id = self._key.key_id
        return reply

    async def verify_store(
        self, request: audit_service_pb2.VerifyStoreRequest
    ) -> audit_service_pb2.VerifyStoreReply:
        given = seal_from_proto(request.seal) if request.HasField("seal") else None
        verifier = StoreVerifier(self._store, self._key)
        return verification_to_proto(await self._io.run(verifier.verify, given))


def seal_to_proto(seal: Seal) -> audit_service_pb2.Seal:
    return audit_service_pb2.Seal(**seal.to_dict())


def seal_from_proto(message: audit_service_pb2.Seal) -> Seal:
    """The seal an auditor sent; INVALID_ARGUMENT naming `seal` when it cannot be one."""
    try:
        seal = Seal.from_dict(
            {
                "position": message.position,
                "count": message.count,
                "head": message.head,
                "previous_position": message.previous_position,
                "sealed_at": message.sealed_at,
                "key_id": message.key_id,
                "signature": message.signature,
            }
        )
    except ValueError as exc:
        raise InvalidInput("seal", str(exc)) from None
    if seal.position == 0 or seal.count == 0:
        raise InvalidInput("seal", "a seal covers at least one event (position and count > 0)")
    try:
        int(seal.head, 16)
    except ValueError:
        raise InvalidInput("seal", "head must be 64 hexadecimal digits") from None
    return seal


def verification_to_proto(found: StoreVerification) -> audit_service_pb2.VerifyStoreReply:
    breaks = [
        audit_service_pb2.HistoryBreak(
            stream=b.stream,
            revision=b.revision,
            global_position=b.global_position,
            problem=b.problem,
        )
        for b in found.breaks
    ]
    reply = audit_service_pb2.VerifyStoreReply(
        ok=found.ok,
        events_checked=found.events_checked,
        streams_checked=found.streams_checked,
        sealed_events=found.sealed_events,
        events_after_seal=found.events_after_seal,
        head=found.head,
        exact=found.exact,
        breaks=breaks,
    )
    if found.seal is not None:
        reply.seal.CopyFrom(seal_to_proto(found.seal))
    if breaks:
        reply.first_break.CopyFrom(breaks[0])
    return reply
