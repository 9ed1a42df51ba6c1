"""The catalog over a direct SQL connection (PostgreSQL or SQLite) with SQLAlchemy Core.

The catalog is a model: a table or view, or an SQL query read as a subquery, narrowed by an
SQL `where` and the mapping's skip and soft-delete rules, its columns mapped onto the
pipeline's fields (`stripe_sync.core.mapping`). The ids are read in keyset pages over the
mapped id (`id > last ORDER BY id LIMIT n`), rows by id in chunks, each read in its own short
transaction, so a long read holds no locks and no cursor between pages, and a page read again
after a dropped connection gives the same rows. Ids travel as text and are cast to the id
column's type by the database, so integer ids compare numerically and every comparison
follows the database's own ordering. Every call goes through `Database.call`: classified,
retried by the catalog's policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from stripe_sync.backends.missing_columns import missing_columns_error
from stripe_sync.backends.rows import chunks
from stripe_sync.backends.sql.database import IDS_PER_QUERY, Database
from stripe_sync.core.contract import DEFAULT_TABLE, WRITE_BACK_COLUMNS, WriteBack
from stripe_sync.core.errors import CatalogError, CatalogFailure
from stripe_sync.core.mapping import (
    DEFAULT_MAPPING,
    PRICE_FIELDS_AS_TEXT,
    FieldMapping,
    PricesModel,
    ValueRule,
    read_as_is,
    read_as_text,
    value_boolean,
    value_text,
)
from stripe_sync.core.retry import CALL_TIMEOUT_S, NO_RETRY, RetryPolicy, RetryStats

T = TypeVar("T")
# The contract's types, not the reflected ones: a SQLite file may declare anything
# (TEXT, TIMESTAMP, nothing) and PostgreSQL converts on assignment.
_WRITE_BACK_TYPES = {column: sa.Text() for column in WRITE_BACK_COLUMNS} | {
    "synced_at": sa.DateTime(timezone=True)
}
# A write-back column's bind parameter: `column` itself is reserved in an UPDATE's SET.
_WRITE_BACK_PARAM = "write_back_"


def _write_back_params(columns: dict) -> dict:
    return {_WRITE_BACK_PARAM + column: value for column, value in columns.items()}


class SqlCatalog:
    """A catalog model reached through SQLAlchemy: a table or view (`schema.table` works), or
    an SQL `query`, its rows narrowed by `where` and its columns mapped by `mapping`."""

    def __init__(
        self,
        url: str,
        table: str = DEFAULT_TABLE,
        mapping: FieldMapping = DEFAULT_MAPPING,
        *,
        query: str | None = None,
        where: str | None = None,
        prices: PricesModel | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
    ) -> None:
        self.table = table
        self.mapping = mapping
        self.query = _query(query)
        self.where = where
        self.prices = prices
        # Shared by the state when it is kept in this database (`SqlState.in_catalog_database`).
        self.database = Database(
            url,
            name="catalog",
            setting="CATALOG_DATABASE_URL",
            timeout_s=timeout_s,
            retry=retry,
            stats=stats,
        )
        self._is_sqlite = self.database.is_sqlite

    @property
    def engine(self) -> sa.Engine:
        return self.database.engine

    def describe(self) -> str:
        model = f"table {self.table}" if self.query is None else f"query (state as {self.table})"
        described = f"{self.location()}, {model}" + (f" where {self.where}" if self.where else "")
        return described + (f"; prices: {self.prices.describe()}" if self.prices else "")

    def check(self) -> None:
        # Read like any read: a failover is waited out; a wrong URL is refused at once.
        present = set(self._source.c.keys())
        missing = [
            (key, column) for key, column in self.mapping.referenced() if column not in present
        ]
        lacking = [column for column in WRITE_BACK_COLUMNS if column not in present]
        partial = self.query is None and 0 < len(lacking) < len(WRITE_BACK_COLUMNS)
        if missing or partial:
            raise missing_columns_error(self.table, missing, lacking if partial else [])
        conditions = [("catalog.where", self._where_condition())] if self.where else []
        conditions += [
            (f"catalog.{name}", self._kept_by(name, rule))
            for name, rule in self.mapping.removal_rules()
        ]
        for key, condition in conditions:
            self._probe(self._source, condition, key, self._model_name())
        if self.prices is not None:
            self._check_prices(self.prices)

    def _check_prices(self, prices: PricesModel) -> None:
        self._prices_columns_present(prices)
        if prices.where:
            self._probe(
                self._prices_source,
                _sql_text(f"({prices.where})"),
                "prices.where",
                f"table {prices.table}" if prices.query is None else "prices.query",
            )

    def _prices_columns_present(self, prices: PricesModel) -> None:
        present = set(self._prices_source.c.keys())
        missing = [
            (key, column) for key, column in prices.mapping.referenced() if column not in present
        ]
        if missing:
            raise missing_columns_error(prices.table or "prices.query", missing)

    def _probe(self, source, condition: sa.ColumnElement, key: str, model: str) -> None:
        """Refuse a condition (a `where` setting, a removal rule) the model can't run."""
        probe = sa.select(sa.literal(1)).select_from(source).where(condition).limit(0)
        try:
            self._read(lambda connection: connection.execute(probe).all())
        except CatalogFailure as failure:
            if failure.retryable:
                raise
            raise CatalogError(f"{key} does not work on {model}: {failure}") from None

    @cached_property
    def has_write_back_columns(self) -> bool:
        return self.query is None and all(
            column in self._source.columns for column in WRITE_BACK_COLUMNS
        )

    def iter_ids(self, page_size: int = 10_000) -> Iterator[str]:
        # A row without an id can't be read back by it (a view's or a query's id may be NULL).
        query = self._select(self._id_text).where(self._id.is_not(None))
        query = query.order_by(self._id).limit(page_size)
        page_query = query
        while True:
            # A page is read again whole after a dropped connection: the same keyset, the
            # same rows.
            page = self._read(lambda connection, q=page_query: connection.execute(q).all())
            yield from (row[0] for row in page)
            if len(page) < page_size:
                return
            page_query = query.where(self._id > self._as_id(page[-1][0]))

    def count_ids(self) -> int:
        query = self._select(sa.func.count())
        return self._read(lambda connection: connection.execute(query).scalar_one())

    def read_rows(self, ids: Sequence[str]) -> Iterator[dict]:
        for chunk in chunks(ids, IDS_PER_QUERY):
            query = (
                self._select(*self._row_columns())
                .where(self._one_of(self._id, chunk))
                .order_by(self._id)
            )
            rows = self._read(lambda connection, q=query: connection.execute(q).all())
            yield from (self.mapping.shaped(row._mapping) for row in rows)

    def read_prices(self, product_ids: Sequence[str]) -> Iterator[dict]:
        if self.prices is None:
            return
        self._prices_columns_present(self.prices)
        mapping, source = self.prices.mapping, self._prices_source
        product_id, price_id = (source.c[mapping.column(name)] for name in ("product_id", "id"))
        columns = [
            sa.cast(source.c[column], sa.Text).label(label)
            if label in PRICE_FIELDS_AS_TEXT
            else source.c[column].label(label)
            for label, column in mapping.read().items()
        ]
        query = sa.select(*columns).select_from(source)
        if self.prices.where:
            query = query.where(_sql_text(f"({self.prices.where})"))
        for chunk in chunks(product_ids, IDS_PER_QUERY):
            chunk_query = query.where(self._one_of(product_id, chunk)).order_by(
                product_id, price_id
            )
            rows = self._read(lambda connection, q=chunk_query: connection.execute(q).all())
            yield from (mapping.shaped(row._mapping) for row in rows)

    def changed_since(self, after: tuple[str, str] | None, limit: int) -> list[dict]:
        if self.mapping.column("updated_at") is None:
            return []  # no column says when a row changed: only the removal scan finds changes
        updated_at = self._field("updated_at")
        query = self._select(*self._row_columns()).where(updated_at.is_not(None))
        if after is not None:
            # SQLite compares the stored text itself: a CAST to a date type would make it a number.
            at = (
                sa.literal(after[0], sa.Text)
                if self._is_sqlite
                else self._bound(after[0], updated_at)
            )
            query = query.where(
                sa.tuple_(updated_at, self._id) > sa.tuple_(at, self._as_id(after[1]))
            )
        query = query.order_by(updated_at, self._id).limit(limit)
        return self._read(
            lambda connection: [
                self.mapping.shaped(row._mapping) for row in connection.execute(query)
            ]
        )

    def write_back(self, results: Sequence[WriteBack]) -> int:
        def transaction() -> int:
            with self.database.connect() as connection, connection.begin():
                return self.write_back_in(connection, results)

        return self.database.call(transaction)

    def write_back_in(self, connection: Connection, results: Sequence[WriteBack]) -> int:
        """The write-back in the caller's transaction: `write_back`'s own, or the state's when
        it shares this database (`SqlState.record`); returns the statements made."""
        if not results:
            return 0
        connection.execute(
            self._write_back_statement,
            [
                {"write_back_id": result.id, **_write_back_params(result.columns())}
                for result in results
            ],
        )
        return 1

    def close(self) -> None:
        self.database.dispose()

    @cached_property
    def _source(self) -> sa.Table | sa.Subquery:
        return self._reflected(self.table, self.query, "catalog")

    @cached_property
    def _prices_source(self) -> sa.Table | sa.Subquery:
        assert self.prices is not None
        return self._reflected(self.prices.table, _query(self.prices.query), "prices")

    def _reflected(
        self, table: str | None, query: str | None, setting: str
    ) -> sa.Table | sa.Subquery:
        """The table or view, reflected; or the query as a subquery with its columns (untyped:
        bounds are compared as the database casts them). `setting`: the settings section
        that names it, for errors."""
        if query is not None:
            text = _sql_text(query)
            probe = sa.select(sa.text("*")).select_from(text.columns().subquery("model")).limit(0)
            try:
                names = self._read(lambda connection: list(connection.execute(probe).keys()))
            except CatalogFailure as failure:
                if failure.retryable:
                    raise
                raise CatalogError(f"{setting}.query does not run: {failure}") from None
            return text.columns(*map(sa.column, names)).subquery(f"{setting}_model")
        schema, _, name = table.rpartition(".")

        def reflect(connection: Connection) -> sa.Table:
            try:
                return sa.Table(
                    name, sa.MetaData(), schema=schema or None, autoload_with=connection
                )
            except sa.exc.NoSuchTableError:
                raise CatalogError(
                    f"Table {table} not found in {self.location()}: create it or set "
                    f"{setting}.table."
                ) from None

        return self._read(reflect)

    def _model_name(self) -> str:
        return f"table {self.table}" if self.query is None else "catalog.query"

    def _field(self, name: str) -> sa.ColumnElement:
        """The column of a pipeline field."""
        return self._column(self.mapping.column(name))

    def _column(self, column: str) -> sa.ColumnElement:
        if column not in self._source.c:
            keys = [key for key, mapped in self.mapping.referenced() if mapped == column]
            raise missing_columns_error(self.table, [(keys[0] if keys else column, column)])
        return self._source.c[column]

    def _select(self, *columns: sa.ColumnElement) -> sa.Select:
        """`columns` of the model's rows that are part of the catalog."""
        query = sa.select(*columns).select_from(self._source)
        if self.where:
            query = query.where(self._where_condition())
        for name, rule in self.mapping.removal_rules():
            query = query.where(self._kept_by(name, rule))
        return query

    def _where_condition(self) -> sa.ColumnElement:
        return _sql_text(f"({self.where})")

    def _kept_by(self, name: str, rule: ValueRule) -> sa.ColumnElement:
        """Rows the rule `catalog.<name>` leaves in: its column NULL, or not one of its values,
        compared in the column's own type (so an index on the column serves)."""
        column = self._column(rule.column)
        if not rule.values:
            return column.is_(None)
        values = [self._rule_value(f"catalog.{name}", column, value) for value in rule.values]
        return sa.or_(column.is_(None), column.not_in(values))

    def _rule_value(
        self, setting: str, column: sa.ColumnElement, value: object
    ) -> sa.ColumnElement:
        """A rule's value as a value of `column`: read here for a boolean column (SQLite stores
        1 and 0, which no cast of 'false' gives); else its text, cast to the column's type by
        PostgreSQL, and converted by the column's affinity on SQLite (a CAST to a date type
        would make it a number there)."""
        text = value_text(value)
        if isinstance(column.type, sa.Boolean):
            flag = value_boolean(text)
            if flag is None:
                raise CatalogError(
                    f"{setting}: {column.name} is a boolean column, so its values must "
                    f"be true or false, not {text!r}."
                )
            return sa.literal(flag, column.type)
        if self._is_sqlite:
            return sa.literal(text, sa.Text)
        return self._bound(text, column)

    def _row_columns(self) -> list[sa.ColumnElement]:
        """The mapping's columns labelled as it reads them, `id` as text; prices and metadata
        as the database's own text: exact for NUMERIC, and a stray string in a numeric column
        (SQLite allows one) reaches validation instead of crashing the read."""
        columns = [
            self._read_column(label, self._source.c[column])
            for label, column in self.mapping.read().items()
        ]
        if self.has_write_back_columns:
            columns += [self._source.c[column] for column in WRITE_BACK_COLUMNS]
        return columns

    @staticmethod
    def _read_column(label: str, column: sa.ColumnElement) -> sa.ColumnElement:
        if read_as_text(label):
            return sa.cast(column, sa.Text).label(label)
        if read_as_is(label):  # the driver's value: no processing of the reflected type
            return sa.type_coerce(column, sa.types.NULLTYPE).label(label)
        return column.label(label)

    @property
    def _id(self) -> sa.ColumnElement:
        return self._field("id")

    @property
    def _id_text(self) -> sa.ColumnElement:
        return sa.cast(self._id, sa.Text)

    def _as_id(self, text: str) -> sa.ColumnElement:
        """A text bound as a value of the id column's type, cast by the database."""
        return self._bound(text, self._id)

    def _bound(self, text: str, column: sa.ColumnElement) -> sa.ColumnElement:
        """`text` as a value of `column`: cast to its type, or for a query's (untyped) column
        sent untyped, so the database reads it as the column's type."""
        if isinstance(column.type, sa.types.NullType):
            return sa.bindparam(None, text, type_=sa.types.NULLTYPE)
        return sa.cast(sa.literal(text, sa.Text), _unsized(column.type))

    def _one_of(self, column: sa.ColumnElement, ids: Sequence[str]) -> sa.ColumnElement:
        """`column` is one of `ids` (text). PostgreSQL compares in the column's type, so its
        index serves (one array parameter); elsewhere, and for a query's untyped column, the
        column as text is compared with the ids as they were read."""
        if self._is_sqlite or isinstance(column.type, sa.types.NullType):
            return sa.cast(column, sa.Text).in_(list(ids))
        ids_param = sa.literal(list(ids), postgresql.ARRAY(sa.Text))
        return column == sa.any_(sa.cast(ids_param, postgresql.ARRAY(_unsized(column.type))))

    @cached_property
    def _write_back_statement(self) -> sa.Update:
        """UPDATE ... SET (only the write-back columns) WHERE id = ...: one statement, run
        with a parameter set per row (compiled once: a VALUES list of 400 rows takes
        SQLAlchemy 50 ms to compile, this 7 ms in all)."""
        row_id = sa.bindparam("write_back_id", type_=sa.Text)
        return (
            sa.update(self._source)
            .where(self._id == sa.cast(row_id, self._id.type))
            .values(
                {
                    column: sa.bindparam(
                        _WRITE_BACK_PARAM + column, type_=_WRITE_BACK_TYPES[column]
                    )
                    for column in WRITE_BACK_COLUMNS
                }
            )
        )

    def _read(self, read: Callable[[Connection], T]) -> T:
        """`read(connection)` in a connection of its own, retried as a whole."""

        def attempt() -> T:
            with self.database.connect() as connection:
                return read(connection)

        return self.database.call(attempt)

    def location(self) -> str:
        """Which database, e.g. "PostgreSQL 127.0.0.1:5432/cms"; never a password."""
        return self.database.location()


def _unsized(type_: sa.types.TypeEngine) -> sa.types.TypeEngine:
    """A column's type without its size, to cast a value into: PostgreSQL silently cuts an
    explicit cast to VARCHAR(5) or rounds one to NUMERIC(5, 0), so `draft_old` would match
    `draft`."""
    if isinstance(type_, sa.String) and not isinstance(type_, sa.Enum):
        return sa.Text()
    if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
        return sa.Numeric()
    return type_


def _query(query: str | None) -> str | None:
    """A query of the settings as a subquery takes it: a trailing `;` would end it."""
    return query.strip().rstrip(";").strip() if query else None


def _sql_text(text: str) -> sa.TextClause:
    """SQL of the settings as SQLAlchemy text, its colons escaped: `'10:30'` is no bound
    parameter."""
    return sa.text(text.replace(":", "\\:"))
