"""What a database's error means, decided once for every database the pipeline talks to: the
catalog's and the state's (PostgreSQL or SQLite, through SQLAlchemy) and the throttle's store
(PostgreSQL, SQLite or Redis, through their drivers).

Retried: a connection refused, reset or closed by the server, PostgreSQL's failover and
shutdown codes (57P01-57P03), too many connections, serialization failures and deadlocks, a
statement cancelled by `statement_timeout`, SQLite's "database is locked", Redis loading its
data or answering as a read-only replica (a failover). Not retried, and said in one sentence
with what to fix: permission denied, a missing table, column or function, bad SQL, a wrong
password, any other refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import URL

from stripe_sync.core.errors import CatalogFailure, ErrorKind
from stripe_sync.core.secrets import redact

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


@dataclass(frozen=True)
class DatabaseAt:
    """A database as sentences name it: what it is to the pipeline (`name`: "catalog",
    "state", "throttle"), the setting that holds its URL, and the URL (never shown whole)."""

    name: str
    setting: str
    url: URL

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_redis(self) -> bool:
        return self.url.get_backend_name() in ("redis", "rediss", "unix")

    @property
    def location(self) -> str:
        """Which database, e.g. "PostgreSQL 127.0.0.1:5432/cms"; never a password."""
        if self.is_sqlite:
            return f"SQLite {self.url.database or ':memory:'}"
        if self.is_redis:
            return f"Redis {self.address}"
        return f"PostgreSQL {self.address}/{self.url.database}"

    @property
    def address(self) -> str:
        if self.is_sqlite or self.url.get_backend_name() == "unix":
            return self.url.database or ":memory:"
        default_port = 6379 if self.is_redis else 5432
        return f"{self.url.host or 'localhost'}:{self.url.port or default_port}"

    def reason(self, error: BaseException) -> str:
        """The first line of a driver's message, without the password."""
        text = str(error).strip()
        return redact(text.splitlines()[0] if text else type(error).__name__, self.url.password)

    def unreachable(self, reason: str) -> CatalogFailure:
        """The database does not answer: retried, and said the same way for every database."""
        return CatalogFailure(
            ErrorKind.RETRYABLE,
            f"Cannot reach the {self.name} database at {self.address} ({reason}): check "
            f"{self.setting} and that the database is running.",
        )


def classify_sql(error: BaseException, at: DatabaseAt) -> CatalogFailure:
    """What a PostgreSQL (psycopg) or SQLite (sqlite3) driver's error means."""
    reason = at.reason(error)
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return CatalogFailure(
            ErrorKind.RETRYABLE,
            f"{at.location} answered with {RETRYABLE_SQLSTATES[sqlstate]} ({reason})",
        )
    if sqlstate is not None and not sqlstate.startswith("08"):
        hint = FATAL_HINTS.get(sqlstate, f"check {at.setting} and the database")
        return CatalogFailure(ErrorKind.FATAL, f"{at.location} refused: {reason}: {hint}.")
    if at.is_sqlite and not ("locked" in reason or "busy" in reason):
        return CatalogFailure(ErrorKind.FATAL, f"{at.location} refused: {reason}.")
    # Refusals at connect time come without an SQLSTATE: a wrong URL, not an outage.
    for words, hint in _CONNECT_REFUSALS.items():
        if words in reason:
            return CatalogFailure(
                ErrorKind.FATAL, f"{at.location} refused the connection: {reason}: {hint}."
            )
    # Connection refused, reset, closed by the server, a timeout: the database is away.
    return at.unreachable(reason)


def classify_redis(error: BaseException, at: DatabaseAt) -> CatalogFailure:
    """What a Redis (redis-py) error means."""
    from redis import exceptions

    reason = at.reason(error)
    if isinstance(error, exceptions.AuthenticationError | exceptions.NoPermissionError):
        return CatalogFailure(
            ErrorKind.FATAL,
            f"{at.location} refused: {reason}: fix the user or password in {at.setting}.",
        )
    if isinstance(error, exceptions.ReadOnlyError | exceptions.TryAgainError):
        return CatalogFailure(
            ErrorKind.RETRYABLE, f"{at.location} answered as a replica ({reason})"
        )
    if isinstance(error, exceptions.ConnectionError | exceptions.TimeoutError):
        return at.unreachable(reason)  # BusyLoadingError too: a restart reading its data
    return CatalogFailure(ErrorKind.FATAL, f"{at.location} refused: {reason}.")
