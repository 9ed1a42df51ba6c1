"""The direct SQL catalog against real PostgreSQL 15 and a real SQLite file."""

from __future__ import annotations

import secrets
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.core.contract import SOURCE_COLUMNS, WRITE_BACK_COLUMNS, WriteBack, change_cursor
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.mapping import FieldMapping, ValueRule
from stripe_sync_tests.support.tables import (
    CMS_COLUMNS,
    SYNCED_AT,
    UPDATED_AT,
    create_sqlite_products,
    every_row,
    synced,
)


def test_check_passes_on_a_table_with_every_contract_column(sql_sample):
    sql_sample.catalog.check()


def test_ids_come_in_the_id_columns_order_in_keyset_pages(sql_sample):
    ids = sql_sample.ids
    sql_sample.catalog.check()  # reflects the table: its queries are not counted
    pages = []
    sa.event.listen(
        sql_sample.catalog.engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, params, *_: pages.append(params),
    )
    assert list(sql_sample.catalog.iter_ids(page_size=7)) == ids
    assert len(pages) == len(ids) // 7 + 1
    for page, last_of_previous in zip(pages[1:], ids[6::7]):
        values = page.values() if isinstance(page, dict) else page
        assert last_of_previous in values  # the next page starts after the last id seen
    assert sql_sample.catalog.count_ids() == len(ids)


def test_integer_ids_are_ordered_and_read_numerically(postgres_table, fresh_database_url):
    table, _ = postgres_table("integer", 12)
    catalog = SqlCatalog(fresh_database_url, table)
    assert list(catalog.iter_ids()) == [str(n) for n in range(1, 13)]
    assert [row["id"] for row in catalog.read_rows(["10", "2", "9"])] == ["2", "9", "10"]
    catalog.close()


def test_read_rows_reads_the_rows_of_some_ids_in_id_order(sql_sample):
    ids = sql_sample.ids
    wanted = [ids[20], ids[3], ids[7]]
    assert [row["id"] for row in sql_sample.catalog.read_rows(wanted)] == [ids[3], ids[7], ids[20]]
    assert list(sql_sample.catalog.read_rows([])) == []


def test_a_row_holds_exactly_the_contract_columns_with_raw_values(sql_sample):
    row = next(sql_sample.catalog.read_rows(sql_sample.ids[:1]))
    assert tuple(row) == SOURCE_COLUMNS + WRITE_BACK_COLUMNS
    assert row["id"] == sql_sample.ids[0]
    assert row["name"] == "Product 0"
    assert Decimal(row["price"]) == Decimal("0.50")
    assert row["sync_status"] is None


