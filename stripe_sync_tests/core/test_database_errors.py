"""Every database the pipeline talks to says the same sentence when it does not answer, and
its drivers' own errors are classified once: retried when the server is away or busy, refused
with what to fix otherwise."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from stripe_sync.core.database_errors import DatabaseAt, classify_redis, classify_sql
from stripe_sync.core.errors import ErrorKind
from stripe_sync_tests.conftest import free_port


def at(url: str) -> DatabaseAt:
    return DatabaseAt("throttle", "STRIPE_SYNC_THROTTLE_URL", make_url(url))


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
def test_a_server_that_refuses_the_connection_is_unreachable_and_retried(scheme):
    port = free_port()
    url = f"{scheme}://user:hunter2@127.0.0.1:{port}/0"
    with pytest.raises(Exception) as raised:
        if scheme == "postgresql":
            psycopg.connect(url, connect_timeout=2)
        else:
            redis.Redis.from_url(url, retry=None).ping()

    classify = classify_sql if scheme == "postgresql" else classify_redis
    failure = classify(raised.value, at(url))

    assert failure.kind is ErrorKind.RETRYABLE
    assert str(failure).startswith(f"Cannot reach the throttle database at 127.0.0.1:{port} (")
    assert str(failure).endswith("check STRIPE_SYNC_THROTTLE_URL and that the database is running.")
    assert "hunter2" not in str(failure)


def test_a_missing_postgres_database_is_refused_with_what_to_fix(postgres_url):
    url = make_url(postgres_url).set(database="stripe_sync_no_such_database")
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(url.render_as_string(hide_password=False).replace("+psycopg", ""))

    failure = classify_sql(raised.value, at(url.render_as_string(hide_password=False)))

    assert failure.kind is ErrorKind.FATAL
    assert "fix the database or user name in the URL" in str(failure)


def test_a_locked_sqlite_file_is_waited_for_and_a_broken_statement_is_not(tmp_path):
    path = tmp_path / "throttle.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as broken:
        other.execute("SELECT * FROM no_such_table")

    assert classify_sql(locked.value, at(f"sqlite:///{path}")).kind is ErrorKind.RETRYABLE
    assert classify_sql(broken.value, at(f"sqlite:///{path}")).kind is ErrorKind.FATAL


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis.exceptions.BusyLoadingError("Redis is loading the dataset"), ErrorKind.RETRYABLE),
        (redis.exceptions.ReadOnlyError("You can't write against a replica"), ErrorKind.RETRYABLE),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), ErrorKind.RETRYABLE),
        (redis.exceptions.AuthenticationError("invalid password"), ErrorKind.FATAL),
        (redis.exceptions.NoPermissionError("NOPERM no permissions"), ErrorKind.FATAL),
        (redis.exceptions.ResponseError("ERR unknown command"), ErrorKind.FATAL),
    ],
)
def test_redis_answers_are_retried_only_while_the_server_is_away_or_failing_over(error, kind):
    assert classify_redis(error, at("redis://127.0.0.1:6379/0")).kind is kind
