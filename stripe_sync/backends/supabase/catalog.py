"""The catalog over Supabase's REST API (PostgREST) with supabase-py.

The catalog is a table or view, narrowed by `where` (PostgREST filters) and the mapping's
skip and soft-delete rules, its columns mapped onto the pipeline's fields with PostgREST
aliases (`name:title`). The ids are read in keyset pages over the mapped id
(`sku=gt.<last>&order=sku.asc&limit=n`), rows and prices by id with `in` lists short enough
for a URL; PostgREST casts filter values to the column's type, so integer ids compare
numerically. Every read goes on to its end whatever the project's row cap (`pages.py`). The
id, the price and metadata are selected as `::text` so ids are the database's own text and
prices stay exact (JSON numbers would become floats). Write-back is one RPC request a batch
to `stripe_sync_write_back` (installed by the migration); without it, one PATCH a row. Never
an upsert: PostgREST turns it into an INSERT ... ON CONFLICT, which fails on the CMS's NOT
NULL columns the payload does not carry. Every request goes through the project
(`SupabaseProject`), which the state of this catalog shares.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from urllib.parse import parse_qsl

from postgrest.types import CountMethod, ReturnMethod

from stripe_sync.backends.missing_columns import MIGRATION, missing_columns_error
from stripe_sync.backends.supabase.pages import PAGE_SIZE, id_chunks, keyset_pages, listed, quoted
from stripe_sync.backends.supabase.project import ColumnMissing, FunctionMissing, SupabaseProject
from stripe_sync.core.contract import DEFAULT_TABLE, WRITE_BACK_COLUMNS, WriteBack
from stripe_sync.core.errors import CatalogError, CatalogFailure
from stripe_sync.core.mapping import (
    DEFAULT_MAPPING,
    PRICE_FIELDS_AS_TEXT,
    FieldMapping,
    PricesModel,
    ValueRule,
    read_as_text,
    value_text,
)
from stripe_sync.core.retry import CALL_TIMEOUT_S, NO_RETRY, RetryPolicy, RetryStats

log = logging.getLogger(__name__)

WRITE_BACK_FUNCTION = "stripe_sync_write_back"
_WRITE_BACK = ",".join(WRITE_BACK_COLUMNS)


class SupabaseCatalog:
    """A catalog table in a Supabase project, reached with the service_role key; its
    `project` is the connection its state shares."""

    def __init__(
        self,
        url: str,
        service_role_key: str,
        table: str = DEFAULT_TABLE,
        mapping: FieldMapping = DEFAULT_MAPPING,
        *,
        where: str | None = None,
        prices: PricesModel | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
    ) -> None:
        self.table = table
        self.mapping = mapping
        self.where = where
        self._where = _parsed_where(where)
        self.prices = prices
        self._prices_where = _parsed_where(prices.where, "prices.where") if prices else ([], [])
        self._id = mapping.column("id")
        self._source_selected = ",".join(
            _selected(label, column, as_text=read_as_text(label))
            for label, column in mapping.read().items()
        )
        self.project = SupabaseProject(
            url, service_role_key, timeout_s=timeout_s, retry=retry, stats=stats
        )
        self._rpc_installed = True
        self._write_back_columns: bool | None = None  # not known before a read or a check

    def __repr__(self) -> str:
        return f"SupabaseCatalog({self.describe()!r})"

    def describe(self) -> str:
        described = f"{self.project.location}, table {self.table}" + (
            f" where {self.where}" if self.where else ""
        )
        return described + (f"; prices: {self.prices.describe()}" if self.prices else "")

    def check(self) -> None:
        self.project.check_key()
        try:  # retried like any read: an outage is waited out; a wrong key is refused at once
            self._execute(self._select(self._source_selected).limit(1))
        except ColumnMissing:
            missing = [
                (key, column)
                for key, column in self.mapping.referenced()
                if not self._column_exists(column)
            ]
            raise missing_columns_error(self.table, missing) from None
        if not self.has_write_back_columns and self._id == "id":
            present = [column for column in WRITE_BACK_COLUMNS if self._column_exists(column)]
            if present:
                missing = [column for column in WRITE_BACK_COLUMNS if column not in present]
                raise missing_columns_error(self.table, [], missing)
        # One request a condition, so a refusal names its setting; a rule's column that
        # doesn't exist is named as the column a mapping lacks.
        checks = [("catalog.where", self._where, [], None)] if self.where else []
        checks += [
            (f"catalog.{name}", ([], []), [_kept_by(rule)], rule.column)
            for name, rule in self.mapping.removal_rules()
        ]
        for key, where, terms, column in checks:
            try:
                self._execute(_filtered(self._select(self._id), where, terms).limit(0))
            except CatalogFailure as failure:
                if failure.retryable:
                    raise
                raise CatalogError(
                    f"{key} does not work on table {self.table}: {failure}"
                ) from None
            except ColumnMissing as error:
                if column is None:
                    raise CatalogError(
                        f"{key} does not work on table {self.table}: {error}"
                    ) from None
                raise missing_columns_error(self.table, [(key, column)]) from None
            except CatalogError as error:
                raise CatalogError(f"{key} does not work on table {self.table}: {error}") from None
        if self.prices is not None:
            self._check_prices(self.prices)

    def _check_prices(self, prices: PricesModel) -> None:
        table = self.project.table(prices.table)
        try:
            self._execute(
                _filtered(table.select(self._prices_selected), self._prices_where, []).limit(0)
            )
        except ColumnMissing as error:
            missing = [
                (key, column)
                for key, column in prices.mapping.referenced()
                if not self._column_exists(column, table=prices.table)
            ]
            if not missing:  # the columns are there: a filter of prices.where names another
                raise CatalogError(
                    f"prices.where does not work on table {prices.table}: {error}"
                ) from None
            raise missing_columns_error(prices.table, missing) from None
        except CatalogFailure as failure:
            if failure.retryable:
                raise
            raise CatalogError(f"prices.table {prices.table} can't be read: {failure}") from None

    @property
    def has_write_back_columns(self) -> bool:
        # The write-back function matches rows by `id`: with another id column the state
        # store alone keeps the sync state.
        if self._id != "id":
            return False
        if self._write_back_columns is None:
            self._write_back_columns = self._column_exists(_WRITE_BACK)
        return self._write_back_columns

    def iter_ids(self, page_size: int = 10_000) -> Iterator[str]:
        limit = max(page_size, PAGE_SIZE)

        def read(last: dict | None) -> list[dict]:
            selected = self._select(_selected("id", self._id, as_text=True))
            # A row without an id can't be read back by it (a view's id may be NULL).
            query = self._filtered(selected.not_.is_(self._id, "null"))
            if last is not None:
                query = query.gt(self._id, last["id"])
            return self._execute(query.order(self._id).limit(limit)).data

        for page in keyset_pages(read):
            yield from (row["id"] for row in page)

    def count_ids(self) -> int:
        query = self.project.table(self.table).select(self._id, count=CountMethod.exact, head=True)
        return self._execute(self._filtered(query)).count

    def read_rows(self, ids: Sequence[str]) -> Iterator[dict]:
        for chunk in id_chunks(ids):

            def read(last: dict | None, chunk: list[str] = chunk) -> list[dict]:
                def query(columns: str):
                    query = self._filtered(self._select(columns)).filter(
                        self._id, "in", listed(chunk)
                    )
                    if last is not None:
                        query = query.gt(self._id, last["id"])
                    return query.order(self._id)

                return self._row_data(query)

            for page in keyset_pages(read, most=len(chunk)):
                yield from map(self.mapping.shaped, page)

    def read_prices(self, product_ids: Sequence[str]) -> Iterator[dict]:
        if self.prices is None:
            return
        table, mapping = self.prices.table, self.prices.mapping
        product_id, price_id = mapping.column("product_id"), mapping.column("id")
        for chunk in id_chunks(product_ids):

            def read(last: dict | None, chunk: list[str] = chunk) -> list[dict]:
                terms = []
                if last is not None:  # keyset over (product_id, id)
                    after = quoted(last["product_id"])
                    terms.append(
                        f"or({product_id}.gt.{after},"
                        f"and({product_id}.eq.{after},{price_id}.gt.{quoted(last['id'])}))"
                    )
                query = self.project.table(table).select(self._prices_selected)
                query = query.filter(product_id, "in", listed(chunk))
                query = _filtered(query, self._prices_where, terms)
                return self._execute(query.order(product_id).order(price_id).limit(PAGE_SIZE)).data

            for page in keyset_pages(read):
                yield from map(mapping.shaped, page)

    @property
    def _prices_selected(self) -> str:
        assert self.prices is not None
        return ",".join(
            _selected(label, column, as_text=label in PRICE_FIELDS_AS_TEXT)
            for label, column in self.prices.mapping.read().items()
        )

    def changed_since(self, after: tuple[str, str] | None, limit: int) -> list[dict]:
        updated_at, id_ = self.mapping.column("updated_at"), self._id
        if updated_at is None:
            return []  # no column says when a row changed: only the removal scan finds changes

        def read(last: dict | None) -> list[dict]:
            cursor = after if last is None else (last["updated_at"], last["id"])

            def query(columns: str):
                query = self._select(columns).not_.is_(updated_at, "null")
                terms = []
                if cursor is not None:
                    at, past = map(quoted, cursor)
                    terms.append(
                        f"or({updated_at}.gt.{at},and({updated_at}.eq.{at},{id_}.gt.{past}))"
                    )
                return self._filtered(query, terms).order(updated_at).order(id_).limit(limit)

            return self._row_data(query)

        # `limit` rows even where the project's cap is lower: the caller takes a page shorter
        # than `limit` for the last one.
        rows = itertools.islice(
            itertools.chain.from_iterable(keyset_pages(read, most=limit)), limit
        )
        return list(map(self.mapping.shaped, rows))

    def write_back(self, results: Sequence[WriteBack]) -> int:
        if not results:
            return 0
        rows = [{"id": result.id, **result.columns()} for result in results]
        if self._rpc_installed:
            query = self.project.rpc(
                WRITE_BACK_FUNCTION, {"target_table": self.table, "rows": rows}
            )
            try:
                self._execute(query)
                return 1
            except FunctionMissing:
                self._rpc_installed = False
                log.warning(
                    "The function public.%s is not installed in Supabase: writing back one "
                    "PATCH request a row; apply %s to write back a batch in one request.",
                    WRITE_BACK_FUNCTION,
                    MIGRATION,
                )
        for row in rows:
            values = {column: row[column] for column in WRITE_BACK_COLUMNS}
            update = self.project.table(self.table).update(values, returning=ReturnMethod.minimal)
            self._execute(update.eq(self._id, row["id"]))
        return len(rows)

    def close(self) -> None:
        self.project.close()

    def _select(self, columns: str):
        return self.project.table(self.table).select(columns)

    def _filtered(self, query, terms: Sequence[str] = ()):
        """`query` narrowed to the catalog's rows: `where`, the mapping's removal rules and
        `terms` (logic-tree conditions of the caller)."""
        rules = [_kept_by(rule) for _name, rule in self.mapping.removal_rules()]
        return _filtered(query, self._where, [*rules, *terms])

    def _row_data(self, query) -> list[dict]:
        """The data of `query(columns)` with a row's columns: the write-back ones too unless the
        table is known to lack them. The first read settles it, with no request of its own
        when the columns are there."""
        if self._write_back_columns is not False:
            try:
                data = self._execute(query(f"{self._source_selected},{_WRITE_BACK}")).data
            except ColumnMissing:
                if self._write_back_columns:  # they are there: another column is missing
                    raise
                self._write_back_columns = False
            else:
                self._write_back_columns = True
                return data
        return self._execute(query(self._source_selected)).data

    def _column_exists(self, columns: str, *, table: str | None = None) -> bool:
        try:
            self._execute(self.project.table(table or self.table).select(columns).limit(0))
        except ColumnMissing:
            return False
        return True

    def _execute(self, query):
        """`query` sent through the project; a missing table or column is named as the
        catalog table's."""
        return self.project.execute(query, table=self.table)