def test_write_back_is_one_statement_that_changes_only_the_write_back_columns(sql_sample):
    catalog = sql_sample.catalog
    catalog.check()
    before = sql_sample.cms_rows()
    results = [synced(id_, n) for n, id_ in enumerate(sql_sample.ids[:10])]
    statements = []
    sa.event.listen(
        catalog.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    assert catalog.write_back(results) == 1
    assert len(statements) == 1 and "UPDATE" in statements[0]
    assert sql_sample.cms_rows() == before
    rows = {row["id"]: row for row in every_row(catalog)}
    assert rows[sql_sample.ids[4]]["stripe_product_id"] == "prod_4"
    assert rows[sql_sample.ids[4]]["sync_status"] == "synced"
    assert rows[sql_sample.ids[4]]["sync_hash"] == "hash4"
    assert _as_utc(rows[sql_sample.ids[4]]["synced_at"]) == SYNCED_AT
    assert rows[sql_sample.ids[10]]["sync_status"] is None


def test_write_back_can_clear_values_and_record_a_failure(sql_sample):
    catalog = sql_sample.catalog
    catalog.write_back([synced(sql_sample.ids[0], 0)])
    failure = WriteBack(
        id=sql_sample.ids[0],
        stripe_product_id=None,
        stripe_price_id=None,
        sync_status="failed",
        sync_error="card_declined: no",
        synced_at=SYNCED_AT,
        sync_hash=None,
    )
    catalog.write_back([failure])
    row = next(catalog.read_rows(sql_sample.ids[:1]))
    assert (row["stripe_product_id"], row["sync_status"], row["sync_error"]) == (
        None,
        "failed",
        "card_declined: no",
    )


def test_a_write_back_of_many_rows_is_one_statement(sql_sample):
    results = [synced(id_, n) for n, id_ in enumerate(sql_sample.ids[:10])]
    assert sql_sample.catalog.write_back(results) == 1
    rows = list(sql_sample.catalog.read_rows(sql_sample.ids[:10]))
    assert [row["stripe_product_id"] for row in rows] == [f"prod_{n}" for n in range(10)]


def test_write_back_of_nothing_makes_no_statement(sql_sample):
    assert sql_sample.catalog.write_back([]) == 0


def test_a_missing_table_is_named(fresh_database_url):
    catalog = SqlCatalog(fresh_database_url, "no_such_products")
    with pytest.raises(CatalogError, match="Table no_such_products not found in PostgreSQL"):
        catalog.check()


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_table_without_write_back_columns_passes_and_its_rows_hold_none_of_them(
    kind, postgres_table, fresh_database_url, tmp_path
):
    catalog = _catalog_of(kind, postgres_table, fresh_database_url, tmp_path, write_back=False)

    catalog.check()

    assert catalog.has_write_back_columns is False
    assert set(every_row(catalog)[0]) == set(CMS_COLUMNS)


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_some_write_back_columns_without_the_others_are_named(
    kind, postgres_table, fresh_database_url, tmp_path
):
    catalog = _catalog_of(
        kind, postgres_table, fresh_database_url, tmp_path, write_back=WRITE_BACK_COLUMNS[:4]
    )

    with pytest.raises(CatalogError) as error:
        catalog.check()

    assert str(error.value) == (
        f"Table {catalog.table} lacks the write-back columns synced_at, sync_hash (they are "
        "optional, but all or none: add these, e.g. with "
        "supabase/migrations/20261126000000_stripe_sync.sql, or drop the others)."
    )


def _catalog_of(kind, postgres_table, database_url, tmp_path, *, write_back) -> SqlCatalog:
    if kind == "postgres":
        table, _ = postgres_table("integer", 1, write_back=write_back)
        return SqlCatalog(database_url, table)
    create_sqlite_products(tmp_path / "cms.db", "integer", 1, write_back=write_back)
    return SqlCatalog(f"sqlite:///{tmp_path / 'cms.db'}")


def test_an_unreachable_host_is_named_without_the_password(closed_port):
    catalog = SqlCatalog(f"postgresql://postgres:hunter2@127.0.0.1:{closed_port}/test")
    with pytest.raises(CatalogError) as error:
        catalog.check()
    message = str(error.value)
    assert message.startswith(f"Cannot reach the catalog database at 127.0.0.1:{closed_port} (")
    assert message.endswith("check CATALOG_DATABASE_URL and that the database is running.")
    assert "hunter2" not in message and "\n" not in message


def test_describe_names_the_database_and_table_but_never_the_password():
    catalog = SqlCatalog("postgres://app:hunter2@db.example.com:6543/shop", "items")
    assert catalog.describe() == "PostgreSQL db.example.com:6543/shop, table items"


def test_a_missing_sqlite_file_is_not_created(tmp_path):
    path = tmp_path / "absent.db"
    with pytest.raises(CatalogError, match="SQLite catalog file .*absent.db does not exist"):
        SqlCatalog(f"sqlite:///{path}").check()
    assert not path.exists()


def test_a_url_of_another_database_is_refused():
    with pytest.raises(CatalogError, match="must start with postgresql://"):
        SqlCatalog("mysql://root@localhost/shop")


def _as_utc(value: datetime | str) -> datetime:
    """SQLite hands timestamps back naive (stored as UTC)."""
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_mapped_metadata_columns_are_read_as_text_under_their_prefix(
    postgres_table, fresh_database_url, tmp_path
):
    table, _ = postgres_table("text", 4)
    path = tmp_path / "catalog.db"
    create_sqlite_products(path, "text", 4)
    for url, name in ((fresh_database_url, table), (f"sqlite:///{path}", "products")):
        metadata = {"currency": "currency", "price": "price"}
        catalog = SqlCatalog(url, name, FieldMapping(metadata=metadata))
        catalog.check()
        [row, *_] = every_row(catalog)
        assert (row["metadata.currency"], row["metadata.price"]) == (
            row["currency"],
            str(row["price"]),
        )
        catalog.close()


def test_a_missing_mapped_metadata_column_is_named(postgres_table, fresh_database_url):
    table, _ = postgres_table("text", 2)
    with pytest.raises(CatalogError, match="colour"):
        SqlCatalog(fresh_database_url, table, FieldMapping(metadata={"colour": "colour"})).check()


def _touch(catalog: SqlCatalog, id_: str, updated_at: datetime) -> None:
    """Set a row's updated_at as the CMS would (SQLite stores it as ISO text)."""
    value = updated_at.isoformat() if catalog.engine.dialect.name == "sqlite" else updated_at
    with catalog.engine.begin() as connection:
        connection.execute(
            sa.text(f"update {catalog.table} set updated_at = :at where cast(id as text) = :id"),
            {"at": value, "id": id_},
        )


def _all_changes(catalog, after=None, limit=7) -> list[str]:
    """Every change after `after`, read page by page from each page's last row."""
    ids = []
    while page := catalog.changed_since(after, limit):
        ids += [row["id"] for row in page]
        after = change_cursor(page[-1])
    return ids


def test_changes_come_in_updated_at_then_id_order_after_the_cursor(sql_sample):
    ids, catalog = sql_sample.ids, sql_sample.catalog
    _touch(catalog, ids[3], UPDATED_AT + timedelta(hours=2))
    _touch(catalog, ids[1], UPDATED_AT + timedelta(hours=1))
    _touch(catalog, ids[7], UPDATED_AT + timedelta(hours=2))
    untouched = [id_ for id_ in ids if id_ not in (ids[1], ids[3], ids[7])]
    assert _all_changes(catalog) == [*untouched, ids[1], ids[3], ids[7]]
    [first] = catalog.changed_since(None, 1)
    assert tuple(first) == SOURCE_COLUMNS + WRITE_BACK_COLUMNS
    assert first == next(catalog.read_rows(ids[:1]))
    touched = catalog.changed_since(change_cursor(first), 100)
    assert [row["id"] for row in touched] == [*untouched[1:], ids[1], ids[3], ids[7]]
    assert _all_changes(catalog, after=change_cursor(touched[-3])) == [ids[3], ids[7]]
    assert catalog.changed_since(change_cursor(touched[-1]), 100) == []


def test_rows_without_updated_at_are_not_changes(postgres_table, fresh_database_url, database):
    table, _ = postgres_table("integer", 3)
    database.execute(f"alter table {table} alter column updated_at drop not null")
    database.execute(f"update {table} set updated_at = null where id = 2")
    catalog = SqlCatalog(fresh_database_url, table)
    assert [row["id"] for row in catalog.changed_since(None, 10)] == ["1", "3"]
    catalog.close()


@pytest.mark.parametrize(
    ("column_type", "values", "kept"),
    [
        ("varchar(5)", ["draft_old"], ["1", "2"]),  # cut to `draft` it would skip row 1
        ("numeric(5, 0)", ["2.4"], ["1", "2"]),  # rounded to 2 it would skip row 2
        ("varchar(5)", ["draft"], ["2"]),
    ],
)
def test_a_skip_value_is_compared_whole_never_cut_to_the_columns_size(
    database, fresh_database_url, column_type, values, kept
):
    table = f"sized_{secrets.token_hex(3)}"
    database.execute(
        f"create table {table} (id int primary key, name text, price numeric, status {column_type})"
    )
    status = ("draft", "2") if column_type.startswith("varchar") else (1, 2)
    database.execute(
        f"insert into {table} (id, name, price, status) values (1, 'A', 1, %s), (2, 'B', 1, %s)",
        status,
    )
    mapping = FieldMapping(
        columns={"description": None, "currency": None, "images": None, "active": None,
                 "updated_at": None},
        skip=ValueRule("status", tuple(values)),
    )  # fmt: skip
    catalog = SqlCatalog(fresh_database_url, table, mapping)
    catalog.check()
    assert list(catalog.iter_ids()) == kept
    catalog.close()


def test_a_row_without_an_id_is_not_among_the_ids(tmp_path):
    path = tmp_path / "catalog.db"
    ids = create_sqlite_products(path, "text", 3)
    with closing(sqlite3.connect(path)) as connection, connection:
        # SQLite lets a TEXT primary key be NULL; so may a view's or a query's id anywhere.
        connection.execute(
            "insert into products (id, name, price, updated_at) values (NULL, 'x', '1', '')"
        )
    catalog = SqlCatalog(f"sqlite:///{path}")

    assert list(catalog.iter_ids()) == ids

    catalog.close()
