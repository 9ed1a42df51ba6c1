"""The SQL state store's own tables: made on first use, closed to Supabase's API roles."""

from __future__ import annotations

from stripe_sync.backends import open_state
from stripe_sync.backends.sql import state as sql_state
from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync_tests.support.tables import create_postgres_products


def test_tables_made_on_postgres_are_closed_to_supabases_api_roles(
    supabase_roles, catalog_connection, fresh_database_url, tmp_path
):
    catalog_connection.execute(
        "drop table if exists stripe_sync_state, stripe_sync_ledger, stripe_sync_backups, "
        "stripe_sync_frames"
    )
    _forget_made_tables()
    create_postgres_products(catalog_connection, "products_rls", "text", 1)
    catalog = SqlCatalog(fresh_database_url, "products_rls")
    open_state(catalog).memberships()  # made on first use
    catalog.close()

    for table in ("stripe_sync_state", "stripe_sync_frames"):
        secured, anon = catalog_connection.execute(
            "select relrowsecurity, has_table_privilege('anon', oid, 'select') "
            "from pg_class where relname = %s",
            [table],
        ).fetchone()
        assert secured and not anon, table


def _forget_made_tables() -> None:
    """This process made the tables before: make it check again."""
    sql_state._created.clear()
