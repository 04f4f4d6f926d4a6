"""The field cipher: sealing and opening personal values, the placeholder once forgotten, and the
codec sealing exactly the fields the protos mark personal (nested ones too)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.command_handling import command_digest
from crm.errors import IntegrityError, PersonalDataForgotten, PersonalDataUnreadable
from crm.eventcodec import EventCodec
from crm.personal.cipher import PLACEHOLDER, PREFIX, PersonalData
from crm.personal.keys import KeyStore, MasterKey, ensure_master_key_file, load_master_key
from crm.personal.sqlite_keys import SqliteKeyStore
from crm.vocabulary import Channel
from services.customer.commands import RegisterCustomer
from services.customer.events import (
    ContactPoint,
    CustomerRegistered,
    PurchaseRecorded,
    Segment,
    Tier,
)
from services.events import EVENT_TYPES

MASTER = MasterKey(bytes(32))
DIGEST_KEY = bytes(range(32))
NAME = "Aiko Tanaka"
ADDRESS = "aiko@example.jp"


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[KeyStore]:
    store = SqliteKeyStore(tmp_path / "keys.db", MASTER)
    yield store
    store.close()


def registered(customer_id: str = "c-1") -> CustomerRegistered:
    return CustomerRegistered(
        customer_id,
        NAME,
        (ContactPoint(Channel.EMAIL, ADDRESS), ContactPoint(Channel.PHONE, "")),
        "ja",
        Segment.B2C,
        "",
        Tier.VIP,
    )


def test_a_value_round_trips_and_is_not_stored_in_the_clear(keys: KeyStore) -> None:
    cipher = PersonalData(keys, digest_key=DIGEST_KEY)
    sealed = cipher.seal("c-1", "T|name", NAME)
    assert sealed.startswith(PREFIX + "c-1:") and NAME not in sealed
    assert cipher.seal("c-1", "T|name", NAME) != sealed  # a fresh nonce every time
    assert cipher.open("T|name", sealed) == NAME
    crafted = cipher.seal("c-1", "T|name", sealed)  # a caller sending a sealed-looking value
    assert crafted != sealed and cipher.open("T|name", crafted) == sealed


def test_a_sealed_value_opens_only_where_and_for_whom_it_was_sealed(keys: KeyStore) -> None:
    cipher = PersonalData(keys, digest_key=DIGEST_KEY)
    sealed = cipher.seal("c-1", "T|name", NAME)
    with pytest.raises(PersonalDataUnreadable, match="does not open"):
        cipher.open("T|subject", sealed)  # moved to another field
    cipher.seal("c-2", "T|name", "someone else")
    moved = sealed.replace(PREFIX + "c-1:", PREFIX + "c-2:")
    with pytest.raises(PersonalDataUnreadable, match="does not open"):
        cipher.open("T|name", moved)  # claimed by another customer


def test_a_forgotten_customer_reads_as_the_placeholder_and_takes_no_new_values(
    keys: KeyStore,
) -> None:
    cipher = PersonalData(keys, digest_key=DIGEST_KEY)
    sealed = cipher.seal("c-1", "T|name", NAME)
    other = cipher.seal("c-2", "T|name", "kept")
    generation = cipher.generation
    cipher.forget("c-1")
    assert cipher.generation > generation
    assert cipher.open("T|name", sealed) == PLACEHOLDER
    assert cipher.open("T|name", other) == "kept"
    assert cipher.open("T|name", "stored before sealing") == "stored before sealing"
    with pytest.raises(PersonalDataForgotten):
        cipher.seal("c-1", "T|name", "new")


def test_another_process_sees_a_forget_at_its_next_question_or_once_its_key_expires(
    keys: KeyStore,
) -> None:
    now = [0.0]
    writer, reader = (
        PersonalData(keys, digest_key=DIGEST_KEY),
        PersonalData(keys, digest_key=DIGEST_KEY, monotonic=lambda: now[0]),
    )
    sealed = writer.seal("c-1", "T|name", NAME)
    assert reader.open("T|name", sealed) == NAME and not reader.is_forgotten("c-1")
    generation = reader.generation
    writer.forget("c-1")
    assert reader.is_forgotten("c-1")  # asked at once, no waiting for the key cache
    assert reader.generation == generation + 1  # so its state caches drop what they hold
    assert reader.open("T|name", sealed) == PLACEHOLDER
    other = writer.seal("c-2", "T|name", NAME)
    assert reader.open("T|name", other) == NAME
    writer.forget("c-2")
    now[0] += 60.0  # past the key cache: opening alone finds the key gone
    assert reader.open("T|name", other) == PLACEHOLDER


def test_a_missing_key_of_a_customer_never_forgotten_is_an_integrity_error(
    keys: KeyStore, tmp_path: Path
) -> None:
    sealed = PersonalData(keys, digest_key=DIGEST_KEY).seal("c-1", "T|name", NAME)
    elsewhere = SqliteKeyStore(tmp_path / "other-keys.db", MASTER)
    try:
        with pytest.raises(PersonalDataUnreadable, match="never forgotten"):
            PersonalData(elsewhere, digest_key=DIGEST_KEY).open("T|name", sealed)
    finally:
        elsewhere.close()


def test_blobs_are_sealed_whole_and_unreadable_once_forgotten(keys: KeyStore) -> None:
    cipher = PersonalData(keys, digest_key=DIGEST_KEY)
    blob = cipher.seal_blob("c-1", "snapshot|customer-c-1", b'{"name": "Aiko"}')
    assert b"Aiko" not in blob
    assert cipher.open_blob("snapshot|customer-c-1", blob) == b'{"name": "Aiko"}'
    with pytest.raises(PersonalDataUnreadable):
        cipher.open_blob("snapshot|customer-c-2", blob)
    assert cipher.open_blob("x", b"{}") == b"{}"  # an unsealed blob as it is
    cipher.forget("c-1")
    assert cipher.open_blob("snapshot|customer-c-1", blob) is None


def test_the_codec_seals_exactly_the_personal_fields_nested_ones_too(keys: KeyStore) -> None:
    codec = EventCodec(EVENT_TYPES, personal=PersonalData(keys, digest_key=DIGEST_KEY))
    _, data = codec.encode(registered(), "c-1")
    stored = json.loads(data)
    assert stored["name"].startswith(PREFIX)
    assert stored["contact_points"][0]["address"].startswith(PREFIX)
    assert stored["contact_points"][1]["address"] == ""  # empty stays empty
    assert (stored["language"], stored["tier"], stored["customer_id"]) == ("ja", "vip", "c-1")
    assert NAME.encode() not in data and ADDRESS.encode() not in data
    assert codec.decode(CustomerRegistered.TYPE, data) == registered()
    # A type without personal fields is stored exactly as without a cipher.
    purchase = PurchaseRecorded("c-1", "o-1", "Tea", 500, "JPY")
    assert codec.encode(purchase, "c-1") == EventCodec(EVENT_TYPES).encode(purchase)


def test_the_codec_shows_the_placeholder_once_forgotten(keys: KeyStore) -> None:
    cipher = PersonalData(keys, digest_key=DIGEST_KEY)
    codec = EventCodec(EVENT_TYPES, personal=cipher)
    _, data = codec.encode(registered(), "c-1")
    cipher.forget("c-1")
    decoded = codec.decode(CustomerRegistered.TYPE, data)
    assert decoded.name == PLACEHOLDER
    assert [p.address for p in decoded.contact_points] == [PLACEHOLDER, ""]
    assert (decoded.tier, decoded.language) == (Tier.VIP, "ja")


def test_a_codec_without_a_cipher_carries_sealed_values_unchanged(keys: KeyStore) -> None:
    _, data = EventCodec(EVENT_TYPES, personal=PersonalData(keys, digest_key=DIGEST_KEY)).encode(
        registered(), "c-1"
    )
    plain = EventCodec(EVENT_TYPES)
    event = plain.decode(CustomerRegistered.TYPE, data)
    assert event.name.startswith(PREFIX)
    assert plain.encode(event) == (CustomerRegistered.TYPE, data)  # what Kafka consumers rebuild


def test_sealing_needs_the_customer(keys: KeyStore) -> None:
    codec = EventCodec(EVENT_TYPES, personal=PersonalData(keys, digest_key=DIGEST_KEY))
    with pytest.raises(IntegrityError, match="customer id"):
        codec.encode(registered())


def test_a_master_key_is_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        MasterKey(b"short")


def test_command_digests_are_keyed_so_they_confirm_no_guessed_value(keys: KeyStore) -> None:
    command = RegisterCustomer("c-1", NAME, (), "ja", Segment.B2C)
    keyed = command_digest(command, PersonalData(keys, digest_key=DIGEST_KEY))
    assert keyed.startswith("hmac:")
    assert keyed == command_digest(command, PersonalData(keys, digest_key=DIGEST_KEY))
    assert keyed != command_digest(command, PersonalData(keys, digest_key=bytes(32)))
    assert keyed.removeprefix("hmac:") != command_digest(command)  # not the plain sha256
    assert MASTER.derived("a") != MASTER.derived("b")


def test_processes_starting_together_agree_on_one_development_master_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / "dev-master.key"
    barrier = threading.Barrier(8)
    created: list[bool] = []

    def start() -> None:
        barrier.wait()
        created.append(ensure_master_key_file(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert path.stat().st_mode & 0o077 == 0  # its owner's alone
    wrapped = load_master_key(path).wrap("c-1", bytes(32))
    assert load_master_key(path).unwrap("c-1", wrapped) == bytes(32)
