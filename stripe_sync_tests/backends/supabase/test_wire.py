"""The exact PostgREST requests supabase-py makes for the catalog, pinned: if a new
supabase-py changes them, these fail before a real Supabase project does."""

from __future__ import annotations

import httpx
import pytest

from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync_tests.support.postgrest import service_role_key
from stripe_sync_tests.support.tables import SYNCED_AT, synced

ALL_COLUMNS = (
    "id::text,name,description,price::text,currency,images,active,updated_at,"
    "stripe_product_id,stripe_price_id,sync_status,sync_error,synced_at,sync_hash"
)
WRITE_BACK_1 = {
    "stripe_product_id": "prod_1",
    "stripe_price_id": "price_1",
    "sync_status": "synced",
    "sync_error": None,
    "synced_at": SYNCED_AT.isoformat(),
    "sync_hash": "hash1",
}
HEADERS_THAT_MATTER = (
    "apikey",
    "authorization",
    "prefer",
    "content-type",
    "accept",
    "accept-profile",
    "content-profile",
)


@pytest.fixture
def key(jwt_secret) -> str:
    return service_role_key(jwt_secret)


@pytest.fixture
def catalog(supabase_sample, supabase_url, key):
    catalog = SupabaseCatalog(supabase_url, key)
    yield catalog
    catalog.close()


def wire(requests_made) -> list[tuple]:
    return [
        (
            r.method,
            r.path,
            r.query,
            {name: r.headers[name] for name in HEADERS_THAT_MATTER if name in r.headers},
            r.body,
        )
        for r in requests_made
    ]


def test_rows_are_read_by_id_with_one_get_of_a_quoted_in_list_in_id_order(
    catalog, key, requests_made
):
    list(catalog.read_rows(["2", "5", "3"]))
    assert wire(requests_made) == [
        (
            "GET",
            "/rest/v1/products",
            [
                ("select", ALL_COLUMNS),
                ("id", 'in.("2","5","3")'),
                ("order", "id.asc"),
            ],
            {
                "apikey": key,
                "authorization": f"Bearer {key}",
                "content-type": "application/json",
                "accept": "application/json",
                "accept-profile": "public",
                "content-profile": "public",
            },
            None,
        )
    ]


def test_the_next_page_starts_after_the_last_id(catalog, key, requests_made):
    # 20 is raised to 1000; the page of 25 may be capped, so one more page proves the end.
    list(catalog.iter_ids(page_size=20))
    assert [r.query for r in requests_made] == [
        [("select", "id::text"), ("id", "not.is.null"), ("order", "id.asc"), ("limit", "1000")],
        [
            ("select", "id::text"),
            ("id", "not.is.null"),
            ("id", "gt.25"),
            ("order", "id.asc"),
            ("limit", "1000"),
        ],
    ]


def test_counting_is_one_head_request_asking_for_an_exact_count(catalog, requests_made):
    assert catalog.count_ids() == 25
    assert [(r.method, r.query, r.headers["prefer"]) for r in requests_made] == [
        ("HEAD", [("select", "id")], "count=exact")
    ]


def test_write_back_is_one_rpc_post_with_the_table_and_rows(catalog, key, requests_made):
    catalog.write_back([synced("1", 1)])
    assert wire(requests_made) == [
        (
            "POST",
            "/rest/v1/rpc/stripe_sync_write_back",
            [],
            {
                "apikey": key,
                "authorization": f"Bearer {key}",
                "content-type": "application/json",
                "accept": "application/json",
                "accept-profile": "public",
                "content-profile": "public",
            },
            {"target_table": "products", "rows": [{"id": "1", **WRITE_BACK_1}]},
        )
    ]


def test_the_fallback_is_a_patch_per_row_filtered_by_id_with_no_representation(
    catalog, key, database, requests_made
):
    database.execute("drop function public.stripe_sync_write_back(text, jsonb)")
    catalog.write_back([synced("1", 1)])
    assert wire(requests_made)[1:] == [
        (
            "PATCH",
            "/rest/v1/products",
            [("id", "eq.1")],
            {
                "apikey": key,
                "authorization": f"Bearer {key}",
                "prefer": "return=minimal",
                "content-type": "application/json",
                "accept": "application/json",
                "accept-profile": "public",
                "content-profile": "public",
            },
            WRITE_BACK_1,
        )
    ]


def test_once_the_function_is_known_missing_no_more_rpc_is_tried(catalog, database, requests_made):
    database.execute("drop function public.stripe_sync_write_back(text, jsonb)")
    catalog.write_back([synced("1", 1)])
    catalog.write_back([synced("2", 2)])
    assert [r.method for r in requests_made] == ["POST", "PATCH", "PATCH"]


def test_the_look_alike_refuses_requests_it_does_not_speak(supabase_sample, supabase_url, key):
    answer = httpx.get(
        f"{supabase_url}/rest/v1/products",
        params={"select": "id", "offset": "10"},
        headers={"apikey": key},
    )
    assert answer.status_code == 400 and answer.json()["code"] == "PGRST100"
