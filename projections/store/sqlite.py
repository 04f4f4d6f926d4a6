"""The embedded view store: one SQLite file in WAL mode, every projection's tables side by side.

Each batch is written under the database's write lock (BEGIN IMMEDIATE) together with the
checkpoints of the projections it applies, so a reader never sees views ahead of or behind the
recorded positions. Each projection's tables exist per generation (sqlite_generations.py): every
query and every batch resolves the active one inside its transaction, so a blue/green rebuild
fills the next generation beside the live one and switches both at once. Each projection's
tables carry its schema version: when the code's version differs, that projection alone is
dropped and rebuilt from event 0 while the others keep serving.
While a thread replays history (`replaying`), the views it writes are also kept in memory for its
next batches, instead of being read back and decoded; durability stays synchronous=FULL, as a
rebuild's large transactions make the cost of a durable commit negligible.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, cast

from crm.errors import InvalidInput, InvariantViolated
from crm.sqlite_connections import ThreadConnections, immediate, translated
from crm.sqlite_tracking import (
    TRACKING_SCHEMA,
    forget_checkpoints,
    furthest_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from projections.catalogue import (
    CASE_VIEWS,
    CUSTOMER_RISK,
    KPI_FACTS,
    PROJECTION_NAMES,
    PROJECTIONS,
    TIMELINE,
    Batch,
    news,
    projection_named,
)
from projections.store import (
    sqlite_cases,
    sqlite_generations,
    sqlite_kpis,
    sqlite_risk,
    sqlite_timeline,
)
from projections.store.port import CatchUp, Generations
from projections.store.remembered import Remembered
from projections.store.sql_reads import SqlViewStore
from projections.store.sqlite_generations import GENERATIONS_SCHEMA, Renamed

LAYOUT_VERSION = 6
"""The file's layout (user_version): 6 keeps a schema version per projection. A file of an older
layout (5 or less: one "views" projection) is dropped whole and rebuilt from the events."""

log = logging.getLogger(__name__)
_LABEL = "sqlite view store"
REPLAY_CACHE_KIB = 256 * 1024
"""SQLite's page cache while replaying (256 MiB): index pages of big tables stay in memory."""


class _Tables(NamedTuple):
    """One projection's tables: their names (to drop), schema, and how a batch is written."""

    names: tuple[str, ...]
    schema: tuple[str, ...]
    write: Callable[[sqlite3.Connection, Batch, Any], None]  # (conn, news, kept or None)


_TABLES = {
    TIMELINE.name: _Tables(sqlite_timeline.TABLES, sqlite_timeline.SCHEMA, sqlite_timeline.write),
    CASE_VIEWS.name: _Tables(sqlite_cases.TABLES, sqlite_cases.SCHEMA, sqlite_cases.write),
    CUSTOMER_RISK.name: _Tables(sqlite_risk.TABLES, sqlite_risk.SCHEMA, sqlite_risk.write),
    KPI_FACTS.name: _Tables(sqlite_kpis.TABLES, sqlite_kpis.SCHEMA, sqlite_kpis.write),
}


