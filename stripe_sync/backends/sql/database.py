"""A PostgreSQL or SQLite database reached through SQLAlchemy, with its failures classified
(`stripe_sync.core.database_errors`) and retried: the catalog's (`catalog.py`) and the
state's (`state.py`). A call is a whole unit (a page read, a transaction): retried from its
start, so a retry never sees half of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from stripe_sync.core.database_errors import DatabaseAt, classify_sql
from stripe_sync.core.errors import CatalogError, CatalogFailure, ErrorKind
from stripe_sync.core.retry import (
    CALL_TIMEOUT_S,
    NO_RETRY,
    RetryPolicy,
    RetryStats,
    call_with_retries,
)

T = TypeVar("T")
# Ids per statement that reads or writes rows by id (SQLite binds at most 32,766 parameters).
IDS_PER_QUERY = 2_000


def engine_url(url: str, *, setting: str = "CATALOG_DATABASE_URL") -> URL:
    """`url` with the psycopg 3 driver for postgresql:// and postgres:// URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except (ValueError, sa.exc.ArgumentError):
        raise CatalogError(f"{setting} is not a database URL: fix it.") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise CatalogError(f"{setting} must start with postgresql://, postgres:// or sqlite:///.")
    return parsed


class Database:
    """One database: an engine, and `call` to run a unit of work on it with retries."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        setting: str,
        timeout_s: float = CALL_TIMEOUT_S,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
    ):
        self.url = engine_url(url, setting=setting)
        self.at = DatabaseAt(name, setting, self.url)  # "catalog" or "state", as sentences say
        self.retry = retry
        self.stats = stats if stats is not None else RetryStats()
        connect_args = (
            {}
            if self.at.is_sqlite
            else {
                "connect_timeout": max(1, round(timeout_s)),
                "options": f"-c statement_timeout={round(timeout_s * 1000)}",
            }
        )
        # pool_pre_ping: a connection the server closed (a failover) is replaced, not used.
        self.engine = sa.create_engine(self.url, connect_args=connect_args, pool_pre_ping=True)

    @property
    def is_sqlite(self) -> bool:
        return self.at.is_sqlite

    def location(self) -> str:
        return self.at.location

    def call(self, work: Callable[[], T]) -> T:
        """`work()`, its database errors classified, retried as a whole while retryable."""

        def classified() -> T:
            try:
                return work()
            except sa.exc.DBAPIError as error:
                raise self.classify(error) from None
            except sa.exc.TimeoutError:  # every pooled connection busy: a moment's wait
                raise CatalogFailure(
                    ErrorKind.RETRYABLE, f"no free connection to {self.location()} in time"
                ) from None

        return call_with_retries(classified, self.retry, stats=self.stats)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        if self.is_sqlite and not self._sqlite_file_exists():
            raise CatalogError(
                f"The SQLite {self.at.name} file {self.url.database} does not exist: set "
                f"{self.at.setting} to an existing sqlite:/// file."
            )
        with self.engine.connect() as connection:
            yield connection

    def classify(self, error: sa.exc.DBAPIError) -> CatalogFailure:
        """What a database error means (`classify_sql`, for the driver's own error)."""
        return classify_sql(error.orig, self.at)

    def _sqlite_file_exists(self) -> bool:
        database = self.url.database
        return not database or database == ":memory:" or Path(database).exists()

    def dispose(self) -> None:
        self.engine.dispose()
