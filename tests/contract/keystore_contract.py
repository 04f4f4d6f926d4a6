"""The contract every data-key store keeps, subclassed once per adapter (SQLite, PostgreSQL)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod

import pytest

from crm.errors import PersonalDataForgotten, PersonalDataUnreadable
from crm.personal.keys import KEY_BYTES, KeyStore, MasterKey

MASTER = MasterKey(bytes(range(32)))
OTHER_MASTER = MasterKey(bytes(range(1, 33)))


class KeyStoreContract(ABC):
    """What the field cipher relies on, whatever keeps the keys."""

    @abstractmethod
    def make_store(self, master: MasterKey = MASTER) -> KeyStore:
        """A store over the test's storage; a second call reaches the same keys."""

    def test_a_key_is_made_once_and_found_again(self) -> None:
        store = self.make_store()
        try:
            assert store.find("c-1") is None
            key = store.key_for("c-1")
            assert len(key) == KEY_BYTES
            assert store.key_for("c-1") == key
            assert store.find("c-1") == key
            assert store.key_for("c-2") != key
        finally:
            store.close()

    def test_keys_outlive_the_store_object(self) -> None:
        first = self.make_store()
        key = first.key_for("c-1")
        first.close()
        second = self.make_store()
        try:
            assert second.find("c-1") == key
        finally:
            second.close()

    def test_forgetting_deletes_the_key_for_good(self) -> None:
        store = self.make_store()
        try:
            store.key_for("c-1")
            kept = store.key_for("c-2")
            assert not store.is_forgotten("c-1")
            store.forget("c-1")
            store.forget("c-1")  # idempotent
            assert store.find("c-1") is None
            assert store.is_forgotten("c-1")
            with pytest.raises(PersonalDataForgotten, match="c-1"):
                store.key_for("c-1")  # never a fresh key for a forgotten customer
            assert store.find("c-2") == kept and not store.is_forgotten("c-2")
        finally:
            store.close()

    def test_a_customer_without_a_key_can_be_forgotten(self) -> None:
        store = self.make_store()
        try:
            store.forget("c-9")
            assert store.is_forgotten("c-9") and store.find("c-9") is None
        finally:
            store.close()

    def test_keys_do_not_unwrap_with_another_master_key(self) -> None:
        store = self.make_store()
        store.key_for("c-1")
        store.close()
        other = self.make_store(OTHER_MASTER)
        try:
            with pytest.raises(PersonalDataUnreadable, match="master key"):
                other.find("c-1")
        finally:
            other.close()

    def test_concurrent_makers_of_one_key_agree(self) -> None:
        store = self.make_store()
        keys: list[bytes] = []
        barrier = threading.Barrier(4)

        def make() -> None:
            barrier.wait()
            keys.append(store.key_for("c-race"))

        threads = [threading.Thread(target=make) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(keys) == 4 and len(set(keys)) == 1
        finally:
            store.close()
