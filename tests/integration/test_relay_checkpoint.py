"""The relay's checkpoint file: starts at 0, survives a reopen, refuses use after close."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from crm.errors import OperationalError
from relay.checkpoint import RelayCheckpoint


def test_the_checkpoint_starts_at_zero_and_survives_a_reopen(tmp_path: Path) -> None:
    checkpoint = RelayCheckpoint(tmp_path / "relay.db")
    assert checkpoint.position() == 0
    checkpoint.advance(7)
    checkpoint.close()

    reopened = RelayCheckpoint(tmp_path / "relay.db")
    other = RelayCheckpoint(tmp_path / "relay.db", "other")
    try:
        assert reopened.position() == 7
        assert other.position() == 0
    finally:
        reopened.close()
        other.close()


def test_the_checkpoint_moves_from_another_thread(tmp_path: Path) -> None:
    checkpoint = RelayCheckpoint(tmp_path / "relay.db")
    try:
        mover = threading.Thread(target=checkpoint.advance, args=(3,))
        mover.start()
        mover.join(10)
        assert checkpoint.position() == 3
    finally:
        checkpoint.close()


def test_a_closed_checkpoint_raises_operational_error(tmp_path: Path) -> None:
    checkpoint = RelayCheckpoint(tmp_path / "relay.db")
    checkpoint.close()
    with pytest.raises(OperationalError):
        checkpoint.position()
