"""Every Supabase read gets every row it reads whatever a project answers a request at most
(its "Max rows", PostgREST's db-max-rows): 5,000 catalog rows with uuid ids, their prices and
their state, read through look-alikes capped at Supabase's default 1,000, at 250 and at 100
(fewer than the ids of one `in` list)."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pytest
from psycopg import sql

from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.backends.supabase.state import SupabaseState
from stripe_sync.core.backups import Backup
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import SOURCE_COLUMNS
from stripe_sync.core.mapping import PriceMapping, PricesModel
from stripe_sync_tests.support.postgrest import grant_like_supabase, run_postgrest, service_role_key
from stripe_sync_tests.support.tables import create_postgres_products, synced

ROWS = 5_000
MOST_PRICES = 1_200  # the first product's: more than any cap
BATCH_ROWS = 1_500
STATE_TABLES = ("stripe_sync_state", "stripe_sync_ledger", "stripe_sync_backups")


@dataclass
class Project:
    """A Supabase project capped at `max_rows` rows an answer, with a catalog of ROWS rows."""

    max_rows: int
    catalog: SupabaseCatalog
    state: SupabaseState
    ids: list[str]  # in the database's order
    prices: list[tuple[str, str]]  # (product_id, id) of every price, in that order


@pytest.fixture(scope="module")
def uuid_catalog(database, supabase_roles) -> Iterator[tuple[str, list[str]]]:
    """A table of ROWS products with uuid ids, no write-back columns, and its prices table:
    the first product has MOST_PRICES prices, the others none, one or two."""
    table = f"products_capped_{secrets.token_hex(3)}"
    ids = create_postgres_products(database, table, "uuid", ROWS, write_back=False)
    prices = sql.Identifier(f"{table}_prices")
    database.execute(
        sql.SQL(
            "create table {} (id text primary key, product_id uuid not null, "
            "amount numeric(12, 2) not null, currency text not null)"
        ).format(prices)
    )
    database.execute(
        sql.SQL(
            "insert into {} select format('price-%%s-%%s', n, k), product_id, 9.5, 'eur' "
            "from unnest(%s::uuid[]) with ordinality as p(product_id, n), "
            "generate_series(1, case when n = 1 then %s else n %% 3 end) k"
        ).format(prices),
        [ids, MOST_PRICES],
    )
    for name in (table, f"{table}_prices"):
        grant_like_supabase(database, name)
    yield table, ids
    database.execute(sql.SQL("drop table {}, {}").format(sql.Identifier(table), prices))


@pytest.fixture(params=[1_000, 250, 100], ids=lambda cap: f"max_rows={cap}")
def project(
    request,
    uuid_catalog,
    database,
    fresh_database_url,
    jwt_secret,
    postgrest_log,
    apply_state_migration,
) -> Iterator[Project]:
    """The catalog, its prices and its state read through a look-alike of their own, capped
    at `max_rows`; the state is emptied after."""
    table, ids = uuid_catalog
    prices = database.execute(
        sql.SQL("select product_id::text, id from {} order by product_id, id").format(
            sql.Identifier(f"{table}_prices")
        )
    ).fetchall()
    with run_postgrest(
        fresh_database_url, jwt_secret, postgrest_log, max_rows=request.param
    ) as url:
        catalog = SupabaseCatalog(
            url,
            service_role_key(jwt_secret),
            table,
            prices=PricesModel(PriceMapping(), table=f"{table}_prices"),
        )
        yield Project(request.param, catalog, SupabaseState(catalog), ids, prices)
        catalog.close()
    for state_table in STATE_TABLES:
        database.execute(
            sql.SQL("delete from {} where namespace = %s").format(sql.Identifier(state_table)),
            [table],
        )


def test_every_id_is_read_and_counted(project, requests_made):
    assert list(project.catalog.iter_ids()) == project.ids
    assert len(requests_made) == ROWS // project.max_rows + 1  # full pages, then an empty one
    assert project.catalog.count_ids() == ROWS


def test_rows_read_by_id_are_every_row_asked_for_in_id_order(project, requests_made):
    rows = list(project.catalog.read_rows(project.ids))

    assert [row["id"] for row in rows] == project.ids
    assert all(tuple(row) == SOURCE_COLUMNS for row in rows)
    assert all(len(request.target) < 8_000 for request in requests_made)


def test_rows_read_by_id_leave_out_the_ids_the_catalog_lacks(project):
    gone = [str(uuid.uuid4()) for _ in range(300)]
    asked = [*project.ids[1::2], *gone]

    rows = list(project.catalog.read_rows(asked))

    assert sorted(row["id"] for row in rows) == project.ids[1::2]


def test_prices_read_by_product_are_every_price_of_those_products(project, requests_made):
    prices = list(project.catalog.read_prices(project.ids))

    assert [(price["product_id"], price["id"]) for price in prices] == project.prices
    assert all(len(request.target) < 8_000 for request in requests_made)


def test_the_state_reads_every_row_it_holds(project, database):
    state, ids = project.state, project.ids
    batches = {
        f"b{n}": ids[at : at + BATCH_ROWS] for n, at in enumerate(range(0, ROWS, BATCH_ROWS))
    }
    batch_of = {cms_id: key for key, members in batches.items() for cms_id in members}
    made = Checkpoint("prod_1", "price_1", "hash1", {"name": "Product 1"})
    state.record([synced(cms_id, 1) for cms_id in ids], {"b0": dict.fromkeys(batches["b0"], made)})
    state.assign(batch_of)
    backups = [
        Backup(f"run{n:04d}", "b0", f"2026-12-01T10:00:00.{n:06d}+00:00") for n in range(1_100)
    ]
    with database.cursor() as cursor:
        cursor.executemany(
            "insert into stripe_sync_backups (namespace, run_id, batch, taken_at, backup) "
            "values (%s, %s, %s, %s, %s)",
            [
                (project.catalog.table, b.run_id, b.batch, b.taken_at, json.dumps(asdict(b)))
                for b in backups
            ],
        )

    assert state.memberships() == batch_of
    assert {key: state.members(key) for key in batches} == batches
    assert state.checkpoints("b0") == dict.fromkeys(batches["b0"], made)
    assert state.sync_states(ids) == {cms_id: synced(cms_id, 1) for cms_id in ids}
    assert state.backups() == backups
