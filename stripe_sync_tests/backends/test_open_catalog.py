"""Choosing the catalog from configuration, and the errors users read."""

from __future__ import annotations

import pytest

from stripe_sync.backends import open_catalog
from stripe_sync.backends.missing_columns import missing_columns_error
from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.core.contract import WriteBack
from stripe_sync.core.errors import CatalogError
from stripe_sync_tests.support.postgrest import service_role_key
from stripe_sync_tests.support.tables import SYNCED_AT

KEY = service_role_key("a-test-secret-of-at-least-thirty-two-bytes")


def test_a_database_url_wins_over_supabase():
    catalog = open_catalog(
        database_url="postgres://app@db.example.com/shop",
        supabase_url="https://abc.supabase.co",
        supabase_key=KEY,
        table="items",
    )
    assert isinstance(catalog, SqlCatalog)
    assert catalog.describe() == "PostgreSQL db.example.com:5432/shop, table items"


def test_supabase_is_used_with_both_its_url_and_key():
    catalog = open_catalog(
        database_url=None,
        supabase_url="https://abc.supabase.co",
        supabase_key=KEY,
        table="products",
    )
    assert isinstance(catalog, SupabaseCatalog)
    assert catalog.describe() == "Supabase https://abc.supabase.co, table products"
    assert KEY not in repr(catalog)
    catalog.close()


def test_nothing_configured_says_what_to_set():
    with pytest.raises(CatalogError) as error:
        open_catalog(database_url=None, supabase_url=None, supabase_key=None, table="products")
    assert str(error.value) == (
        "No catalog configured: set CATALOG_DATABASE_URL (postgresql://… or sqlite:///…) "
        "or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY."
    )


@pytest.mark.parametrize(
    ("url", "key", "missing"),
    [("https://abc.supabase.co", None, "SUPABASE_SERVICE_ROLE_KEY"), (None, KEY, "SUPABASE_URL")],
)
def test_half_a_supabase_configuration_names_the_missing_half(url, key, missing):
    with pytest.raises(CatalogError, match=f"set {missing}"):
        open_catalog(database_url=None, supabase_url=url, supabase_key=key, table="products")


def test_a_malformed_supabase_url_is_named_without_the_key():
    with pytest.raises(CatalogError, match="Cannot use SUPABASE_URL abc.supabase.co") as error:
        open_catalog(
            database_url=None, supabase_url="abc.supabase.co", supabase_key=KEY, table="products"
        )
    assert KEY not in str(error.value)


def test_missing_catalog_and_write_back_columns_are_both_named():
    error = missing_columns_error(
        "products", [("catalog.columns.price", "price_cents")], ["sync_hash"]
    )
    assert str(error) == (
        "Table products lacks the columns price_cents (catalog.columns.price): map each to a "
        "column it has in stripe_sync.yaml (null leaves an optional field out), or add them "
        "and the "
        "write-back columns sync_hash (they are optional, but all or none: add these, e.g. "
        "with supabase/migrations/20261126000000_stripe_sync.sql, or drop the others)."
    )


@pytest.mark.parametrize(
    ("status", "synced_at", "problem"),
    [
        ("done", SYNCED_AT, "sync_status must be one of"),
        ("synced", SYNCED_AT.replace(tzinfo=None), "synced_at must be timezone-aware"),
    ],
)
def test_a_write_back_with_an_unknown_status_or_naive_time_is_refused(status, synced_at, problem):
    with pytest.raises(ValueError, match=problem):
        WriteBack("1", None, None, status, None, synced_at, None)
