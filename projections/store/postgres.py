"""The view store on PostgreSQL: every projection's tables in one database, for several servers
and workers on several machines.

The same port and semantics as the SQLite adapter (projections/store/sqlite.py): a batch's view
changes and the checkpoints of the projections it applies commit in one transaction. Writers of
one projection take its advisory lock for their transaction, so they follow one another as under
SQLite's write lock (a batch reads the views it folds into) while different projections write side
by side and readers never wait. Opening the store migrates it (postgres_schema.py beside this
module); each applied batch notifies other processes (postgres_listen.py). Each projection's
tables exist per generation (postgres_generations.py): every query reads the active ones in one
snapshot and every batch writes them under the projection's lock, so a blue/green rebuild's
switch (under the same lock) moves readers and writers at once.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from crm.errors import InvalidInput, InvariantViolated
from crm.postgres_connections import open_pool, translated
from crm.postgres_tracking import read_checkpoint, read_checkpoints, write_checkpoint
from projections.catalogue import (
    CASE_VIEWS,
    CUSTOMER_RISK,
    KPI_FACTS,
    PROJECTION_NAMES,
    PROJECTIONS,
    TIMELINE,
    Batch,
    Projection,
    news,
    projection_named,
)
from projections.store import (
    postgres_cases,
    postgres_generations,
    postgres_kpis,
    postgres_risk,
    postgres_timeline,
)
from projections.store.port import CatchUp, Generations
from projections.store.postgres_generations import READ_ACTIVE, consumer
from projections.store.postgres_listen import CHANNEL, ChangeListener
from projections.store.postgres_schema import (
    Migrated,
    Migration,
    ProjectionTables,
    create_generation,
    drop_generation,
    migrate,
)
from projections.store.remembered import Remembered
from projections.store.sql_reads import SqlViewStore

_LABEL = "postgresql view store"
POOL_SIZE = 16
"""Connections per store: as many as the gRPC server's store threads, so reads never queue."""
LISTEN_START_SECONDS = 10.0


_MODULES: dict[str, ModuleType] = {  # each: TABLES, MIGRATIONS, write(conn, news, kept)
    TIMELINE.name: postgres_timeline,
    CASE_VIEWS.name: postgres_cases,
    CUSTOMER_RISK.name: postgres_risk,
    KPI_FACTS.name: postgres_kpis,
}


def projection_tables(
    projections: Sequence[Projection] = PROJECTIONS,
    extra: Mapping[str, tuple[Migration, ...]] | None = None,
) -> tuple[ProjectionTables, ...]:
    """Each projection's tables and migrations as this code knows them; `extra` appends steps
    (tests use it to play a later release)."""
    return tuple(
        ProjectionTables(
            projection,
            _MODULES[projection.name].TABLES,
            _MODULES[projection.name].MIGRATIONS + (extra or {}).get(projection.name, ()),
        )
        for projection in projections
    )


