"""Versioned migrations of the PostgreSQL view store: each projection's tables evolve in place.

Two numbers per projection, recorded in the database:
- its migrations, steps of table layout (a column, an index) applied once each, in order, in place:
  an upgrade keeps every row and serves on;
- its schema version (projections/catalogue.py), the meaning of its rows: when the code's version
  differs from the recorded one, that projection's rows and checkpoints are cleared (its tables
  stay, migrated) and it refills from event 0, while the other projections keep serving.
Processes that open the store together migrate one after the other (an advisory lock), each in one
transaction: a migration that fails leaves the store as it was. Both apply to a projection's
active generation (postgres_generations.py); a generation a rebuild was filling under other code
is dropped, and the next rebuild starts it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql

from crm.errors import OperationalError
from crm.postgres_tracking import SCHEMA_LOCK, TRACKING_SCHEMA, forget_checkpoints
from projections.catalogue import Projection
from projections.store import postgres_generations
from projections.store.port import Generations

log = logging.getLogger(__name__)

BOOKKEEPING = (
    TRACKING_SCHEMA,
    postgres_generations.GENERATIONS_SCHEMA,
    """
    CREATE TABLE IF NOT EXISTS projection_versions (
        projection TEXT COLLATE "C" PRIMARY KEY,
        version INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS projection_migrations (
        projection TEXT COLLATE "C" NOT NULL,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, step)
    )
    """,
)


@dataclass(frozen=True)
class Migration:
    """One step of a projection's table layout; once released, never edited, only followed."""

    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class ProjectionTables:
    """What the store knows of one projection's tables: their names and how they came to be."""

    projection: Projection
    tables: tuple[str, ...]
    migrations: tuple[Migration, ...]


@dataclass(frozen=True)
class Migrated:
    """What opening the store did: migration steps applied, projections cleared to rebuild."""

    applied: tuple[tuple[str, str], ...]  # (projection, migration name)
    rebuilt: tuple[str, ...]


def migrate(conn: Connection[Any], projections: Sequence[ProjectionTables]) -> Migrated:
    """Bring every projection's tables to the code's layout and version, in the caller's
    transaction; refuses (OperationalError) a store migrated by code newer than this."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    for statement in BOOKKEEPING:
        conn.execute(statement)
    versions = {
        str(name): int(version)
        for name, version in conn.execute("SELECT projection, version FROM projection_versions")
    }
    done: dict[str, list[str]] = {}
    for name, step_name in conn.execute(
        "SELECT projection, name FROM projection_migrations ORDER BY projection, step"
    ):
        done.setdefault(str(name), []).append(str(step_name))
    applied: list[tuple[str, str]] = []
    rebuilt: list[str] = []
    path = _path(conn)
    for tables in projections:
        name = tables.projection.name
        _check_history(name, done.get(name, []), tables.migrations)
        first = len(done.get(name, []))
        known = postgres_generations.read(conn, name)
        stored = versions.get(name)
        wanted = tables.projection.schema_version
        changed = stored is not None and stored != wanted
        _restore(conn, path)
        if known.building is not None and (changed or first < len(tables.migrations)):
            drop_generation(conn, name, known.building, tables.tables)
            postgres_generations.write(conn, name, Generations(known.active))
        postgres_generations.use(conn, {name: known.active})
        for step, migration in enumerate(tables.migrations[first:], start=first + 1):
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO projection_migrations (projection, step, name) VALUES (%s, %s, %s)",
                (name, step, migration.name),
            )
            applied.append((name, migration.name))
            log.info("view store: projection %s migrated: %s", name, migration.name)
        if changed:
            log.warning(
                "projection %s has schema %d, the code %d; rebuilding it from event 0",
                name,
                stored,
                wanted,
            )
            # TRUNCATE keeps identity counters going: a live watch's sequence never goes back.
            conn.execute(f"TRUNCATE {', '.join(tables.tables)}")
            forget_checkpoints(conn, postgres_generations.consumer(name, known.active))
            rebuilt.append(name)
        conn.execute(
            "INSERT INTO projection_versions (projection, version) VALUES (%s, %s)"
            " ON CONFLICT (projection) DO UPDATE SET version = EXCLUDED.version",
            (name, wanted),
        )
    _restore(conn, path)
    return Migrated(tuple(applied), tuple(rebuilt))


def create_generation(conn: Connection[Any], tables: ProjectionTables, generation: int) -> None:
    """A later generation's schema with the projection's tables, every migration applied; in
    the caller's transaction, under the schema lock."""
    name = tables.projection.name
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    path = _path(conn)
    drop_generation(conn, name, generation, tables.tables)  # what a failed drop left
    base = postgres_generations.base_schema(conn)
    conn.execute(
        sql.SQL("CREATE SCHEMA {}").format(
            sql.Identifier(postgres_generations.schema(base, name, generation))
        )
    )
    postgres_generations.use(conn, {name: generation})
    for migration in tables.migrations:
        for statement in migration.statements:
            conn.execute(statement)
    _restore(conn, path)


def drop_generation(
    conn: Connection[Any], projection: str, generation: int, tables: Sequence[str]
) -> None:
    """Drop a generation's tables (generation 1's in the store's schema, a later one's schema)
    and its checkpoints, in the caller's transaction."""
    base = postgres_generations.base_schema(conn)
    if generation == 1:
        for table in tables:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(base, table))
            )
    else:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(postgres_generations.schema(base, projection, generation))
            )
        )
    forget_checkpoints(conn, postgres_generations.consumer(projection, generation))


def _path(conn: Connection[Any]) -> str:
    """The transaction's search path, to restore after working in a generation's schema."""
    row = conn.execute("SELECT current_setting('search_path')").fetchone()
    return str(row[0]) if row else ""


def _restore(conn: Connection[Any], path: str) -> None:
    conn.execute("SELECT set_config('search_path', %s, true)", (path,))


def _check_history(name: str, done: list[str], migrations: Sequence[Migration]) -> None:
    """The steps applied must be the first steps this code knows, by name, in order."""
    known = [migration.name for migration in migrations]
    if len(done) > len(known):
        raise OperationalError(
            f"postgresql view store: projection {name} has {len(done)} migrations applied, this"
            f" code knows {len(known)} (the newest applied: {done[-1]!r}); run the release"
            " that migrated it, or a newer one"
        )
    for step, (applied, expected) in enumerate(zip(done, known, strict=False), start=1):
        if applied != expected:
            raise OperationalError(
                f"postgresql view store: projection {name} migration {step} is {applied!r} in"
                f" the database but {expected!r} in this code; released migrations never change"
            )
