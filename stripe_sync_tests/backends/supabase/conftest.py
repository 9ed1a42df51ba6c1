"""Fixtures for the Supabase backend's tests: public.products Supabase-style, read through the
PostgREST look-alike in front of the session's database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync_tests.conftest import WRITE_BACK_MIGRATION
from stripe_sync_tests.support.postgrest import anon_key, grant_like_supabase, service_role_key
from stripe_sync_tests.support.tables import (
    SAMPLE_SIZE,
    SampleCatalog,
    create_postgres_products,
    postgres_cms_rows,
)


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
    yield SampleCatalog(catalog, ids, postgres_cms_rows(database, "products"))
    catalog.close()


@pytest.fixture
def anon_catalog(supabase_url, jwt_secret) -> Iterator[SupabaseCatalog]:
    catalog = SupabaseCatalog(supabase_url, anon_key(jwt_secret))
    yield catalog
    catalog.close()
