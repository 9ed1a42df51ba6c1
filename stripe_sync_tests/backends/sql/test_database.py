"""A database's failures are classified once: what the catalog's retry policy retries, and
what it says in one sentence instead."""

from __future__ import annotations

import secrets

import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.backends.sql.database import Database
from stripe_sync.core.errors import CatalogError, CatalogFailure, ErrorKind
from stripe_sync.core.retry import RetryPolicy, RetryStats

QUICK = RetryPolicy(attempts=3, deadline_s=5, base_delay_s=0.01, max_delay_s=0.02)


def connect_once(database: Database) -> None:
    """Open and close one connection, through the database's retry layer."""

    def connect() -> None:
        with database.connect():
            pass

    database.call(connect)


def test_an_unreachable_database_is_retried_then_named(closed_port):
    stats = RetryStats()
    database = Database(
        f"postgresql://postgres:hunter2@127.0.0.1:{closed_port}/cms",
        name="catalog",
        setting="CATALOG_DATABASE_URL",
        retry=QUICK,
        stats=stats,
    )

    with pytest.raises(CatalogFailure) as failure:
        connect_once(database)

    assert failure.value.kind is ErrorKind.RETRYABLE and stats.retries == 2
    assert str(failure.value).startswith(
        f"Cannot reach the catalog database at 127.0.0.1:{closed_port}"
    )
    assert "hunter2" not in str(failure.value)


def test_a_permission_refusal_is_not_retried_and_says_what_to_fix(
    database, fresh_database_url, postgres_table
):
    table, _ = postgres_table("integer", 1)
    role = f"stripe_sync_noaccess_{secrets.token_hex(3)}"
    database.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
    try:
        url = make_url(fresh_database_url).set(username=role).render_as_string(hide_password=False)
        stats = RetryStats()
        catalog = SqlCatalog(url, table, retry=QUICK, stats=stats)

        with pytest.raises(CatalogFailure) as failure:
            list(catalog.iter_ids())

        catalog.close()
    finally:
        database.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
    assert failure.value.kind is ErrorKind.FATAL and stats.retries == 0
    assert "permission denied" in str(failure.value)
    assert str(failure.value).endswith(
        "grant the pipeline's database role what it needs on the table."
    )


@pytest.mark.parametrize(
    ("sqlstate", "kind"),
    [
        ("57P01", ErrorKind.RETRYABLE),  # admin_shutdown: a failover
        ("40001", ErrorKind.RETRYABLE),  # serialization failure
        ("40P01", ErrorKind.RETRYABLE),  # deadlock
        ("57014", ErrorKind.RETRYABLE),  # statement timeout
        ("42P01", ErrorKind.FATAL),  # undefined table
        ("42601", ErrorKind.FATAL),  # bad SQL
    ],
)
def test_postgres_error_codes_are_classified(database, fresh_database_url, sqlstate, kind):
    catalog_database = Database(fresh_database_url, name="catalog", setting="CATALOG_DATABASE_URL")

    def raise_it():
        with catalog_database.connect() as connection:
            connection.exec_driver_sql(
                f"do $$ begin raise exception 'on purpose' using errcode = '{sqlstate}'; end $$"
            )

    with pytest.raises(CatalogFailure) as failure:
        catalog_database.call(raise_it)

    catalog_database.dispose()
    assert failure.value.kind is kind


def test_a_wrong_database_name_is_refused_at_once_not_taken_for_an_outage(fresh_database_url):
    stats = RetryStats()
    url = make_url(fresh_database_url).set(database="no_such_database")
    database = Database(
        url.render_as_string(hide_password=False),
        name="state",
        setting="STRIPE_SYNC_STATE_URL",
        retry=QUICK,
        stats=stats,
    )

    with pytest.raises(CatalogFailure) as failure:
        connect_once(database)

    assert failure.value.kind is ErrorKind.FATAL and stats.retries == 0
    assert str(failure.value).endswith("fix the database or user name in the URL.")


def test_a_url_that_is_no_url_is_named_as_the_setting():
    with pytest.raises(CatalogError, match=r"^STRIPE_SYNC_STATE_URL is not a database URL"):
        Database(
            "postgresql://user:hunter2@host:notaport/db",
            name="state",
            setting="STRIPE_SYNC_STATE_URL",
        )
