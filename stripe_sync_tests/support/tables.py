"""Sample catalog tables for tests: the CMS's columns, with or without write-back columns."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from stripe_sync.core.contract import WRITE_BACK_COLUMNS, WriteBack

if TYPE_CHECKING:  # for the annotation only: supabase-py takes most of a second to import
    from stripe_sync.backends.sql.catalog import SqlCatalog
    from stripe_sync.backends.supabase.catalog import SupabaseCatalog

ID_KINDS = ("integer", "text", "uuid")
_POSTGRES_ID_TYPES = {"integer": "bigint", "text": "text", "uuid": "uuid"}
_POSTGRES_WRITE_BACK_TYPES = dict.fromkeys(WRITE_BACK_COLUMNS, "text") | {
    "synced_at": "timestamptz"
}
_SQLITE_ID_TYPES = {"integer": "INTEGER", "text": "TEXT"}
_SQLITE_WRITE_BACK_TYPES = dict.fromkeys(WRITE_BACK_COLUMNS, "TEXT") | {"synced_at": "TIMESTAMP"}
UPDATED_AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
SYNCED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CMS_COLUMNS = ("id", "name", "description", "price", "currency", "images", "active", "updated_at")
SAMPLE_SIZE = 25  # rows of a sample table


def sample_ids(id_kind: str, count: int) -> list[str]:
    """`count` ids as text, in the order of the id column (unambiguous in any collation)."""
    if id_kind == "integer":
        return [str(n) for n in range(1, count + 1)]  # numeric order: "2" before "10"
    if id_kind == "text":
        return [f"sku{n:05d}" for n in range(1, count + 1)]
    return sorted(str(uuid.uuid5(uuid.NAMESPACE_URL, f"product/{n}")) for n in range(count))


def sample_row(id_: str, n: int) -> dict:
    """A plausible CMS row with every kind of value, NULLs included."""
    return {
        "id": id_,
        "name": f"Product {n}",
        "description": None if n % 3 == 0 else f"Description of product {n}",
        "price": Decimal(f"{n}.50"),
        "currency": ("eur", "usd", "jpy", None)[n % 4],
        "images": None if n % 5 == 0 else [f"https://img.example/{n}.png"],
        "active": (True, False, None)[n % 3],
        "updated_at": UPDATED_AT,
    }


def synced(id_: str, n: int) -> WriteBack:
    """The write-back of a product synced as prod_<n>/price_<n>."""
    return WriteBack(
        id=id_,
        stripe_product_id=f"prod_{n}",
        stripe_price_id=f"price_{n}",
        sync_status="synced",
        sync_error=None,
        synced_at=SYNCED_AT,
        sync_hash=f"hash{n}",
    )


def create_postgres_products(
    connection: psycopg.Connection,
    table: str,
    id_kind: str,
    count: int,
    *,
    write_back: bool | Sequence[str] = True,
) -> list[str]:
    """(Re)create public.`table` with `count` sample rows; return the ids in order.
    `write_back`: all the write-back columns, none, or these."""
    name = sql.Identifier("public", table)
    extra = sql.SQL(_column_definitions(_POSTGRES_WRITE_BACK_TYPES, write_back))
    connection.execute(sql.SQL("drop table if exists {} cascade").format(name))
    connection.execute(
        sql.SQL(
            "create table {} (id {} primary key, name text not null, description text, "
            "price numeric(12, 2) not null, currency text, images jsonb, active boolean, "
            "updated_at timestamptz not null{})"
        ).format(name, sql.SQL(_POSTGRES_ID_TYPES[id_kind]), extra)
    )
    ids = sample_ids(id_kind, count)
    rows = [sample_row(id_, n) for n, id_ in enumerate(ids)]
    with connection.cursor() as cursor:  # CMS_COLUMNS order is sample_row's key order
        cursor.executemany(
            sql.SQL("insert into {} ({}) values (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)").format(
                name, sql.SQL(", ").join(map(sql.Identifier, CMS_COLUMNS))
            ),
            [tuple({**row, "images": _json(row["images"])}.values()) for row in rows],
        )
    return ids


def create_sqlite_products(
    path: Path, id_kind: str, count: int, *, write_back: bool | Sequence[str] = True
) -> list[str]:
    """A SQLite catalog file as the demo makes it: images as JSON text, price as TEXT.
    `write_back`: all the write-back columns, none, or these."""
    extra = _column_definitions(_SQLITE_WRITE_BACK_TYPES, write_back)
    ids = sample_ids(id_kind, count)
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            f"create table products (id {_SQLITE_ID_TYPES[id_kind]} primary key, "
            "name TEXT not null, description TEXT, price TEXT not null, currency TEXT, "
            f"images TEXT, active BOOLEAN, updated_at TEXT not null{extra})"
        )
        connection.executemany(
            f"insert into products ({', '.join(CMS_COLUMNS)}) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    int(row["id"]) if id_kind == "integer" else row["id"],
                    row["name"],
                    row["description"],
                    str(row["price"]),
                    row["currency"],
                    _json(row["images"]),
                    row["active"],
                    row["updated_at"].isoformat(),
                )
                for row in (sample_row(id_, n) for n, id_ in enumerate(ids))
            ],
        )
    return ids


def _column_definitions(types: dict[str, str], write_back: bool | Sequence[str]) -> str:
    columns = WRITE_BACK_COLUMNS if write_back is True else (write_back or ())
    return "".join(f", {column} {types[column]}" for column in columns)


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def every_row(catalog) -> list[dict]:
    """Every row of a catalog, read as a batch reads its rows: by id."""
    return list(catalog.read_rows(list(catalog.iter_ids())))


@dataclass
class SampleCatalog:
    """A catalog over a sample table, with the ids it holds in the database's order."""

    catalog: SqlCatalog | SupabaseCatalog
    ids: list[str]
    cms_rows: Callable[[], list[tuple]]  # the CMS's own columns, as the driver returns them


def postgres_cms_rows(database: psycopg.Connection, table: str) -> Callable[[], list[tuple]]:
    # Text renderings: byte-identical means identical as PostgreSQL prints them.
    query = sql.SQL(
        "select id::text, name, description, price::text, currency, images::text, "
        "active::text, updated_at::text from {} order by id"
    ).format(sql.Identifier(table))
    return lambda: database.execute(query).fetchall()