class SqliteViewStore(SqlViewStore[sqlite3.Connection]):
    """View store in one SQLite file; one connection per thread, as gRPC serves from a pool."""

    _timeline = sqlite_timeline
    _cases = sqlite_cases
    _risk = sqlite_risk

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._path = Path(path)
        self._connections = ThreadConnections(self._path, _LABEL)
        self._replaying = threading.local()  # this thread's kept values, while it replays
        conn = self._connection()
        with translated(_LABEL):
            conn.execute("PRAGMA journal_mode=WAL")
            with immediate(conn):
                _migrate(conn)

    def _connection(self) -> sqlite3.Connection:
        with translated(_LABEL):
            return self._connections.get()

    def close(self) -> None:
        """Close every thread's connection; the store is unusable afterwards."""
        self._connections.close()
        super().close()

    def checkpoint(self, consumer: str, source: str = "", generation: int | None = None) -> int:
        """The global position of the last event `consumer` applied from `source`, 0 if none:
        in its active generation, or in `generation`."""
        projection_named(consumer)
        conn = self._connection()
        with translated(_LABEL), _reading(conn):
            chosen = generation or sqlite_generations.read(conn, consumer).active
            return _checkpoint(conn, consumer, chosen, source)

    def apply(
        self,
        batch: Batch,
        source: str = "",
        projections: Sequence[str] = PROJECTION_NAMES,
        generation: int | None = None,
    ) -> None:
        """Write each projection's changes and its new checkpoint, all in one transaction, in
        each projection's active generation (resolved in that transaction) or in `generation`."""
        if not projections:
            raise InvalidInput("projections", "name at least one projection")
        for name in projections:
            projection_named(name)
        if generation is not None and len(projections) != 1:
            raise InvalidInput("projections", "a generation is written one projection at a time")
        if not batch:
            return
        conn = self._connection()
        kept_by_name: dict[str, Remembered[Any]] | None = getattr(self._replaying, "kept", None)
        with translated(_LABEL), immediate(conn):
            generations = sqlite_generations.read_all(conn)
            for name in projections:
                known = generations.get(name, Generations(1))
                chosen = generation or known.active
                if chosen not in (known.active, known.building):
                    raise InvariantViolated(
                        f"projection {name} has no generation {chosen} (active {known.active},"
                        f" building {known.building}); a switch or a newer rebuild replaced it"
                    )
                kept = None if kept_by_name is None else kept_by_name[name]
                _write(conn, generations, name, chosen, source, batch, kept)

    def generations(self, projection: str) -> Generations:
        """The projection's active generation and the one a rebuild is filling, if any."""
        projection_named(projection)
        conn = self._connection()
        with translated(_LABEL), _reading(conn):
            return sqlite_generations.read(conn, projection)

    def begin_generation(self, projection: str) -> int:
        """The generation a rebuild fills: the unfinished one, or a new empty one beside it."""
        projection_named(projection)
        conn = self._connection()
        with translated(_LABEL), immediate(conn):
            known = sqlite_generations.read(conn, projection)
            if known.building is not None:
                return known.building
            building = known.active + 1
            _drop(conn, projection, building)  # what a crash between drop and commit left
            renamed = _renamed(conn, {projection: building})
            for statement in _TABLES[projection].schema:
                renamed.execute(statement)
            sqlite_generations.write(conn, projection, Generations(known.active, building))
            return building

    def switch(self, projection: str, generation: int, catch_up: CatchUp) -> int:
        """Bring `generation` up to the live one's head and make it the active one, in one write
        transaction; returns the generation it replaced."""
        projection_named(projection)
        conn = self._connection()
        with translated(_LABEL), immediate(conn):
            generations = sqlite_generations.read_all(conn)
            known = generations.get(projection, Generations(1))
            if known.building != generation:
                raise InvariantViolated(
                    f"projection {projection} is not building generation {generation}"
                    f" (building: {known.building}); start the rebuild again"
                )
            head = furthest_checkpoint(conn, sqlite_generations.consumer(projection, known.active))
            reached = _checkpoint(conn, projection, generation, "")
            if head > reached:
                _write(conn, generations, projection, generation, "", catch_up(reached, head), None)
            sqlite_generations.write(conn, projection, Generations(generation))
            return known.active

    def drop_generation(self, projection: str, generation: int) -> None:
        """Drop a generation no query or writer uses any more (refused for the active one or
        the one being built)."""
        projection_named(projection)
        conn = self._connection()
        with translated(_LABEL), immediate(conn):
            known = sqlite_generations.read(conn, projection)
            if generation in (known.active, known.building):
                raise InvariantViolated(
                    f"generation {generation} of projection {projection} is in use; not dropped"
                )
            _drop(conn, projection, generation)

    def rebuild_lock(self, projection: str) -> AbstractContextManager[None]:
        """Held by the one rebuild of `projection` at a time (a lock file beside the store)."""
        projection_named(projection)
        return sqlite_generations.rebuild_lock(self._path, projection, _LABEL)

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Keep what this thread writes for its next batches, and a larger page cache.

        Values kept are trusted only while the projection's checkpoint is the one this thread
        left (checked in each transaction), so another writer can never make them stale.
        """
        conn = self._connection()
        with translated(_LABEL):
            cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
            conn.execute(f"PRAGMA cache_size = -{REPLAY_CACHE_KIB}")
        self._replaying.kept = {name: Remembered[Any]() for name in _TABLES}
        try:
            yield
        finally:
            del self._replaying.kept
            with translated(_LABEL):
                conn.execute(f"PRAGMA cache_size = {int(cache_size)}")

    @contextmanager
    def _views(self) -> Iterator[sqlite3.Connection]:
        """A read transaction over every projection's active generation: one WAL snapshot, so a
        switch committed meanwhile is seen whole or not at all."""
        conn = self._connection()
        with translated(_LABEL), _reading(conn):
            yield _renamed(conn, sqlite_generations.read_all(conn))


@contextmanager
def _reading(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction (a WAL snapshot) for everything read inside."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _renamed(conn: sqlite3.Connection, generations: dict[str, Any]) -> sqlite3.Connection:
    """The connection naming each projection's tables in its generation (a `Generations` or a
    generation number per projection; none given: the first); the view modules take it as a
    connection, using only `execute` and `executemany`."""
    active = {
        name: value.active if isinstance(value, Generations) else int(value)
        for name, value in generations.items()
    }
    tables = {name: tables.names for name, tables in _TABLES.items()}
    renames = frozenset(sqlite_generations.renames(tables, active).items())
    return cast(sqlite3.Connection, Renamed(conn, sqlite_generations.renaming(renames)))


def _checkpoint(conn: sqlite3.Connection, projection: str, generation: int, source: str) -> int:
    """A generation's position from `source`."""
    return read_checkpoint(conn, sqlite_generations.consumer(projection, generation), source)


