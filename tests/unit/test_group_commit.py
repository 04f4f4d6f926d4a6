"""The group committer on a fake transaction: batching, failing alone, failing together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from crm.errors import ConcurrencyConflict, OperationalError
from crm.eventstore.group_commit import GroupCommitter, TransactionLost
from tests.contract.eventstore_contract import DEADLINE_SECONDS, wait_until


class FakeDatabase:
    """Records what each transaction committed; a savepoint undoes a failed piece's writes."""

    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.fail_commit: Exception | None = None
        self.lose_transaction = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    @contextmanager
    def transaction(self) -> Iterator[list[str]]:
        self.entered.set()
        assert self.release.wait(DEADLINE_SECONDS)
        writes: list[str] = []
        yield writes
        if self.fail_commit is not None:
            raise self.fail_commit
        self.committed.append(writes)

    @contextmanager
    def savepoint(self, writes: list[str]) -> Iterator[None]:
        mark = len(writes)
        try:
            yield
        except Exception as exc:
            if self.lose_transaction:
                raise TransactionLost(str(exc)) from exc
            del writes[mark:]
            raise


def writer(name: str, fail: Exception | None = None) -> Callable[[list[str]], str]:
    def work(writes: list[str]) -> str:
        writes.append(name)
        if fail is not None:
            raise fail
        return f"{name} written"

    return work


def run_together(
    committer: GroupCommitter[list[str]], database: FakeDatabase, works: list[Callable[..., str]]
) -> list[str | BaseException]:
    """Hold the writer in its first transaction until every other piece queued behind it."""
    outcomes: list[str | BaseException] = [RuntimeError("no outcome")] * len(works)

    def submit(index: int) -> None:
        try:
            outcomes[index] = committer.submit(works[index])
        except BaseException as exc:  # compared by the test
            outcomes[index] = exc

    database.release.clear()
    threads = [threading.Thread(target=submit, args=(i,), daemon=True) for i in range(len(works))]
    threads[0].start()
    assert database.entered.wait(DEADLINE_SECONDS)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: committer.queued == len(works) - 1, "the others to queue")
    database.release.set()
    for thread in threads:
        thread.join(DEADLINE_SECONDS)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_a_lone_submission_commits_in_a_transaction_of_its_own() -> None:
    database = FakeDatabase()
    committer = GroupCommitter(database.transaction, database.savepoint)
    assert committer.submit(writer("a")) == "a written"
    assert database.committed == [["a"]]
    assert committer.transactions == 1


def test_submissions_that_wait_for_the_writer_share_the_next_transaction() -> None:
    database = FakeDatabase()
    committer = GroupCommitter(database.transaction, database.savepoint)
    outcomes = run_together(committer, database, [writer(n) for n in "abcde"])
    assert outcomes == [f"{n} written" for n in "abcde"]
    assert database.committed[0] == ["a"]
    assert sorted(database.committed[1]) == ["b", "c", "d", "e"]
    assert committer.transactions == 2


def test_a_batch_never_exceeds_its_bound() -> None:
    database = FakeDatabase()
    committer = GroupCommitter(database.transaction, database.savepoint, max_batch=2)
    outcomes = run_together(committer, database, [writer(n) for n in "abcde"])
    assert all(isinstance(o, str) for o in outcomes)
    assert [len(batch) for batch in database.committed] == [1, 2, 2]


def test_a_failing_piece_fails_alone_and_writes_nothing() -> None:
    database = FakeDatabase()
    committer = GroupCommitter(database.transaction, database.savepoint)
    conflict = ConcurrencyConflict("stale revision")
    works = [writer("a"), writer("b"), writer("c", fail=conflict), writer("d")]
    outcomes = run_together(committer, database, works)
    assert outcomes[2] is conflict
    assert [outcomes[i] for i in (0, 1, 3)] == ["a written", "b written", "d written"]
    assert sorted(w for batch in database.committed for w in batch) == ["a", "b", "d"]


def test_a_failed_commit_fails_every_piece_of_the_batch() -> None:
    database = FakeDatabase()
    committer = GroupCommitter(database.transaction, database.savepoint)
    database.fail_commit = OperationalError("disk I/O error")
    with pytest.raises(OperationalError, match="disk"):
        committer.submit(writer("a"))
    assert database.committed == []
    database.fail_commit = None
    assert committer.submit(writer("b")) == "b written"  # the committer is usable again


def test_a_lost_transaction_fails_the_pieces_that_had_succeeded_too() -> None:
    database = FakeDatabase()
    committer = GroupCommitter(database.transaction, database.savepoint)
    database.lose_transaction = True
    full = OperationalError("database or disk is full")
    outcomes = run_together(committer, database, [writer("a"), writer("b"), writer("c", full)])
    assert outcomes[0] == "a written"  # its own transaction, before the trouble
    assert outcomes[1] is full and outcomes[2] is full
    assert database.committed == [["a"]]
