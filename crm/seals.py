"""Seals: signed heads of a hash chain over the store's global order, so removal shows too.

The per-stream chain (crm.envelope) proves each event unaltered and linked to the one before it in
its stream, but a deleted tail, a deleted stream or two events swapped across streams leave every
stream's chain whole. The global chain links every event, in global order, to the one before it
in the whole store:

    head_0 = GENESIS_HASH
    head_N = sha256(canonical_json([head_{N-1}, global_position, stream, revision, content_hash]))

(canonical_json: sorted keys, no spaces, UTF-8; a JSON array here, so field order is fixed). A seal
signs (Ed25519) the head after its last event with the count of events so far; an auditor who kept
a seal recomputes the chain from the events and compares heads, which needs hashlib alone; checking
the signature needs the seal key's public half and any Ed25519 implementation.

A seal also keeps its entries: the (position, stream, revision, content hash) of each event it
covers since the seal before. They are a copy, authenticated by the signed head, that lets a
verifier name the exact place where the events no longer match what was sealed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crm.envelope import GENESIS_HASH, canonical_json

_string = encode_basestring  # one JSON string, as canonical_json writes it

SEAL_VERSION = "crm-seal-v1"
"""Prefix of the signed bytes, so a seal's signature can never be taken for another document's."""


class SealEntry(NamedTuple):
    """One sealed event: its place in the global order and in its stream, and its content hash.

    A named tuple, not a dataclass: verification makes one per sealed event."""

    global_position: int
    stream: str
    revision: int
    content_hash: str


@dataclass(frozen=True)
class Seal:
    """A signed statement: the first `count` events of the global order, up to `position`,
    chain to `head`. `previous_position` names the seal this one continues (0: the first)."""

    position: int
    count: int
    head: str
    previous_position: int
    sealed_at: str  # ISO 8601, UTC
    key_id: str
    signature: str = ""  # hex; empty until signed

    def signed_bytes(self) -> bytes:
        """What the signature covers: every field but the signature, in canonical JSON."""
        fields = {k: v for k, v in self.to_dict().items() if k != "signature"}
        return SEAL_VERSION.encode() + b"\n" + canonical_json(fields)

    def to_dict(self) -> dict[str, Any]:
        """The seal as an auditor keeps it (JSON)."""
        return {
            "position": self.position,
            "count": self.count,
            "head": self.head,
            "previous_position": self.previous_position,
            "sealed_at": self.sealed_at,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Seal:
        """A kept seal; ValueError naming what is missing or of the wrong kind."""
        try:
            seal = cls(
                position=int(raw["position"]),
                count=int(raw["count"]),
                head=str(raw["head"]),
                previous_position=int(raw.get("previous_position", 0)),
                sealed_at=str(raw["sealed_at"]),
                key_id=str(raw["key_id"]),
                signature=str(raw.get("signature", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a seal: {type(exc).__name__}: {exc}") from None
        if seal.position < 0 or seal.count < 0 or len(seal.head) != 64:
            raise ValueError("not a seal: position, count or head out of range")
        return seal


def link(head: str, position: int, stream: str, revision: int, content_hash: str) -> str:
    """The global chain's head after one more event: canonical_json of the five-item array,
    written out directly (a unit test holds the two equal), as it runs once per event."""
    text = (
        f"[{_string(head)},{int.__repr__(position)},{_string(stream)},"
        f"{int.__repr__(revision)},{_string(content_hash)}]"
    )
    return hashlib.sha256(text.encode()).hexdigest()


def chain_head(entries: Iterable[SealEntry], head: str = GENESIS_HASH) -> str:
    """The head after `entries`, continuing from `head`."""
    for entry in entries:
        head = link(head, entry.global_position, entry.stream, entry.revision, entry.content_hash)
    return head


def encode_entries(entries: Sequence[tuple[int, str, int, str]]) -> bytes:
    """Entries as stored beside their seal: a JSON array of arrays, compact. Any 4-tuples
    (position, stream, revision, content hash) will do, so a verifier can encode what it found
    and compare bytes."""
    return json.dumps(list(entries), separators=(",", ":")).encode()


def decode_entries(stored: bytes) -> list[SealEntry]:
    """Entries as `encode_entries` wrote them; ValueError when they no longer decode."""
    try:
        entries = list(map(SealEntry._make, json.loads(stored)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the seal's entries no longer decode: {exc}") from None
    for entry in entries:  # cheap beside hashing, and a wrong type must not pass as a mismatch
        if not (type(entry[0]) is int and type(entry[2]) is int):
            raise ValueError(f"the seal's entries no longer decode: {entry!r}")
        if not (isinstance(entry[1], str) and isinstance(entry[3], str)):
            raise ValueError(f"the seal's entries no longer decode: {entry!r}")
    return entries


class SealKey:
    """The private key seals are signed with, and its public half for whoever checks them."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = SealVerifier(private.public_key())

    @classmethod
    def generate(cls) -> SealKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SealKey:
        """A PEM (PKCS#8, unencrypted) Ed25519 private key; ValueError for anything else."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the seal key must be an Ed25519 private key (PEM, PKCS#8)")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def sign(self, seal: Seal) -> Seal:
        """The seal with its signature (and this key's id)."""
        unsigned = Seal(**{**seal.to_dict(), "key_id": self.key_id, "signature": ""})
        signature = self._private.sign(unsigned.signed_bytes()).hex()
        return Seal(**{**unsigned.to_dict(), "signature": signature})


class SealVerifier:
    """The public half of a seal key: checks signatures; its PEM is what auditors keep."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def from_pem(cls, pem: bytes) -> SealVerifier:
        """A PEM Ed25519 public key; ValueError for anything else."""
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("a seal key must be an Ed25519 public key (PEM)")
        return cls(key)

    def public_pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def problem(self, seal: Seal) -> str:
        """Why the seal's signature does not hold ("" when it does)."""
        if seal.key_id != self.key_id:
            return f"it names key {seal.key_id!r}, not the seal key {self.key_id!r}"
        try:
            self._public.verify(bytes.fromhex(seal.signature), seal.signed_bytes())
        except (InvalidSignature, ValueError):
            return "its signature does not match its contents"
        return ""
