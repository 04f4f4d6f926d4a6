"""What the SQLite and PostgreSQL view stores' shared read queries need to know of each dialect.

The queries both adapters run alike live once, in the `*_reads` modules beside this one: they
mark parameters with `?` and run through `Dialect.rows`/`Dialect.row`, which put the dialect's
own placeholder in. Shared SQL therefore holds no literal `?` or `%`. SQL that really differs
(upserts, schema, JSON functions, NULL ordering, numbering of writes) stays in the dialect modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Cursor(Protocol):
    """What the shared queries use of a DB-API cursor (sqlite3's and psycopg's both fit)."""

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the shared queries use of a connection: `execute` with positional parameters."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...


@dataclass(frozen=True)
class Dialect:
    """One SQL dialect's placeholder and the fragments the shared queries splice in."""

    param: str
    """The positional parameter marker: `?` (SQLite) or `%s` (psycopg)."""
    members: str
    """The recursive CTE `members(id)` of a customer and the profiles merged into it now; its
    one parameter (in the dialect's own placeholder) is the customer id."""
    merged: str
    """The condition on `customer_merges` of a link in force now."""
    any_of: Callable[[str, Sequence[str]], tuple[str, list[Any]]]
    """(condition, parameters) that `column` is one of the values (marked `?`)."""

    def sql(self, text: str) -> str:
        """`text` with each `?` marker turned into this dialect's placeholder."""
        return text if self.param == "?" else text.replace("?", self.param)

    def rows(self, conn: Connection, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row `text` (parameters marked `?`) selects."""
        return conn.execute(self.sql(text), params).fetchall()

    def row(self, conn: Connection, text: str, params: Sequence[Any] = ()) -> Any:
        """The first row `text` selects, None if none."""
        return conn.execute(self.sql(text), params).fetchone()
