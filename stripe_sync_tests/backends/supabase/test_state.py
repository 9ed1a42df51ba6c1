"""The state store on Supabase puts rows into batches as the SQL stores do, in bulk requests
through the PostgREST look-alike (which answers at most 1,000 rows a read, as Supabase does),
with uuid ids and text ids that hold PostgREST's syntax characters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.backends.supabase.state import SupabaseState
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync_tests.support.postgrest import grant_like_supabase, service_role_key
from stripe_sync_tests.support.tables import create_postgres_products, sample_ids, synced

URL_LIMIT = 8_000  # the request line a server or proxy takes, give or take


def odd_ids(count: int) -> list[str]:
    """Text ids holding every character PostgREST reads as syntax in a filter or list."""
    return [f'sku {n:05d},(a.b):"c"\\d' for n in range(count)]


@pytest.fixture(params=["uuid", "text"])
def ids(request) -> list[str]:
    """2,500 ids of the kind: more than one 1,000-row page, more than one `in` list."""
    return sample_ids("uuid", 2_500) if request.param == "uuid" else odd_ids(2_500)


@pytest.fixture
def state(
    catalog_connection, apply_state_migration, supabase_url, jwt_secret
) -> Iterator[SupabaseState]:
    """The state of public.products (a few rows, no write-back columns) in Supabase."""
    create_postgres_products(catalog_connection, "products", "text", 3, write_back=False)
    grant_like_supabase(catalog_connection, "products")
    catalog = SupabaseCatalog(supabase_url, service_role_key(jwt_secret))
    yield SupabaseState(catalog)
    catalog.close()


def state_rows(connection, cms_ids: list[str]) -> dict[str, tuple]:
    """Every column of these rows' state but the namespace and the id, by id."""
    rows = connection.execute(
        "select catalog_id, batch, stripe_product_id, stripe_price_id, sync_status, sync_error, "
        "synced_at, sync_hash, checkpoint, updated_at from stripe_sync_state "
        "where namespace = 'products' and catalog_id = any(%s)",
        [cms_ids],
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_a_row_assigned_a_batch_gets_a_state_row_holding_only_its_batch(
    state, catalog_connection, ids
):
    state.assign({cms_id: "b1" for cms_id in ids[:3]})

    assert state_rows(catalog_connection, ids[:4]) == {
        cms_id: ("b1", *[None] * 8) for cms_id in ids[:3]
    }


def test_a_row_keeps_the_batch_it_has_and_a_row_without_one_gets_it(state, catalog_connection, ids):
    kept, unbatched, new = ids[:3]
    state.record([synced(kept, 1)], batch_of={kept: "b0"})
    state.record([synced(unbatched, 2)])  # a state row with no batch

    state.assign({kept: "b1", unbatched: "b1", new: "b1"})

    assert state.memberships() == {kept: "b0", unbatched: "b1", new: "b1"}
    assert state.members("b1") == sorted([unbatched, new])
    assert state.sync_states([kept, unbatched]) == {
        kept: synced(kept, 1),
        unbatched: synced(unbatched, 2),
    }
    assert state_rows(catalog_connection, [new])[new][1:] == (None,) * 8


def test_a_batch_recorded_later_leaves_an_assigned_row_where_it_is(state, ids):
    row, made = ids[0], Checkpoint("prod_1", "price_1", "hash1", {"name": "Product 1"})
    state.assign({row: "b1"})

    state.record([synced(row, 1)], {"b2": {row: made}}, batch_of={row: "b2"})

    assert state.memberships() == {row: "b1"}
    assert state.checkpoints("b1") == {row: made}
    assert state.checkpoints("b2") == {}


def test_thousands_of_new_rows_are_assigned_with_a_request_a_thousand(state, ids, requests_made):
    state.assign({cms_id: f"b{n // 1_000}" for n, cms_id in enumerate(ids)})

    assert [(r.method, r.path) for r in requests_made] == [
        ("POST", "/rest/v1/stripe_sync_state")
    ] * 3
    assert state.memberships() == {cms_id: f"b{n // 1_000}" for n, cms_id in enumerate(ids)}
    assert state.members("b1") == sorted(ids[1_000:2_000])


def test_rows_that_had_a_state_row_get_their_batch_in_patches_of_urls_under_the_limit(
    state, ids, requests_made
):
    state.record([], {"b0": dict.fromkeys(ids[:5])})  # state rows: batch b0, no checkpoint
    state.record([synced(cms_id, 1) for cms_id in ids[5:]])  # state rows without a batch
    requests_made.clear()

    state.assign(dict.fromkeys(ids, "b1"))

    patches = [r for r in requests_made if r.method == "PATCH"]
    assert len(patches) > 1 and all(len(r.target) < URL_LIMIT for r in patches)
    assert state.memberships() == dict.fromkeys(ids[:5], "b0") | dict.fromkeys(ids[5:], "b1")


def test_assigning_nothing_asks_nothing(state, requests_made):
    state.assign({})
    assert requests_made == []
