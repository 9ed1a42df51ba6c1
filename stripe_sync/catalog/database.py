"""A PostgreSQL or SQLite database reached through SQLAlchemy, with its failures classified
and retried: the catalog's (`sql.py`) and the state's (`stripe_sync.state.sql`).

Retried: a connection refused, reset or closed by the server, PostgreSQL's failover and
shutdown codes (57P01-57P03), too many connections, serialization failures and deadlocks, a
statement cancelled by `statement_timeout`, SQLite's "database is locked". Not retried, and
said in one sentence with what to fix: permission denied, a missing table, column or function,
bad SQL, any other refusal. A call is a whole unit (a page read, a transaction): retried from
its start, so a retry never sees half of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from stripe_sync.core.errors import CatalogError, CatalogFailure, ErrorKind
from stripe_sync.core.retry import RetryPolicy, RetryStats, call_with_retries
from stripe_sync.core.secrets import redact

T = TypeVar("T")
# Ids per statement that reads or writes rows by id (SQLite binds at most 32,766 parameters).
IDS_PER_QUERY = 2_000

RETRYABLE_SQLSTATES = {
    "40001": "a serialization failure",
    "40P01": "a deadlock",
    "53300": "too many connections",
    "55P03": "a lock not available",
    "57014": "a statement timeout",
    "57P01": "the server shutting down (admin_shutdown, e.g. a failover)",
    "57P02": "the server crashing",
    "57P03": "the server starting up",
}
FATAL_HINTS = {
    "42501": "grant the pipeline's database role what it needs on the table",
    "42P01": "create the table or fix its name",
    "42703": "add the column or fix the mapping",
    # A catalog or state reached by SQL calls no function of the migrations: a function or
    # operator missing here is one of `where`, `query` or a value of the wrong type.
    "42883": "no function or operator takes these types: fix the SQL, or compare values of "
    "the column's own type",
    "22P02": "write the value as one of its column's type",
    "42601": "fix the SQL",
    "28P01": "fix the password in the URL",
    "3D000": "create the database or fix its name in the URL",
}
_CONNECT_REFUSALS = {
    "password authentication failed": "fix the user or password in the URL",
    "does not exist": "fix the database or user name in the URL",
    "no pg_hba.conf entry": "allow this host in the server's pg_hba.conf",
}
NO_RETRY = RetryPolicy(attempts=1)


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


def location_of(url: URL) -> str:
    """Which database, e.g. "PostgreSQL 127.0.0.1:5432/cms"; never a password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite {url.database or ':memory:'}"
    return f"PostgreSQL {url.host or 'localhost'}:{url.port or 5432}/{url.database}"


class Database:
    """One database: an engine, and `call` to run a unit of work on it with retries."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        setting: str,
        timeout_s: float = 30.0,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
    ):
        self.url = engine_url(url, setting=setting)
        self.name = name  # "catalog" or "state", as sentences name it
        self.setting = setting
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.retry = retry
        self.stats = stats if stats is not None else RetryStats()
        connect_args = (
            {}
            if self.is_sqlite
            else {
                "connect_timeout": max(1, round(timeout_s)),
                "options": f"-c statement_timeout={round(timeout_s * 1000)}",
            }
        )
        # pool_pre_ping: a connection the server closed (a failover) is replaced, not used.
        self.engine = sa.create_engine(self.url, connect_args=connect_args, pool_pre_ping=True)

    def location(self) -> str:
        return location_of(self.url)

    def call(self, work: Callable[[], T], *, retry: bool = True) -> T:
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

        return call_with_retries(classified, self.retry if retry else NO_RETRY, stats=self.stats)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        if self.is_sqlite and not self._sqlite_file_exists():
            raise CatalogError(
                f"The SQLite {self.name} file {self.url.database} does not exist: set "
                f"{self.setting} to an existing sqlite:/// file."
            )
        with self.engine.connect() as connection:
            yield connection

    def classify(self, error: sa.exc.DBAPIError) -> CatalogFailure:
        """The one place that decides what a database error means."""
        original = error.orig
        text = str(original).strip()
        reason = redact(
            text.splitlines()[0] if text else type(original).__name__, self.url.password
        )
        sqlstate = getattr(original, "sqlstate", None)
        if sqlstate in RETRYABLE_SQLSTATES:
            return CatalogFailure(
                ErrorKind.RETRYABLE,
                f"{self.location()} answered with {RETRYABLE_SQLSTATES[sqlstate]} ({reason})",
            )
        if sqlstate is not None and not sqlstate.startswith("08"):
            hint = FATAL_HINTS.get(sqlstate, f"check {self.setting} and the database")
            return CatalogFailure(ErrorKind.FATAL, f"{self.location()} refused: {reason}: {hint}.")
        if self.is_sqlite and not ("locked" in reason or "busy" in reason):
            return CatalogFailure(ErrorKind.FATAL, f"{self.location()} refused: {reason}.")
        # Refusals at connect time come without an SQLSTATE: a wrong URL, not an outage.
        for words, hint in _CONNECT_REFUSALS.items():
            if words in reason:
                return CatalogFailure(
                    ErrorKind.FATAL, f"{self.location()} refused the connection: {reason}: {hint}."
                )
        # Connection refused, reset, closed by the server, a timeout: the database is away.
        return CatalogFailure(
            ErrorKind.RETRYABLE,
            f"Cannot reach the {self.name} database at {self._address()} ({reason}): check "
            f"{self.setting} "
            "and that the database is running.",
        )

    def _sqlite_file_exists(self) -> bool:
        database = self.url.database
        return not database or database == ":memory:" or Path(database).exists()

    def _address(self) -> str:
        if self.is_sqlite:
            return self.url.database or ":memory:"
        return f"{self.url.host or 'localhost'}:{self.url.port or 5432}"

    def dispose(self) -> None:
        self.engine.dispose()


def chunks(items: Sequence[T], size: int = IDS_PER_QUERY) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`."""
    return (items[at : at + size] for at in range(0, len(items), size))
