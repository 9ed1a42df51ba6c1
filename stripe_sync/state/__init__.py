"""The pipeline's state store (`stripe_sync.core.state.StateStore`): by default in the
catalog's own database, or in a PostgreSQL or SQLite database of its own (`state.url`)."""

from __future__ import annotations

from stripe_sync.catalog.database import Database
from stripe_sync.catalog.sql import SqlCatalog
from stripe_sync.core.contract import Catalog
from stripe_sync.core.retry import RetryPolicy, RetryStats
from stripe_sync.core.state import StateStore
from stripe_sync.state.sql import SqlState


def open_state(
    catalog: Catalog,
    url: str | None = None,
    *,
    timeout_s: float = 30.0,
    retry: RetryPolicy | None = None,
    stats: RetryStats | None = None,
) -> StateStore:
    """The state of `catalog`: in its database (one transaction with the write-back; the
    catalog's retry policy), or at `url` (the write-back then follows the state's
    transaction; `retry` and `stats` as the catalog's)."""
    if url:
        database = Database(
            url,
            name="state",
            setting="STRIPE_SYNC_STATE_URL",
            timeout_s=timeout_s,
            **({"retry": retry} if retry else {}),
            stats=stats,
        )
        return SqlState(database, catalog, own_database=True)
    if isinstance(catalog, SqlCatalog):
        return SqlState(catalog.database, catalog)
    from stripe_sync.state.postgrest import PostgrestState  # supabase-py: imported on use

    return PostgrestState(catalog)
