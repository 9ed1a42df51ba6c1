"""The Supabase catalog end to end: real supabase-py, the PostgREST look-alike, real
PostgreSQL with the migration applied, and Supabase's roles deciding who may write."""

from __future__ import annotations

import logging
import secrets
from decimal import Decimal

import pytest
from psycopg import sql

from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.core.contract import SOURCE_COLUMNS, WRITE_BACK_COLUMNS, change_cursor
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.mapping import FieldMapping
from stripe_sync_tests.support.postgrest import anon_key, grant_like_supabase, service_role_key
from stripe_sync_tests.support.tables import SYNCED_AT, synced


def write_back_columns(database, ids: list[str]) -> list[tuple]:
    return database.execute(
        sql.SQL("select {} from products where id::text = any(%s) order by id").format(
            sql.SQL(", ").join(map(sql.Identifier, WRITE_BACK_COLUMNS))
        ),
        [ids],
    ).fetchall()


def test_check_passes_on_the_migrated_table(supabase_sample):
    supabase_sample.catalog.check()


def test_ids_come_in_numeric_order(supabase_sample):
    ids = supabase_sample.ids  # "1".."25": text order would put "10" before "2"
    assert list(supabase_sample.catalog.iter_ids()) == ids
    assert supabase_sample.catalog.count_ids() == len(ids)


def test_rows_read_by_id_come_in_id_order_and_hold_exactly_the_contract_columns(
    supabase_sample,
):
    rows = list(supabase_sample.catalog.read_rows(["9", "2", "10", "999", "3"]))
    assert [row["id"] for row in rows] == ["2", "3", "9", "10"]  # no row 999
    assert all(tuple(row) == SOURCE_COLUMNS + WRITE_BACK_COLUMNS for row in rows)
    assert rows[0]["price"] == "1.50"  # exact text, never a float
    assert Decimal(rows[0]["price"]) == Decimal("1.50")
    assert rows[0]["images"] == ["https://img.example/1.png"]
    assert list(supabase_sample.catalog.read_rows([])) == []


def test_ids_holding_postgrests_syntax_are_read_by_id_in_urls_well_under_8_kb(
    supabase_url, jwt_secret, supabase_sample, database, requests_made
):
    # A table of its own with text ids (public.products keeps its integer ids).
    name = f"products_odd_{secrets.token_hex(3)}"
    table = sql.Identifier(name)
    odd = [f'sku {n:04d},(a.b):"c"\\d{"-" * 40}' for n in range(600)]
    database.execute(sql.SQL("create table {} (like products)").format(table))
    database.execute(sql.SQL("alter table {} alter column id type text").format(table))
    database.execute(
        sql.SQL(
            "insert into {} (id, name, price, updated_at) "
            "select odd, name, price, updated_at from products, unnest(%s::text[]) odd "
            "where products.id = 1"
        ).format(table),
        [odd],
    )
    grant_like_supabase(database, name)
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret), name)
    requests_made.clear()

    rows = list(catalog.read_rows(odd[::-1]))

    assert sorted(row["id"] for row in rows) == sorted(odd)
    assert len(requests_made) > 1 and all(len(r.target) < 8_000 for r in requests_made)
    catalog.close()
    database.execute(sql.SQL("drop table {}").format(table))


def test_ids_are_read_by_keyset_at_least_a_thousand_a_request(
    supabase_url, jwt_secret, supabase_products, apply_migration, requests_made
):
    ids = supabase_products(2_500)
    apply_migration()
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret))
    requests_made.clear()
    assert list(catalog.iter_ids(page_size=10)) == ids
    assert [
        [value for name, value in request.query if name == "id"] for request in requests_made
    ] == [["not.is.null"], ["not.is.null", "gt.1000"], ["not.is.null", "gt.2000"]]
    assert {dict(request.query)["limit"] for request in requests_made} == {"1000"}
    catalog.close()


