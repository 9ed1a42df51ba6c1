"""Fixtures for the catalog tests: sample tables in PostgreSQL and SQLite, and the
PostgREST look-alike in front of the session's database."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from stripe_sync.catalog.sql import SqlCatalog
from stripe_sync.catalog.supabase import SupabaseCatalog
from stripe_sync_tests.conftest import WRITE_BACK_MIGRATION, free_port
from stripe_sync_tests.support.postgrest import anon_key, grant_like_supabase, service_role_key
from stripe_sync_tests.support.tables import create_postgres_products, create_sqlite_products

SAMPLE_SIZE = 25


@dataclass
class SampleCatalog:
    """A catalog over a sample table, with the ids it holds in the database's order."""

    catalog: SqlCatalog | SupabaseCatalog
    ids: list[str]
    cms_rows: Callable[[], list[tuple]]  # the CMS's own columns, as the driver returns them


@pytest.fixture(scope="session")
def database(fresh_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


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
        cms_rows = _postgres_cms_rows(database, table)
    else:
        path = tmp_path / "catalog.db"
        ids = create_sqlite_products(path, id_kind, SAMPLE_SIZE)
        catalog = SqlCatalog(f"sqlite:///{path}", "products")
        cms_rows = _sqlite_cms_rows(path)
    yield SampleCatalog(catalog, ids, cms_rows)
    catalog.close()


# ---------------------------------------------------------------- Supabase
@pytest.fixture
def apply_migration(database: psycopg.Connection) -> Callable[[], None]:
    """Applies the write-back columns' migration to public.products."""
    return lambda: database.execute(WRITE_BACK_MIGRATION.read_text())


@pytest.fixture
def supabase_products(database, supabase_roles) -> Callable[..., list[str]]:
    """(Re)creates public.products, Supabase-style, without the write-back columns:
    `make(count, id_kind="integer")` returns its ids in order."""

    def make(count: int = SAMPLE_SIZE, id_kind: str = "integer") -> list[str]:
        ids = create_postgres_products(database, "products", id_kind, count, write_back=False)
        grant_like_supabase(database, "products")
        return ids

    return make


@pytest.fixture
def supabase_sample(
    supabase_url, jwt_secret, database, supabase_products, apply_migration
) -> Iterator[SampleCatalog]:
    """public.products with the migration applied, read with the service_role key."""
    ids = supabase_products()
    apply_migration()
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret))
    yield SampleCatalog(catalog, ids, _postgres_cms_rows(database, "products"))
    catalog.close()


@pytest.fixture
def anon_catalog(supabase_url, jwt_secret) -> Iterator[SupabaseCatalog]:
    catalog = SupabaseCatalog(supabase_url, anon_key(jwt_secret))
    yield catalog
    catalog.close()


def _postgres_cms_rows(database: psycopg.Connection, table: str) -> Callable[[], list[tuple]]:
    # Text renderings: byte-identical means identical as PostgreSQL prints them.
    query = sql.SQL(
        "select id::text, name, description, price::text, currency, images::text, "
        "active::text, updated_at::text from {} order by id"
    ).format(sql.Identifier(table))
    return lambda: database.execute(query).fetchall()


def _sqlite_cms_rows(path: Path) -> Callable[[], list[tuple]]:
    def rows() -> list[tuple]:
        with closing(sqlite3.connect(path)) as connection:
            return connection.execute(
                "select quote(id), quote(name), quote(description), quote(price), "
                "quote(currency), quote(images), quote(active), quote(updated_at) "
                "from products order by id"
            ).fetchall()

    return rows
