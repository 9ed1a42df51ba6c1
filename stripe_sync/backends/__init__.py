"""Where catalog rows come from, where sync results go back and where the pipeline's state is
kept: a package per kind of database, each holding its catalog (`core/contract.py`'s
`Catalog`) and its state store (`core/state.py`'s `StateStore`), which talk to each other
through their package's own API:

- `sql/`: PostgreSQL and SQLite through SQLAlchemy; a state in the catalog's database writes
  the catalog's write-back in its own transaction;
- `supabase/`: a Supabase project through its REST API (PostgREST) with supabase-py; the
  state writes the write-back and itself in one RPC request.

A state in a SQL database of its own (`state.url`) serves either catalog: it writes the
catalog's write-back through the catalog, after its own transaction.
"""

from __future__ import annotations

from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.backends.sql.state import SqlState
from stripe_sync.core.contract import Catalog
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.mapping import DEFAULT_MAPPING, FieldMapping, PricesModel
from stripe_sync.core.retry import CALL_TIMEOUT_S, NO_RETRY, RetryPolicy, RetryStats
from stripe_sync.core.state import StateStore

_NOTHING_CONFIGURED = (
    "No catalog configured: set CATALOG_DATABASE_URL (postgresql://… or sqlite:///…) "
    "or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY."
)


def open_catalog(
    *,
    database_url: str | None,
    supabase_url: str | None,
    supabase_key: str | None,
    table: str,
    mapping: FieldMapping = DEFAULT_MAPPING,
    query: str | None = None,
    where: str | None = None,
    prices: PricesModel | None = None,
    timeout_s: float = CALL_TIMEOUT_S,
    retry: RetryPolicy = NO_RETRY,
    stats: RetryStats | None = None,
) -> Catalog:
    """The configured catalog model (`table`, or for SQL a `query`, narrowed by `where`, its
    columns mapped by `mapping`; its prices in `prices`, if a model holds them): a database
    URL wins over Supabase's REST API. Its calls are retried by `retry`, counted in
    `stats`."""
    tuning = {"timeout_s": timeout_s, "retry": retry, "stats": stats}
    if database_url:
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
        # Imported on use: supabase-py takes most of a second to import and SQL users
        # never need it.
        from stripe_sync.backends.supabase.catalog import SupabaseCatalog

        return SupabaseCatalog(
            supabase_url, supabase_key, table, mapping, where=where, prices=prices, **tuning
        )
    if supabase_url:
        raise CatalogError("SUPABASE_URL is set without a key: set SUPABASE_SERVICE_ROLE_KEY.")
    if supabase_key:
        raise CatalogError("SUPABASE_SERVICE_ROLE_KEY is set without a URL: set SUPABASE_URL.")
    raise CatalogError(_NOTHING_CONFIGURED)


def open_state(
    catalog: Catalog,
    url: str | None = None,
    *,
    timeout_s: float = CALL_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    stats: RetryStats | None = None,
) -> StateStore:
    """The state of `catalog`: in its database (one transaction with the write-back; the
    catalog's retry policy), or at `url` (the write-back then follows the state's
    transaction; `retry` and `stats` as the catalog's)."""
    if url:
        return SqlState.in_own_database(
            url, catalog, timeout_s=timeout_s, retry=retry or NO_RETRY, stats=stats
        )
    if isinstance(catalog, SqlCatalog):
        return SqlState.in_catalog_database(catalog)
    from stripe_sync.backends.supabase.state import SupabaseState  # supabase-py: imported on use

    return SupabaseState(catalog)