def _parsed_where(
    where: str | None, setting: str = "catalog.where"
) -> tuple[list[tuple[str, str]], list[str]]:
    """`where` as PostgREST filters: (column filters as (column, `op.value`), logic trees as
    `or(...)`/`and(...)` terms); a CatalogError when it is no query string of filters."""
    if not where:
        return [], []
    try:
        pairs = parse_qsl(where.strip().lstrip("?"), strict_parsing=True)
    except ValueError:
        pairs = []
    malformed = [value for key, value in pairs if "." not in value and key not in ("or", "and")]
    if not pairs or malformed:
        raise CatalogError(
            f"{setting} must be PostgREST filters such as kind=eq.physical&stock=gt.0 on "
            f"Supabase, not {where!r}."
        )
    filters = [(key, value) for key, value in pairs if key not in ("or", "and")]
    trees = [f"{key}{value}" for key, value in pairs if key in ("or", "and")]
    return filters, trees


def _selected(label: str, column: str, *, as_text: bool) -> str:
    """A `select` item: `column`, aliased `label:column` when they differ, `::text` cast."""
    return ("" if label == column else f"{label}:") + column + ("::text" if as_text else "")


def _kept_by(rule: ValueRule) -> str:
    """The logic-tree term of the rows a removal rule leaves in: its column NULL, or not one
    of its values."""
    if not rule.values:
        return f"{rule.column}.is.null"
    listed = ",".join(quoted(value_text(value)) for value in rule.values)
    return f"or({rule.column}.is.null,{rule.column}.not.in.({listed}))"


def _filtered(query, where: tuple[list[tuple[str, str]], list[str]], terms: Sequence[str]):
    """`query` with the column filters of `where` and one `or=(...)` parameter holding every
    logic-tree term (PostgREST documents no meaning for two `or` parameters)."""
    filters, trees = where
    for column, value in filters:
        operator, _, criteria = value.partition(".")
        query = query.filter(column, operator, criteria)
    terms = [*trees, *terms]
    if len(terms) == 1 and terms[0].startswith("or("):
        return query.or_(terms[0][3:-1])
    if len(terms) == 1:
        return query.or_(terms[0])
    if terms:
        return query.or_(f"and({','.join(terms)})")
    return query
