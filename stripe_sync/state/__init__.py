"""The pipeline's state store (`stripe_sync.core.state.StateStore`): by default in the
catalog's own database, or in a PostgreSQL or SQLite database of its own (`state.url`)."""

from __future__ import annotations

import sqlalchemy as sa

from stripe_sync.catalog.sql import SqlCatalog, engine_url, location_of
from stripe_sync.core.contract import Catalog
from stripe_sync.core.state import StateStore
from stripe_sync.state.sql import SqlState


def open_state(catalog: Catalog, url: str | None = None) -> StateStore:
    """The state of `catalog`: in its database (one transaction with the write-back), or at
    `url` (the write-back then follows the state's transaction)."""
    if url:
        engine = sa.create_engine(engine_url(url, setting="STRIPE_SYNC_STATE_URL"))
        return SqlState(engine, catalog, location=location_of(engine.url), owns_engine=True)
    if isinstance(catalog, SqlCatalog):
        return SqlState(catalog.engine, catalog, location=catalog.location())
    from stripe_sync.state.postgrest import PostgrestState  # supabase-py: imported on use

    return PostgrestState(catalog)
