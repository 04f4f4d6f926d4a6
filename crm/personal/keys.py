"""The data-key port: one AES-256 key per customer, kept apart from the events, deletable.

Deleting a customer's key is what forgets them: every personal field sealed with it becomes
unreadable ciphertext wherever it was copied (event store, WAL, snapshots, Kafka, exports). A
forgotten customer leaves a tombstone, so no new key is ever made for them by mistake.

The adapters keep keys wrapped (AES-GCM) by a master key from configuration (`MasterKey`); a KMS
could implement `KeyStore` itself, or only `MasterKey.wrap/unwrap`.
"""

from __future__ import annotations

import base64
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crm.errors import PersonalDataForgotten, PersonalDataUnreadable

KEY_BYTES = 32
NONCE_BYTES = 12
DEV_MASTER_KEY_FILE = "dev-personal-data-master.key"


class KeyStore(ABC):
    """Customers' data keys (unwrapped): made on first need, read, and deleted to forget."""

    @abstractmethod
    def key_for(self, customer_id: str) -> bytes:
        """The customer's key, made now if they have none; PersonalDataForgotten if forgotten."""

    @abstractmethod
    def find(self, customer_id: str) -> bytes | None:
        """The customer's key; None if they never had one or were forgotten."""

    @abstractmethod
    def forget(self, customer_id: str) -> None:
        """Delete the customer's key for good and leave a tombstone (idempotent)."""

    @abstractmethod
    def is_forgotten(self, customer_id: str) -> bool:
        """Whether the customer's key was deleted."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections."""


def forgotten_error(customer_id: str) -> PersonalDataForgotten:
    return PersonalDataForgotten(
        f"customer {customer_id} was forgotten; personal data about them can no longer be recorded"
    )


class MasterKey:
    """Wraps data keys for storage (AES-GCM, bound to the customer id as associated data)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key = key

    def derived(self, purpose: str) -> bytes:
        """A key for another purpose (HKDF-SHA256 of the master key), never the master itself."""
        return HKDF(hashes.SHA256(), KEY_BYTES, None, purpose.encode()).derive(self._key)

    def wrap(self, customer_id: str, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, _bound(customer_id))

    def unwrap(self, customer_id: str, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _bound(customer_id)
            )
        except Exception:  # cryptography's InvalidTag: another master key, or altered bytes
            raise PersonalDataUnreadable(
                f"the data key of customer {customer_id} does not unwrap with this master key"
            ) from None


def _bound(customer_id: str) -> bytes:
    return b"crm-data-key|" + customer_id.encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def load_master_key(path: Path) -> MasterKey:
    """The master key a file holds (base64 of 32 bytes); ValueError saying what is wrong."""
    try:
        text = path.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot be read ({type(exc).__name__})") from None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("must hold the base64 of 32 random bytes") from None
    return MasterKey(raw)


def new_master_key_text() -> bytes:
    """The content of a new master key file."""
    return base64.b64encode(os.urandom(KEY_BYTES)) + b"\n"


def ensure_master_key_file(path: Path) -> bool:
    """Create a development master key at `path` unless one is there; True if created.

    Processes sharing a data dir start together (make run-distributed): the file appears at once
    and whole (a hard link of a finished private file), so exactly one of them writes it and
    every one reads the same key.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp made it readable by its owner only
            file.write(new_master_key_text())
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        os.unlink(temporary)
    return True