def _write(
    conn: sqlite3.Connection,
    generations: dict[str, Generations],
    projection: str,
    generation: int,
    source: str,
    batch: Batch,
    kept: Remembered[Any] | None,
) -> None:
    """One projection's share of a batch, in one generation, with that generation's checkpoint."""
    checkpoint = _checkpoint(conn, projection, generation, source)
    fresh = news(batch, checkpoint)
    if not fresh:
        return
    if kept is not None and kept.position != checkpoint:
        kept.forget()  # someone else wrote this projection: trust only the tables
    position = fresh[-1][0].global_position
    renamed = _renamed(conn, {**generations, projection: generation})
    _TABLES[projection].write(renamed, fresh, kept)
    write_checkpoint(conn, sqlite_generations.consumer(projection, generation), source, position)
    if kept is not None:
        kept.position = position


def _drop(conn: sqlite3.Connection, projection: str, generation: int) -> None:
    """Drop one generation's tables and checkpoints."""
    suffix = sqlite_generations.suffix(generation)
    for table in _TABLES[projection].names:
        conn.execute(f"DROP TABLE IF EXISTS {table}{suffix}")
    forget_checkpoints(conn, sqlite_generations.consumer(projection, generation))


def _migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing; rebuild a projection whose schema version changed, alone.

    Views are derived data: dropping a projection's tables (its active generation's) also drops
    their checkpoints, and the projector refills it from event 0 of the event store.
    """
    layout = conn.execute("PRAGMA user_version").fetchone()[0]
    if layout not in (0, LAYOUT_VERSION):
        log.warning("view store layout %d is not %d; rebuilding every view", layout, LAYOUT_VERSION)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(TRACKING_SCHEMA)
    conn.execute(GENERATIONS_SCHEMA)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS projection_versions"
        " (projection TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    versions = dict(conn.execute("SELECT projection, version FROM projection_versions"))
    for projection in PROJECTIONS:
        known = sqlite_generations.read(conn, projection.name)
        stored = versions.get(projection.name)
        if stored is not None and stored != projection.schema_version:
            log.warning(
                "projection %s has schema %d, the code %d; rebuilding it from event 0",
                projection.name,
                stored,
                projection.schema_version,
            )
            _drop(conn, projection.name, known.active)
            if known.building is not None:  # filled by the older code: of no use now
                _drop(conn, projection.name, known.building)
                known = Generations(known.active)
                sqlite_generations.write(conn, projection.name, known)
        renamed = _renamed(conn, {projection.name: known.active})
        for statement in _TABLES[projection.name].schema:
            renamed.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO projection_versions (projection, version) VALUES (?, ?)",
            (projection.name, projection.schema_version),
        )
    conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
