"""Where catalog rows come from and where sync results go back: direct SQL or Supabase,
each implementing `stripe_sync.core.contract.Catalog`."""

from __future__ import annotations

from stripe_sync.core.contract import Catalog
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.mapping import DEFAULT_MAPPING, FieldMapping, PricesModel
from stripe_sync.core.retry import NO_RETRY, RetryPolicy, RetryStats

_NOTHING_CONFIGURED = (
    "No catalog configured: set CATALOG_DATABASE_URL (postgresql://… or sqlite:///…) "
    "or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY."
)


def open_catalog(
    *,
    database_url: str | None,
    supabase_url: str | None,
    supabase_key: str | None,
    table: str = "products",
    mapping: FieldMapping = DEFAULT_MAPPING,
    query: str | None = None,
    where: str | None = None,
    prices: PricesModel | None = None,
    timeout_s: float = 30.0,
    retry: RetryPolicy = NO_RETRY,
    stats: RetryStats | None = None,
) -> Catalog:
    """The configured catalog model (`table`, or for SQL a `query`, narrowed by `where`, its
    columns mapped by `mapping`; its prices in `prices`, if a model holds them): a database
    URL wins over Supabase's REST API. Its calls are retried by `retry`, counted in
    `stats`."""
    tuning = {"timeout_s": timeout_s, "retry": retry, "stats": stats}
    # Imported on use: supabase-py takes most of a second to import and SQL users
    # never need it.
    if database_url:
        from stripe_sync.catalog.sql import SqlCatalog

        return SqlCatalog(
            database_url, table, mapping, query=query, where=where, prices=prices, **tuning
        )
    if supabase_url and supabase_key and query:
        raise CatalogError(
            "catalog.query needs a SQL catalog; PostgREST reads tables and views only: create "
            "a view with the query in Supabase and set catalog.table to it."
        )
    if supabase_url and supabase_key and prices is not None and prices.query:
        raise CatalogError(
            "prices.query needs a SQL catalog; PostgREST reads tables and views only: create "
            "a view with the query in Supabase and set prices.table to it."
        )
    if supabase_url and supabase_key:
        from stripe_sync.catalog.supabase import SupabaseCatalog

        return SupabaseCatalog(
            supabase_url, supabase_key, table, mapping, where=where, prices=prices, **tuning
        )
    if supabase_url:
        raise CatalogError("SUPABASE_URL is set without a key: set SUPABASE_SERVICE_ROLE_KEY.")
    if supabase_key:
        raise CatalogError("SUPABASE_SERVICE_ROLE_KEY is set without a URL: set SUPABASE_URL.")
    raise CatalogError(_NOTHING_CONFIGURED)
