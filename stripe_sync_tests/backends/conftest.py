"""Fixtures for the backends' tests: the session's database, a closed port, and the state store
on each database it runs on: SQLite and PostgreSQL in the catalog's own database, Supabase
through the PostgREST look-alike, and PostgreSQL as a database of its own beside a SQL or a
Supabase catalog."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from stripe_sync.backends import open_state
from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.core.contract import Catalog
from stripe_sync.core.state import StateStore
from stripe_sync_tests.conftest import WRITE_BACK_MIGRATION, free_port, new_database
from stripe_sync_tests.support.postgrest import grant_like_supabase, service_role_key
from stripe_sync_tests.support.tables import create_postgres_products, create_sqlite_products

STORES = ("sqlite", "postgres", "postgres_own_database", "supabase", "supabase_own_database")
SHARED_DATABASE = ("sqlite", "postgres", "supabase")  # the state in the catalog's database
ROWS = 5


@dataclass
class StoreCase:
    kind: str
    state: StateStore
    catalog: Catalog
    ids: list[str]
    refuse_catalog_updates: Callable[[], None]  # the CMS table refuses every UPDATE from now
    write_back_columns: Callable[[], list[tuple]]  # the CMS table's write-back columns, by id


@pytest.fixture(scope="session")
def database(fresh_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture(params=STORES)
def store_case(request, tmp_path, catalog_connection, postgres_url) -> Iterator[StoreCase]:
    kind = request.param
    with _opened(kind, request, tmp_path, catalog_connection, postgres_url) as case:
        yield case


class _opened:
    """A context manager building the case of one kind (so each kind cleans up after itself)."""

    def __init__(self, kind, request, tmp_path, connection, postgres_url):
        self.kind, self.request, self.tmp_path = kind, request, tmp_path
        self.connection, self.postgres_url = connection, postgres_url
        self._exits: list[Callable[[], None]] = []

    def __enter__(self) -> StoreCase:
        if self.kind in ("sqlite", "postgres_own_database"):
            path = self.tmp_path / "catalog.db"
            ids = create_sqlite_products(path, "text", ROWS)
            catalog = SqlCatalog(f"sqlite:///{path}")
            refuse, columns = _sqlite_refusal(path), _sqlite_write_back(path)
        elif self.kind == "postgres":
            table = f"products_{secrets.token_hex(4)}"
            ids = create_postgres_products(self.connection, table, "text", ROWS)
            self._exits.append(lambda: _drop(self.connection, table))
            url = self.request.getfixturevalue("fresh_database_url")
            catalog = SqlCatalog(url, table)
            refuse, columns = (
                _postgres_refusal(self.connection, table),
                _postgres_write_back(self.connection, table),
            )
        else:
            self.request.getfixturevalue("apply_state_migration")
            ids = create_postgres_products(self.connection, "products", "text", ROWS)
            self.connection.execute(WRITE_BACK_MIGRATION.read_text())  # its function
            grant_like_supabase(self.connection, "products")
            url = self.request.getfixturevalue("supabase_url")
            key = service_role_key(self.request.getfixturevalue("jwt_secret"))
            catalog = SupabaseCatalog(url, key)
            refuse, columns = (
                _postgres_refusal(self.connection, "products"),
                _postgres_write_back(self.connection, "products"),
            )
        state_url = None
        if self.kind.endswith("_own_database"):
            databases = new_database(self.postgres_url, "stripe_sync_state")
            state_url = databases.__enter__()
            self._exits.append(lambda: databases.__exit__(None, None, None))
        state = open_state(catalog, state_url)
        self._exits.append(catalog.close)
        self._exits.append(state.close)
        return StoreCase(self.kind, state, catalog, ids, refuse, columns)

    def __exit__(self, *exc: object) -> None:
        for close in reversed(self._exits):
            close()


def _drop(connection: psycopg.Connection, table: str) -> None:
    connection.execute(sql.SQL("drop table {}").format(sql.Identifier(table)))


def _postgres_refusal(connection: psycopg.Connection, table: str) -> Callable[[], None]:
    def refuse() -> None:
        connection.execute(
            "create or replace function public.stripe_sync_test_refuse() returns trigger "
            "language plpgsql as $$ begin raise exception 'the CMS refuses updates'; end $$"
        )
        connection.execute(
            sql.SQL(
                "create trigger refuse before update on {} for each row "
                "execute function public.stripe_sync_test_refuse()"
            ).format(sql.Identifier(table))
        )

    return refuse


def _postgres_write_back(connection: psycopg.Connection, table: str) -> Callable[[], list[tuple]]:
    query = sql.SQL(
        "select id::text, stripe_product_id, sync_status, sync_hash from {} order by id"
    ).format(sql.Identifier(table))
    return lambda: connection.execute(query).fetchall()


def _sqlite_refusal(path) -> Callable[[], None]:
    def refuse() -> None:
        with closing(sqlite3.connect(path)) as connection, connection:
            connection.execute(
                "create trigger refuse before update on products "
                "begin select raise(abort, 'the CMS refuses updates'); end"
            )

    return refuse


def _sqlite_write_back(path) -> Callable[[], list[tuple]]:
    def rows() -> list[tuple]:
        with closing(sqlite3.connect(path)) as connection:
            return connection.execute(
                "select id, stripe_product_id, sync_status, sync_hash from products order by id"
            ).fetchall()

    return rows