def projection_lock_key(projection: str) -> int:
    """The advisory lock a writer of `projection` holds for its transaction: a stable 64-bit
    key, the same in every process."""
    digest = hashlib.sha256(f"crm view store {projection}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresViewStore(SqlViewStore[Connection[Any]]):
    """View store in one PostgreSQL database, through a pool of connections."""

    _timeline = postgres_timeline
    _cases = postgres_cases
    _risk = postgres_risk

    def __init__(
        self,
        url: str,
        *,
        field: str = "read_store_url",
        tables: Sequence[ProjectionTables] | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        """Open (a malformed or unreachable URL is InvalidInput naming `field`) and migrate."""
        super().__init__()
        self._url = url
        self._tables = {t.projection.name: t for t in (tables or projection_tables())}
        self._token = uuid.uuid4().hex
        self._listener: ChangeListener | None = None
        self._replaying = threading.local()  # this thread's kept values, while it replays
        self._pool: ConnectionPool = open_pool(url, field, label=_LABEL, max_size=pool_size)
        try:
            with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
                self.migrated: Migrated = migrate(conn, tuple(self._tables.values()))
        except BaseException:
            self._pool.close()
            raise

    def listen_across_processes(self) -> None:
        """Wake this process's watchers when another process applies a batch (LISTEN/NOTIFY)."""
        if self._listener is None:
            self._listener = ChangeListener(self._url, self._token, self.notify_changed, _LABEL)
            self._listener.start(LISTEN_START_SECONDS)

    def close(self) -> None:
        """Stop listening and close the pool; the store is unusable afterwards."""
        if self._listener is not None:
            self._listener.stop(self._send_notification, LISTEN_START_SECONDS)
            self._listener = None
        self._pool.close()
        super().close()

    def _send_notification(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._token))

    def checkpoint(self, consumer: str, source: str = "", generation: int | None = None) -> int:
        """The global position of the last event `consumer` applied from `source`, 0 if none:
        in its active generation, or in `generation`."""
        projection_named(consumer)
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            chosen = generation or postgres_generations.read(conn, consumer).active
            return read_checkpoint(conn, postgres_generations.consumer(consumer, chosen), source)

    def apply(
        self,
        batch: Batch,
        source: str = "",
        projections: Sequence[str] = PROJECTION_NAMES,
        generation: int | None = None,
    ) -> None:
        """Write each projection's changes and its new checkpoint, all in one transaction, in
        each projection's active generation (resolved under its lock) or in `generation`."""
        if not projections:
            raise InvalidInput("projections", "name at least one projection")
        for name in projections:
            projection_named(name)
        if generation is not None and len(projections) != 1:
            raise InvalidInput("projections", "a generation is written one projection at a time")
        if not batch:
            return
        names = sorted(set(projections))
        kept_by_name: dict[str, Remembered[Any]] | None = getattr(self._replaying, "kept", None)
        # Pipeline mode: writes travel together, only reads (generations, checkpoints, views
        # folded into) and the commit wait for the server.
        with (
            translated(_LABEL),
            self._pool.connection() as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            conn.execute(  # in the order of the keys in every process: no deadlock
                "SELECT pg_advisory_xact_lock(key) FROM"
                " (SELECT key FROM unnest(%s::bigint[]) AS key ORDER BY key) AS keys",
                ([projection_lock_key(name) for name in names],),
            )
            # Read under the locks: a switch, which holds them too, is seen whole or not at all.
            known = postgres_generations.read_all(conn)
            chosen = {name: _chosen(name, known, generation) for name in names}
            postgres_generations.use(conn, chosen)
            consumers = {name: consumer(name, chosen[name]) for name in names}
            checkpoints = read_checkpoints(conn, list(consumers.values()), source)
            wrote = False
            for name in names:
                kept = None if kept_by_name is None else kept_by_name[name]
                checkpoint = checkpoints[consumers[name]]
                wrote |= _write(conn, name, chosen[name], source, batch, kept, checkpoint)
            if wrote:  # delivered at commit, to every listening process
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._token))

    def generations(self, projection: str) -> Generations:
        """The projection's active generation and the one a rebuild is filling, if any."""
        projection_named(projection)
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            return postgres_generations.read(conn, projection)

    def begin_generation(self, projection: str) -> int:
        """The generation a rebuild fills: the unfinished one, or a new empty one beside it."""
        projection_named(projection)
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (projection_lock_key(projection),))
            known = postgres_generations.read(conn, projection)
            if known.building is not None:
                return known.building
            building = known.active + 1
            create_generation(conn, self._tables[projection], building)
            postgres_generations.write(conn, projection, Generations(known.active, building))
            return building

    def switch(self, projection: str, generation: int, catch_up: CatchUp) -> int:
        """Bring `generation` up to the live one's head and make it the active one, in one
        transaction under the projection's lock; returns the generation it replaced."""
        projection_named(projection)
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (projection_lock_key(projection),))
            base = postgres_generations.base_schema(conn)  # before `use` changes the path
            known = postgres_generations.read(conn, projection)
            if known.building != generation:
                raise InvariantViolated(
                    f"projection {projection} is not building generation {generation}"
                    f" (building: {known.building}); start the rebuild again"
                )
            row = conn.execute(
                "SELECT MAX(position) FROM checkpoints"
                " WHERE consumer = %s OR starts_with(consumer, %s)",
                (consumer(projection, known.active), f"{consumer(projection, known.active)}@"),
            ).fetchone()
            head = int(row[0] or 0) if row else 0
            reached = read_checkpoint(conn, consumer(projection, generation))
            if head > reached:
                postgres_generations.use(conn, {projection: generation})
                _write(conn, projection, generation, "", catch_up(reached, head), None, reached)
            if projection == TIMELINE.name:
                postgres_timeline.continue_numbering(
                    conn, _schema(base, known.active), _schema(base, generation)
                )
            postgres_generations.write(conn, projection, Generations(generation))
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._token))
            return known.active

    def drop_generation(self, projection: str, generation: int) -> None:
        """Drop a generation no query or writer uses any more (refused for the active one or
        the one being built)."""
        projection_named(projection)
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            # Waits for every transaction that read the generations (a query that may be about
            # to read the old tables) to end, and holds new ones back until the drop commits.
            conn.execute("LOCK TABLE projection_generations IN ACCESS EXCLUSIVE MODE")
            known = postgres_generations.read(conn, projection)
            if generation in (known.active, known.building):
                raise InvariantViolated(
                    f"generation {generation} of projection {projection} is in use; not dropped"
                )
            drop_generation(conn, projection, generation, self._tables[projection].tables)

    @contextmanager
    def rebuild_lock(self, projection: str) -> Iterator[None]:
        """Held by the one rebuild of `projection` at a time: a session advisory lock, freed by
        the server when the holder's connection ends, however it ends."""
        projection_named(projection)
        key = projection_lock_key(f"rebuild {projection}")
        with translated(_LABEL), self._pool.connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            conn.commit()
            if not (row and row[0]):
                raise InvariantViolated(
                    f"another rebuild of projection {projection} is running on this view store;"
                    " wait for it to finish"
                )
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                conn.commit()

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Keep what this thread writes for its next batches instead of reading it back.

        Values kept are trusted only while the projection's checkpoint is the one this thread
        left (checked in each transaction, under the projection's lock), so another writer can
        never make them stale.
        """
        self._replaying.kept = {name: Remembered[Any]() for name in _MODULES}
        try:
            yield
        finally:
            del self._replaying.kept

    @contextmanager
    def _views(self) -> Iterator[Connection[Any]]:
        """A read-only transaction on one snapshot whose path leads to every projection's
        active generation: a switch committed meanwhile is seen whole or not at all."""
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            conn.execute(READ_ACTIVE)  # one round trip: the snapshot, then the path
            yield conn


def _schema(base: str, generation: int) -> str:
    """The timeline's schema in a generation."""
    return base if generation == 1 else postgres_generations.schema(base, TIMELINE.name, generation)


def _chosen(name: str, known: Mapping[str, Generations], generation: int | None) -> int:
    """The generation a batch writes: the one asked for, if it is in use, or the active one."""
    generations = known.get(name, Generations(1))
    chosen = generation or generations.active
    if chosen not in (generations.active, generations.building):
        raise InvariantViolated(
            f"projection {name} has no generation {chosen} (active {generations.active},"
            f" building {generations.building}); a switch or a newer rebuild replaced it"
        )
    return chosen


def _write(
    conn: Connection[Any],
    name: str,
    generation: int,
    source: str,
    batch: Batch,
    kept: Remembered[Any] | None,
    checkpoint: int,
) -> bool:
    """One projection's share of a batch after its `checkpoint` from `source`, in one
    generation (first on the path), moving that checkpoint; False if nothing was new."""
    fresh = news(batch, checkpoint)
    if not fresh:
        return False
    if kept is not None and kept.position != checkpoint:
        kept.forget()  # someone else wrote this projection: trust only the tables
    position = fresh[-1][0].global_position
    _MODULES[name].write(conn, fresh, kept)
    write_checkpoint(conn, consumer(name, generation), source, position)
    if kept is not None:
        kept.position = position
    return True
