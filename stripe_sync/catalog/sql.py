"""The catalog over a direct SQL connection (PostgreSQL or SQLite) with SQLAlchemy Core.

Reads are keyset pages (`id > last ORDER BY id LIMIT n`), each in its own short
transaction, so a long read holds no locks and no cursor between pages, and a page read again
after a dropped connection gives the same rows. Bounds travel as text and are cast to the id
column's type by the database, so integer ids compare numerically and every comparison
follows the database's own ordering. Every call goes through `Database.call`: classified,
retried by the catalog's policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from stripe_sync.catalog.base import missing_columns_error
from stripe_sync.catalog.database import NO_RETRY, Database
from stripe_sync.core.contract import SOURCE_COLUMNS, WRITE_BACK_COLUMNS, WriteBack
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.identity import METADATA_PREFIX
from stripe_sync.core.retry import RetryPolicy, RetryStats

# SQLite allows 32,766 bound parameters a statement (PostgreSQL 65,535); a write-back row
# binds 7, so larger batches are split into several statements.
MAX_ROWS_PER_STATEMENT = 4_000
T = TypeVar("T")
# The contract's types, not the reflected ones: a SQLite file may declare anything
# (TEXT, TIMESTAMP, nothing) and PostgreSQL converts on assignment.
_WRITE_BACK_TYPES = {column: sa.Text() for column in WRITE_BACK_COLUMNS} | {
    "synced_at": sa.DateTime(timezone=True)
}


class SqlCatalog:
    """A catalog table reached through SQLAlchemy: `table` may be `schema.table`."""

    def __init__(
        self,
        url: str,
        table: str = "products",
        metadata_columns: Sequence[str] = (),
        *,
        timeout_s: float = 30.0,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
    ) -> None:
        self.table = table
        self._metadata_columns = tuple(metadata_columns)
        self.database = Database(
            url,
            name="catalog",
            setting="CATALOG_DATABASE_URL",
            timeout_s=timeout_s,
            retry=retry,
            stats=stats,
        )
        self._url = self.database.url
        self._is_sqlite = self.database.is_sqlite

    @property
    def engine(self) -> sa.Engine:
        return self.database.engine

    def describe(self) -> str:
        return f"{self.location()}, table {self.table}"

    def check(self) -> None:
        # No retries: a wrong URL or a database that is down fails the pre-flight at once.
        if "_table" not in self.__dict__:
            self.__dict__["_table"] = self._reflected(retry=False)
        missing = [
            column
            for column in SOURCE_COLUMNS + self._metadata_columns
            if column not in self._table.columns
        ]
        present = [column for column in WRITE_BACK_COLUMNS if column in self._table.columns]
        if present and len(present) < len(WRITE_BACK_COLUMNS):
            missing += [column for column in WRITE_BACK_COLUMNS if column not in present]
        if missing:
            raise missing_columns_error(self.table, missing)

    @cached_property
    def has_write_back_columns(self) -> bool:
        return all(column in self._table.columns for column in WRITE_BACK_COLUMNS)

    def iter_ids(self, start: str | None = None, page_size: int = 10_000) -> Iterator[str]:
        query = sa.select(self._id_text)
        for page in self._pages(query, start, None, page_size):
            yield from (row[0] for row in page)

    def count_ids(self, start: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(self._table)
        if start is not None:
            query = query.where(self._id >= self._as_id(start))
        return self._read(lambda connection: connection.execute(query).scalar_one())

    def read_rows(
        self, lower: str | None, upper: str | None, page_size: int = 1_000
    ) -> Iterator[dict]:
        for page in self._pages(sa.select(*self._row_columns()), lower, upper, page_size):
            yield from (dict(row._mapping) for row in page)

    def changed_since(self, after: tuple[str, str] | None, limit: int) -> list[dict]:
        updated_at = self._table.c.updated_at
        query = sa.select(*self._row_columns()).where(updated_at.is_not(None))
        if after is not None:
            # SQLite compares the stored text itself: a CAST to a date type would make it a number.
            at = sa.literal(after[0], sa.Text)
            if not self._is_sqlite:
                at = sa.cast(at, updated_at.type)
            query = query.where(
                sa.tuple_(updated_at, self._id) > sa.tuple_(at, self._as_id(after[1]))
            )
        query = query.order_by(updated_at, self._id).limit(limit)
        return self._read(
            lambda connection: [dict(row._mapping) for row in connection.execute(query)]
        )

    def write_back(self, results: Sequence[WriteBack]) -> int:
        def transaction() -> int:
            with self.database.connect() as connection, connection.begin():
                return self.write_back_in(connection, results)

        return self.database.call(transaction)

    def write_back_in(self, connection: Connection, results: Sequence[WriteBack]) -> int:
        """The write-back in the caller's transaction (the state store's, when it shares this
        database); returns the statements made."""
        chunks = [
            results[at : at + MAX_ROWS_PER_STATEMENT]
            for at in range(0, len(results), MAX_ROWS_PER_STATEMENT)
        ]
        for chunk in chunks:
            connection.execute(self._write_back_statement(chunk))
        return len(chunks)

    def close(self) -> None:
        self.database.dispose()

    @cached_property
    def _table(self) -> sa.Table:
        return self._reflected(retry=True)

    def _reflected(self, *, retry: bool) -> sa.Table:
        schema, _, name = self.table.rpartition(".")

        def reflect(connection: Connection) -> sa.Table:
            try:
                return sa.Table(
                    name, sa.MetaData(), schema=schema or None, autoload_with=connection
                )
            except sa.exc.NoSuchTableError:
                raise CatalogError(
                    f"Table {self.table} not found in {self.location()}: create it or set "
                    "the table name."
                ) from None

        return self._read(reflect, retry=retry)

    def _row_columns(self) -> list[sa.ColumnElement]:
        """The contract's columns, `id` as text; the price as the database's own text: exact
        for NUMERIC, and a stray string in a numeric column (SQLite allows one) reaches
        validation instead of crashing the read."""
        return (
            [self._id_text.label("id")]
            + [
                sa.cast(self._table.c[column], sa.Text).label(column)
                if column == "price"
                else self._table.c[column]
                for column in SOURCE_COLUMNS[1:]
                + (WRITE_BACK_COLUMNS if self.has_write_back_columns else ())
            ]
            + [
                sa.cast(self._table.c[column], sa.Text).label(METADATA_PREFIX + column)
                for column in self._metadata_columns
            ]
        )

    @property
    def _id(self) -> sa.Column:
        if "id" not in self._table.columns:
            raise missing_columns_error(self.table, ["id"])
        return self._table.c.id

    @property
    def _id_text(self) -> sa.ColumnElement:
        return sa.cast(self._id, sa.Text)

    def _as_id(self, text: str) -> sa.ColumnElement:
        """A text bound as a value of the id column's type, cast by the database."""
        return sa.cast(sa.literal(text, sa.Text), self._id.type)

    def _pages(
        self, query: sa.Select, lower: str | None, upper: str | None, page_size: int
    ) -> Iterator[Sequence[sa.Row]]:
        """Keyset pages of `query` over lower <= id < upper; the first column is id as text."""
        if upper is not None:
            query = query.where(self._id < self._as_id(upper))
        query = query.order_by(self._id).limit(page_size)
        page_query = query if lower is None else query.where(self._id >= self._as_id(lower))
        while True:
            # A page is read again whole after a dropped connection: the same keyset, the
            # same rows.
            page = self._read(lambda connection, q=page_query: connection.execute(q).all())
            if page:
                yield page
            if len(page) < page_size:
                return
            page_query = query.where(self._id > self._as_id(page[-1][0]))

    def _write_back_statement(self, results: Sequence[WriteBack]) -> sa.Update:
        """WITH write_back AS (VALUES ...) UPDATE ... FROM write_back: one statement setting
        only the write-back columns (SQLite takes no column list on a VALUES alias; a CTE
        works on both)."""
        rows = (
            sa.values(
                sa.column("id", sa.Text),
                *(sa.column(column, _WRITE_BACK_TYPES[column]) for column in WRITE_BACK_COLUMNS),
                name="write_back",
            )
            .data([(result.id, *result.columns().values()) for result in results])
            .cte("write_back")
        )
        return (
            sa.update(self._table)
            .where(self._id == sa.cast(rows.c.id, self._id.type))
            .values({column: self._typed(rows.c[column]) for column in WRITE_BACK_COLUMNS})
        )

    def _typed(self, value: sa.ColumnElement) -> sa.ColumnElement:
        """On PostgreSQL, a VALUES column of NULLs only (a reset, a rollback) is text unless
        cast; SQLite has no such types to cast to."""
        return value if self._is_sqlite else sa.cast(value, value.type)

    def _read(self, read: Callable[[Connection], T], *, retry: bool = True) -> T:
        """`read(connection)` in a connection of its own, retried as a whole."""

        def attempt() -> T:
            with self.database.connect() as connection:
                return read(connection)

        return self.database.call(attempt, retry=retry)

    def location(self) -> str:
        """Which database, e.g. "PostgreSQL 127.0.0.1:5432/cms"; never a password."""
        return self.database.location()