def test_write_back_is_one_rpc_request_that_changes_only_the_write_back_columns(
    supabase_sample, database, requests_made
):
    before = supabase_sample.cms_rows()
    ids = supabase_sample.ids[:10]
    assert supabase_sample.catalog.write_back([synced(id_, n) for n, id_ in enumerate(ids)]) == 1
    assert [(r.method, r.path) for r in requests_made] == [
        ("POST", "/rest/v1/rpc/stripe_sync_write_back")
    ]
    assert supabase_sample.cms_rows() == before
    assert write_back_columns(database, ["5"])[0] == (
        "prod_4",
        "price_4",
        "synced",
        None,
        SYNCED_AT,
        "hash4",
    )
    assert write_back_columns(database, ["11"])[0] == (None,) * 6


def test_without_the_function_write_back_patches_each_row_and_warns(
    supabase_sample, database, requests_made, caplog
):
    database.execute("drop function public.stripe_sync_write_back(text, jsonb)")
    before = supabase_sample.cms_rows()
    ids = supabase_sample.ids[:3]
    with caplog.at_level(logging.WARNING, logger="stripe_sync.backends.supabase.catalog"):
        made = supabase_sample.catalog.write_back([synced(id_, n) for n, id_ in enumerate(ids)])
    assert made == 3
    assert [r.method for r in requests_made] == ["POST", "PATCH", "PATCH", "PATCH"]
    assert [warning.getMessage() for warning in caplog.records] == [
        (
            "The function public.stripe_sync_write_back is not installed in Supabase: writing "
            "back one PATCH request a row; apply supabase/migrations/20261126000000_stripe_sync.sql "
            "to write back a batch in one request."
        )
    ]
    assert supabase_sample.cms_rows() == before
    assert [row[0] for row in write_back_columns(database, ids)] == ["prod_0", "prod_1", "prod_2"]


@pytest.mark.parametrize("function_installed", [True, False], ids=["rpc", "patch"])
def test_the_anon_key_cannot_write_back(
    supabase_sample, anon_catalog, database, jwt_secret, function_installed
):
    if not function_installed:
        database.execute("drop function public.stripe_sync_write_back(text, jsonb)")
    with pytest.raises(CatalogError, match="set SUPABASE_SERVICE_ROLE_KEY") as error:
        anon_catalog.write_back([synced("1", 1)])
    assert "42501" in str(error.value)
    assert anon_key(jwt_secret) not in str(error.value)
    assert write_back_columns(database, ["1"])[0] == (None,) * 6


def test_the_anon_key_can_read_but_check_refuses_it(supabase_sample, anon_catalog):
    assert list(anon_catalog.iter_ids())[:2] == ["1", "2"]
    with pytest.raises(CatalogError, match="holds a key with role 'anon'"):
        anon_catalog.check()


def test_a_table_without_write_back_columns_passes_and_its_rows_hold_none_of_them(
    supabase_url, jwt_secret, supabase_products, requests_made
):
    ids = supabase_products()
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret))

    catalog.check()
    requests_made.clear()
    rows = list(catalog.read_rows(ids))

    assert catalog.has_write_back_columns is False
    assert tuple(rows[0]) == SOURCE_COLUMNS
    assert len(requests_made) == 1  # settled by the check: no read of the missing columns
    catalog.close()


def test_some_write_back_columns_without_the_others_are_named(
    supabase_url, jwt_secret, supabase_products, database
):
    supabase_products()
    database.execute("alter table products add column stripe_product_id text")
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret))

    with pytest.raises(CatalogError) as error:
        catalog.check()

    assert str(error.value) == (
        "Table products lacks the write-back columns stripe_price_id, sync_status, sync_error, "
        "synced_at, sync_hash (they are optional, but all or none: add these, e.g. with "
        "supabase/migrations/20261126000000_stripe_sync.sql, or drop the others)."
    )


def test_a_missing_table_is_named(supabase_url, jwt_secret, supabase_roles):
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret), "no_such_products")
    with pytest.raises(CatalogError, match="Table no_such_products not found in Supabase"):
        catalog.check()


def test_an_unreachable_supabase_is_named(closed_port, jwt_secret):
    catalog = SupabaseCatalog(f"http://127.0.0.1:{closed_port}", service_role_key(jwt_secret))
    with pytest.raises(
        CatalogError, match=f"Cannot reach Supabase at http://127.0.0.1:{closed_port}"
    ):
        catalog.check()


