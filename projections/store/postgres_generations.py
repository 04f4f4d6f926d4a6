"""Generations of a projection's tables in the PostgreSQL view store, for blue/green rebuilds.

Generation 1 of every projection lives in the store's own schema (the first of its search path,
where the tables always were); generation n of a projection in a schema of its own beside it,
`<store schema>_<projection>_g<n>`, with the same table names. `projection_generations` names
each projection's active generation and the one being built. A transaction that reads or writes
views first puts the schemas of the generations it uses in front of its search path (SET LOCAL,
gone at its end), so the view modules' SQL, which names plain tables, serves every generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import Connection, sql

from projections.store.port import Generations

GENERATIONS_SCHEMA = """
    CREATE TABLE IF NOT EXISTS projection_generations (
        projection TEXT COLLATE "C" PRIMARY KEY,
        active INTEGER NOT NULL,
        building INTEGER
    )
"""

READ_ACTIVE = """
    SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
    SELECT set_config('search_path', concat_ws(', ', (
        SELECT string_agg(format('%I', current_schema() || '_' || projection || '_g' || active),
                          ', ' ORDER BY projection)
        FROM projection_generations WHERE active <> 1
    ), current_setting('search_path')), true)
"""
"""A read transaction's start, in one round trip: one snapshot for all it reads, and every
projection's active generation first on its path (read in that snapshot)."""


def consumer(projection: str, generation: int) -> str:
    """The name a generation's checkpoints are kept under: its own, so a half-built generation's
    position never passes for the live one's."""
    return projection if generation == 1 else f"{projection}#g{generation}"


def base_schema(conn: Connection[Any]) -> str:
    """The store's own schema (generation 1's); read before a path is changed."""
    row = conn.execute("SELECT current_schema()").fetchone()
    return str(row[0]) if row and row[0] else "public"


def schema(base: str, projection: str, generation: int) -> str:
    """The schema holding a later generation's tables (generation 1 lives in `base`)."""
    return f"{base}_{projection}_g{generation}"


def read_all(conn: Connection[Any]) -> dict[str, Generations]:
    """Every projection's generations (a projection without a row is at generation 1)."""
    rows = conn.execute("SELECT projection, active, building FROM projection_generations")
    return {
        str(name): Generations(int(active), None if building is None else int(building))
        for name, active, building in rows
    }


def read(conn: Connection[Any], projection: str) -> Generations:
    """One projection's generations, in the caller's transaction."""
    return read_all(conn).get(projection, Generations(1))


def write(conn: Connection[Any], projection: str, generations: Generations) -> None:
    """Record a projection's generations; the caller's transaction makes it atomic."""
    conn.execute(
        "INSERT INTO projection_generations (projection, active, building) VALUES (%s, %s, %s)"
        " ON CONFLICT (projection) DO UPDATE SET active = EXCLUDED.active,"
        " building = EXCLUDED.building",
        (projection, generations.active, generations.building),
    )


def use(conn: Connection[Any], generations: Mapping[str, int]) -> None:
    """Put the schemas of these projections' generations first on the transaction's path
    (generation 1 is the store's own schema, already on it)."""
    later = {name: generation for name, generation in generations.items() if generation != 1}
    if not later:
        return
    base = base_schema(conn)
    path = sql.SQL(", ").join(
        sql.Identifier(schema(base, name, generation)) for name, generation in later.items()
    )
    conn.execute(
        "SELECT set_config('search_path', %s || ', ' || current_setting('search_path'), true)",
        (path.as_string(conn),),
    )
