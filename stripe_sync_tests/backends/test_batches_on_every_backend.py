"""Registration and batch reads on every backend, with the id types CMSs use: a row keeps the
batch it was given while the catalog grows (new ids sorting among the old ones) and shrinks,
each row is read by exactly one batch, and a deleted row stays in its batch."""

from __future__ import annotations

import random
import secrets
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass

import psycopg
import pytest

from stripe_sync.backends import open_state
from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.core.state import TrackedCatalog
from stripe_sync_tests.conftest import WRITE_BACK_MIGRATION
from stripe_sync_tests.support.postgrest import grant_like_supabase, service_role_key
from stripe_sync_tests.support.tables import create_postgres_products, create_sqlite_products

BATCH_SIZE = 5


@dataclass
class Backend:
    source: TrackedCatalog
    id_kind: str
    table: str
    ids: list[str]
    execute: Callable[[str, list[tuple]], None]  # SQL with `?` placeholders, parameter sets


def new_ids(id_kind: str, rng: random.Random, count: int) -> list[str]:
    """Ids a growing catalog gets: they sort before, among and after the first ones."""
    if id_kind == "uuid":
        return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    if id_kind == "integer":
        return [str(rng.randrange(-50, 200)) for _ in range(count)]
    # Composite-looking text: separators, a prefix that sorts among the samples' `sku…`.
    return [f"sku{rng.randrange(20):05d}/v:{rng.randrange(9)}-{n}" for n in range(count)]


@pytest.fixture
def backend(request, tmp_path, catalog_connection) -> Iterator[Backend]:
    kind, id_kind = request.param
    column_kind = "text" if id_kind == "composite" else id_kind
    if kind == "sqlite":
        path, table = tmp_path / "catalog.db", "products"
        ids = create_sqlite_products(path, column_kind, 12)
        catalog = SqlCatalog(f"sqlite:///{path}")

        def execute(statement: str, rows: list[tuple]) -> None:
            with closing(sqlite3.connect(path)) as connection, connection:
                connection.executemany(statement, rows)

    else:
        # A connection of its own: the session's has its inserts prepared for another id type.
        connection = psycopg.connect(request.getfixturevalue("fresh_database_url"), autocommit=True)
        request.addfinalizer(connection.close)
        # Supabase reads public.products; a table of its own keeps a SQL case's state apart.
        table = "products" if kind == "supabase" else f"products_{secrets.token_hex(4)}"
        ids = create_postgres_products(connection, table, column_kind, 12)
        request.addfinalizer(lambda: connection.execute(f"drop table {table}"))

        def execute(statement: str, rows: list[tuple]) -> None:
            with connection.cursor() as cursor:
                cursor.executemany(statement.replace("?", "%s"), rows)

        if kind == "postgres":
            catalog = SqlCatalog(request.getfixturevalue("fresh_database_url"), table)
        else:
            request.getfixturevalue("apply_state_migration")
            catalog_connection.execute(WRITE_BACK_MIGRATION.read_text())
            grant_like_supabase(catalog_connection, "products")
            key = service_role_key(request.getfixturevalue("jwt_secret"))
            catalog = SupabaseCatalog(request.getfixturevalue("supabase_url"), key)
    source = TrackedCatalog(catalog, open_state(catalog))
    yield Backend(source, id_kind, table, ids, execute)
    source.close()


@pytest.mark.parametrize(
    "backend",
    [
        ("sqlite", "integer"),
        ("sqlite", "composite"),
        ("postgres", "integer"),
        ("postgres", "uuid"),
        ("postgres", "composite"),
        ("supabase", "uuid"),
        ("supabase", "composite"),
    ],
    ids="-".join,
    indirect=True,
)
def test_rows_keep_their_batch_as_the_catalog_grows_and_shrinks(backend, request):
    rng = random.Random(request.node.name)
    source = backend.source
    keys = source.register([], BATCH_SIZE).keys
    assert len(keys) == 3  # 5, 5 and 2 of 12 rows
    first = {key: set(_ids(source, key)) for key in keys}
    first_ids = set(backend.ids)

    added = [i for i in dict.fromkeys(new_ids(backend.id_kind, rng, 12)) if i not in first_ids]
    added = added[:8]
    deleted = rng.sample(backend.ids, 2)
    backend.execute(
        f"insert into {backend.table} (id, name, price, updated_at) values (?, ?, ?, ?)",
        [(id_, f"New {id_}", "1.00", "2026-12-01T00:00:00+00:00") for id_ in added],
    )
    backend.execute(
        f"delete from {backend.table} where cast(id as text) = ?", [(i,) for i in deleted]
    )
    keys += source.register(keys, BATCH_SIZE).keys

    now = {key: _ids(source, key) for key in keys}
    full, last = keys[:2], keys[2]
    assert all(set(now[key]) == first[key] - set(deleted) for key in full)
    assert set(now[last]) - set(added) == first[last] - set(deleted)
    assert [len(source.state.members(key)) for key in keys] == [5, 5, 5, 5]
    read = [i for ids in now.values() for i in ids]
    assert sorted(read) == sorted({*first_ids, *added} - set(deleted))  # each row read once
    memberships = source.state.memberships()
    assert {memberships[i] for i in deleted} <= set(first)  # deleted rows stay in their batch


def _ids(source: TrackedCatalog, key: str) -> list[str]:
    rows, _prices = source.read_batch(key)
    return [row["id"] for row in rows]