def test_a_key_signed_with_another_secret_is_refused_without_showing_it(supabase_url):
    key = service_role_key("another-project-secret-of-thirty-two-bytes!")
    catalog = SupabaseCatalog(supabase_url, key)
    with pytest.raises(CatalogError, match="PGRST301") as error:
        catalog.check()
    assert key not in str(error.value) and key not in repr(catalog)


def test_the_migration_applied_twice_leaves_one_constraint_index_and_function(
    supabase_sample, apply_migration, database
):
    apply_migration()
    assert (
        database.execute(
            "select count(*) from pg_constraint where conrelid = 'public.products'::regclass "
            "and conname = 'products_sync_status_check'"
        ).fetchone()[0]
        == 1
    )
    assert (
        database.execute(
            "select count(*) from pg_indexes where tablename = 'products' "
            "and indexname = 'products_sync_status_idx'"
        ).fetchone()[0]
        == 1
    )
    assert supabase_sample.catalog.write_back([synced("1", 1)]) == 1


def test_the_migration_rejects_an_unknown_sync_status(supabase_sample, database):
    with pytest.raises(Exception, match="products_sync_status_check"):
        database.execute("update products set sync_status = 'done' where id = 1")


def test_only_service_role_may_execute_the_function(supabase_sample, database):
    granted = database.execute(
        "select grantee from information_schema.routine_privileges "
        "where routine_name = 'stripe_sync_write_back' and privilege_type = 'EXECUTE'"
    ).fetchall()
    assert {row[0] for row in granted} <= {"service_role", "postgres"}
    assert ("service_role",) in granted


def test_the_function_quotes_the_table_name(supabase_sample, database):
    with pytest.raises(
        Exception, match='relation "public.products; drop table products" does not exist'
    ):
        database.execute(
            "select public.stripe_sync_write_back('products; drop table products', '[]')"
        )


def test_mapped_metadata_columns_are_read_under_their_prefix(
    supabase_url, jwt_secret, supabase_products, apply_migration
):
    ids = supabase_products(3)
    apply_migration()
    catalog = SupabaseCatalog(
        supabase_url,
        service_role_key(jwt_secret),
        mapping=FieldMapping(metadata={"currency": "currency"}),
    )
    catalog.check()
    rows = list(catalog.read_rows(ids))
    assert [row["metadata.currency"] for row in rows] == [row["currency"] for row in rows]
    catalog.close()


def test_changes_come_in_updated_at_then_id_order_after_a_keyset_cursor(
    supabase_url, jwt_secret, database, supabase_products, apply_migration, requests_made
):
    ids = supabase_products(6, id_kind="text")
    apply_migration()
    # An id with every character a PostgREST logic tree would otherwise read as syntax.
    tricky = 'sku00002,x(y)."z\\'
    database.execute(
        "insert into products (id, name, price, updated_at) "
        "select %s, name, price, updated_at from products where id = %s",
        [tricky, ids[1]],
    )
    database.execute(
        "update products set updated_at = updated_at + interval '1 hour 0.000123 second' "
        "where id = any(%s)",
        [[ids[4], ids[0]]],
    )
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret))
    order = [ids[1], tricky, ids[2], ids[3], ids[5], ids[0], ids[4]]
    requests_made.clear()
    seen, after = [], None
    while page := catalog.changed_since(after, 2):
        seen += [row["id"] for row in page]
        after = change_cursor(page[-1])
    assert seen == order
    # Pages of 2, 2, 2 and 1 (not known to be the last: it may be capped), then empty ones.
    assert len(requests_made) == 6
    assert dict(requests_made[1].query)["or"] == (
        f'(updated_at.gt."{after_of(database, tricky)}",'
        f'and(updated_at.eq."{after_of(database, tricky)}",id.gt."sku00002,x(y).\\"z\\\\"))'
    )
    [row] = catalog.changed_since((after_of(database, ids[5]), ids[5]), 1)
    assert tuple(row) == SOURCE_COLUMNS + WRITE_BACK_COLUMNS
    assert row == next(catalog.read_rows([ids[0]]))
    catalog.close()


def after_of(database, id_: str) -> str:
    """A row's updated_at as PostgREST writes it in JSON."""
    return database.execute(
        "select to_json(updated_at) #>> '{}' from products where id = %s", [id_]
    ).fetchone()[0]
