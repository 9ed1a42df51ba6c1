"""Fixtures for the SQL backend's tests: sample tables in PostgreSQL and SQLite."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync_tests.support.tables import (
    SAMPLE_SIZE,
    SampleCatalog,
    create_postgres_products,
    create_sqlite_products,
    postgres_cms_rows,
)


@pytest.fixture
def postgres_table(database: psycopg.Connection) -> Iterator[Callable[..., tuple[str, list[str]]]]:
    """Makes uniquely named sample tables: `make(id_kind, count, write_back=True)`."""
    made = []

    def make(id_kind: str, count: int = SAMPLE_SIZE, *, write_back: bool | tuple = True):
        table = f"products_{id_kind}_{secrets.token_hex(3)}"
        made.append(table)
        return table, create_postgres_products(
            database, table, id_kind, count, write_back=write_back
        )

    yield make
    for table in made:
        database.execute(sql.SQL("drop table {}").format(sql.Identifier(table)))


@pytest.fixture(
    params=[
        ("postgresql", "integer"),
        ("postgresql", "text"),
        ("postgresql", "uuid"),
        ("sqlite", "integer"),
        ("sqlite", "text"),
    ],
    ids=lambda param: "-".join(param),
)
def sql_sample(
    request, database, fresh_database_url, postgres_table, tmp_path
) -> Iterator[SampleCatalog]:
    backend, id_kind = request.param
    if backend == "postgresql":
        table, ids = postgres_table(id_kind)
        catalog = SqlCatalog(fresh_database_url, table)
        cms_rows = postgres_cms_rows(database, table)
    else:
        path = tmp_path / "catalog.db"
        ids = create_sqlite_products(path, id_kind, SAMPLE_SIZE)
        catalog = SqlCatalog(f"sqlite:///{path}", "products")
        cms_rows = _sqlite_cms_rows(path)
    yield SampleCatalog(catalog, ids, cms_rows)
    catalog.close()


def _sqlite_cms_rows(path: Path) -> Callable[[], list[tuple]]:
    def rows() -> list[tuple]:
        with closing(sqlite3.connect(path)) as connection:
            return connection.execute(
                "select quote(id), quote(name), quote(description), quote(price), "
                "quote(currency), quote(images), quote(active), quote(updated_at) "
                "from products order by id"
            ).fetchall()

    return rows
