"""Seals personal strings with their customer's data key, and opens them again (or cannot).

A sealed value is a string: `crm-pd1:<customer id>:<base64 of nonce + AES-GCM ciphertext>`, the
associated data binding it to the customer, the event type and the field, so it can be neither
moved to another field nor read with another customer's key. Being a string, it rides unchanged
through the stored JSON, the protobuf envelope on Kafka and the export. Opening a value whose key
is gone gives `PLACEHOLDER`.

Unwrapped keys are cached for `KEY_CACHE_SECONDS`. A forget in this process takes effect at once
(the cache entry goes and `generation` moves on, so state caches drop what they hold); another
process learns of it at its next load or read of that customer, which asks the key store whether
the customer was forgotten (`is_forgotten`, one indexed lookup) before it trusts anything cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crm.errors import PersonalDataUnreadable
from crm.personal.keys import NONCE_BYTES, KeyStore

PREFIX = "crm-pd1:"
BLOB_PREFIX = b"crm-pd1-blob:"
PLACEHOLDER = "[forgotten]"
KEY_CACHE_SECONDS = 5.0


class PersonalData:
    """The field cipher every process that reads or writes personal values shares."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        digest_key: bytes,
        cache_seconds: float = KEY_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self._digest_key = digest_key
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: dict[str, tuple[bytes, float]] = {}
        self._forgotten: set[str] = set()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Moves on whenever this process learns that a customer was forgotten."""
        return self._generation

    def digest(self, content: bytes) -> str:
        """A keyed fingerprint (HMAC-SHA256) of a command: a plain hash of one holding personal
        values would let anyone confirm a guessed value long after its customer is forgotten."""
        return "hmac:" + hmac.new(self._digest_key, content, hashlib.sha256).hexdigest()

    def seal(self, customer_id: str, where: str, value: str) -> str:
        """The sealed form of a personal value. Always sealed afresh, even a value that looks
        sealed: a caller could otherwise store text that poisons the stream's decoding."""
        key = self._key_for(customer_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + AESGCM(key).encrypt(nonce, value.encode(), _bound(customer_id, where))
        return f"{PREFIX}{customer_id}:{base64.b64encode(sealed).decode('ascii')}"

    def open(self, where: str, value: str) -> str:
        """The plaintext of a sealed value; PLACEHOLDER once its customer is forgotten; a value
        that was never sealed (stored before encryption) as it is."""
        if not value.startswith(PREFIX):
            return value
        customer_id = _owner(value)
        key = self.readable_key(customer_id)
        if key is None:
            return PLACEHOLDER
        try:
            sealed = base64.b64decode(value.rsplit(":", 1)[1], validate=True)
            plain = AESGCM(key).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _bound(customer_id, where)
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise PersonalDataUnreadable(
                f"a sealed value of customer {customer_id} ({where}) does not open"
            ) from None
        return plain.decode()

    def seal_blob(self, customer_id: str, where: str, data: bytes) -> bytes:
        """A whole blob (a snapshot) sealed with the customer's key."""
        key = self._key_for(customer_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + AESGCM(key).encrypt(nonce, data, _bound(customer_id, where))
        return BLOB_PREFIX + customer_id.encode() + b"\n" + sealed

    def open_blob(self, where: str, blob: bytes) -> bytes | None:
        """A sealed blob's content; None once its customer is forgotten; an unsealed one as is."""
        if not blob.startswith(BLOB_PREFIX):
            return blob
        owner, _, sealed = blob[len(BLOB_PREFIX) :].partition(b"\n")
        customer_id = owner.decode()
        key = self.readable_key(customer_id)
        if key is None:
            return None
        try:
            return AESGCM(key).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _bound(customer_id, where)
            )
        except InvalidTag:
            raise PersonalDataUnreadable(
                f"a sealed blob of customer {customer_id} does not open"
            ) from None

    def forget(self, customer_id: str) -> None:
        """Delete the customer's key; every read in this process shows PLACEHOLDER from now."""
        self.keys.forget(customer_id)
        self._learn_forgotten(customer_id)

    def readable_key(self, customer_id: str) -> bytes | None:
        """The customer's key (cached for a few seconds); None if they were forgotten.

        A sealed value whose key is missing though its customer was never forgotten means the
        key store is not the one the events were sealed with: PersonalDataUnreadable (DATA_LOSS),
        not a placeholder.
        """
        now = self._monotonic()
        with self._lock:
            if customer_id in self._forgotten:
                return None
            cached = self._cached.get(customer_id)
        if cached is not None and now - cached[1] < self._cache_seconds:
            return cached[0]
        key = self.keys.find(customer_id)
        if key is not None:
            with self._lock:
                self._cached[customer_id] = (key, now)
            return key
        if self.keys.is_forgotten(customer_id):
            self._learn_forgotten(customer_id)
            return None
        raise PersonalDataUnreadable(
            f"no data key for customer {customer_id}, who was never forgotten: is the key store"
            " the one these events were sealed with?"
        )

    def is_forgotten(self, customer_id: str) -> bool:
        """Whether the customer was forgotten, by this process or another: what a load or read
        asks before it trusts a state folded, or a key cached, while the key was there. The key
        store is asked every time until the answer is yes (then it is kept)."""
        with self._lock:
            if customer_id in self._forgotten:
                return True
        if self.keys.is_forgotten(customer_id):
            self._learn_forgotten(customer_id)
            return True
        return False

    def _key_for(self, customer_id: str) -> bytes:
        now = self._monotonic()
        with self._lock:
            cached = self._cached.get(customer_id)
        if cached is not None and now - cached[1] < self._cache_seconds:
            return cached[0]
        key = self.keys.key_for(customer_id)  # found, made now, or PersonalDataForgotten
        with self._lock:
            self._cached[customer_id] = (key, now)
        return key

    def _learn_forgotten(self, customer_id: str) -> None:
        with self._lock:
            self._cached.pop(customer_id, None)
            if customer_id not in self._forgotten:
                self._forgotten.add(customer_id)
                self._generation += 1


def _owner(sealed: str) -> str:
    return sealed[len(PREFIX) :].rsplit(":", 1)[0]


def _bound(customer_id: str, where: str) -> bytes:
    return f"crm-pd1|{customer_id}|{where}".encode()
