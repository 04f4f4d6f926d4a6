"""Generations of a projection's tables in the SQLite view store, for blue/green rebuilds.

A projection's tables exist once per generation: generation 1 under their plain names (the layout
every file had before generations), generation n under the names suffixed `__g<n>`. The table
`projection_generations` names each projection's active generation and the one being built, if
any; every query reads it inside its own read transaction and every batch inside its write
transaction, so flipping it (one committed row) switches readers and writers at once, and a
reader sees all of one generation or all of the other. The SQL of the view modules names the
plain tables; `Renamed` rewrites those names to a generation's, so one copy of each query serves
every generation.
"""

from __future__ import annotations

import fcntl
import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crm.errors import InvariantViolated
from crm.sqlite_connections import translated
from projections.store.port import Generations

GENERATIONS_SCHEMA = """
    CREATE TABLE IF NOT EXISTS projection_generations (
        projection TEXT PRIMARY KEY,
        active INTEGER NOT NULL,
        building INTEGER
    )
"""


def suffix(generation: int) -> str:
    """What a generation adds to each table name: nothing for the first."""
    return "" if generation == 1 else f"__g{generation}"


def consumer(projection: str, generation: int) -> str:
    """The name a generation's checkpoints are kept under: its own, so a half-built generation's
    position never passes for the live one's."""
    return projection if generation == 1 else f"{projection}#g{generation}"


def read_all(conn: sqlite3.Connection) -> dict[str, Generations]:
    """Every projection's generations (a projection without a row is at generation 1)."""
    return {
        str(name): Generations(int(active), None if building is None else int(building))
        for name, active, building in conn.execute(
            "SELECT projection, active, building FROM projection_generations"
        )
    }


def read(conn: sqlite3.Connection, projection: str) -> Generations:
    """One projection's generations, in the caller's transaction."""
    row = conn.execute(
        "SELECT active, building FROM projection_generations WHERE projection = ?", (projection,)
    ).fetchone()
    if row is None:
        return Generations(1)
    return Generations(int(row[0]), None if row[1] is None else int(row[1]))


def write(conn: sqlite3.Connection, projection: str, generations: Generations) -> None:
    """Record a projection's generations; the caller's write transaction makes it atomic."""
    conn.execute(
        "INSERT INTO projection_generations (projection, active, building) VALUES (?, ?, ?)"
        " ON CONFLICT (projection) DO UPDATE SET active = excluded.active,"
        " building = excluded.building",
        (projection, generations.active, generations.building),
    )


_INDEX = re.compile(r"(CREATE\s+(?:UNIQUE\s+)?INDEX\s+IF\s+NOT\s+EXISTS\s+)(\w+)", re.IGNORECASE)


class Renaming:
    """Statements rewritten to name a generation's tables instead of the plain ones (whole
    words only; index names created get the suffix too, as they share one namespace). One
    per set of renames (`renaming`), shared by every connection, each statement rewritten once."""

    def __init__(self, renames: Mapping[str, str]) -> None:
        self._renames = dict(renames)
        self._pattern = (
            re.compile(r"\b(" + "|".join(map(re.escape, sorted(self._renames))) + r")\b")
            if self._renames
            else None
        )
        self._index_suffix = _common_suffix(self._renames)
        self._cache: dict[str, str] = {}

    def sql(self, statement: str) -> str:
        """The statement naming this generation's tables."""
        if self._pattern is None:
            return statement
        rewritten = self._cache.get(statement)
        if rewritten is None:
            rewritten = self._pattern.sub(lambda m: self._renames[m.group(1)], statement)
            if self._index_suffix:
                suffix = self._index_suffix
                rewritten = _INDEX.sub(lambda m: m.group(1) + m.group(2) + suffix, rewritten)
            self._cache[statement] = rewritten
        return rewritten


@functools.lru_cache(maxsize=64)
def renaming(renames: frozenset[tuple[str, str]]) -> Renaming:
    """The shared `Renaming` for these (plain name, generation's name) pairs."""
    return Renaming(dict(renames))


class Renamed:
    """An SQLite connection whose statements pass through a `Renaming`: it offers what the view
    modules use of a connection (`execute`, `executemany`)."""

    def __init__(self, conn: sqlite3.Connection, renaming: Renaming) -> None:
        self._conn = conn
        self._renaming = renaming

    def execute(self, statement: str, params: Any = ()) -> sqlite3.Cursor:
        return self._conn.execute(self._renaming.sql(statement), params)

    def executemany(self, statement: str, params: Iterable[Any]) -> sqlite3.Cursor:
        return self._conn.executemany(self._renaming.sql(statement), params)


@contextmanager
def rebuild_lock(store_file: Path, projection: str, label: str) -> Iterator[None]:
    """Held by one rebuild of `projection` at a time: a lock file beside the store, freed by the
    system when its process ends, however it ends; a second is refused at once."""
    lock_path = store_file.with_name(f"{store_file.name}.rebuild-{projection}.lock")
    with translated(label), open(lock_path, "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvariantViolated(
                f"another rebuild of projection {projection} is running on {store_file};"
                " wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def renames(tables: Mapping[str, tuple[str, ...]], active: Mapping[str, int]) -> dict[str, str]:
    """Plain table name -> the name in its projection's generation, for generations past 1."""
    return {
        table: table + suffix(active[name])
        for name, names in tables.items()
        if active.get(name, 1) != 1
        for table in names
    }


def _common_suffix(renames: Mapping[str, str]) -> str:
    """The suffix index names get: only a connection renamed for one generation creates tables."""
    suffixes = {new[len(old) :] for old, new in renames.items()}
    return suffixes.pop() if len(suffixes) == 1 else ""
