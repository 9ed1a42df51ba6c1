"""The reservation in SQL, written once for SQLite and PostgreSQL.

Tables: <prefix>state (namespace, level, penalty_at), <prefix>endpoint (namespace,
endpoint, tat) and <prefix>slot (namespace, t), the booked global starts. A reservation
is two round trips: lock the namespace's row and read everything, then write everything
and commit. PostgreSQL sends each as one pipeline, so the row lock is held briefly even
across a network; SQLite runs the same statements in its `BEGIN IMMEDIATE` write lock.
The dialects differ only in the attributes below (placeholder, clock, row lock, DDL).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from stripe_sync.core.database_errors import DatabaseAt, classify_sql
from stripe_sync.core.throttle.policy import (
    Policy,
    Reservation,
    book,
    gaps,
    multiplier,
    penalized,
    retention,
)

MAX_CONNECTIONS = 4  # a process's connections to the store
T = TypeVar("T")


class _Stale(Exception):
    """A pooled connection failed: the server closed it while it waited."""


class SqlStore:
    param = "?"
    prefix = "throttle_"
    clock = ""  # an SQL expression: the store's clock in epoch seconds
    begin: str | None = None  # the statement that opens a transaction, if one is needed
    lock_row = ""  # appended to the SELECT of the namespace's state row
    real = "REAL"  # the column type of timestamps and levels
    driver_errors: tuple[type[BaseException], ...] = ()  # what the driver raises

    def __init__(self, at: DatabaseAt) -> None:
        self.at = at
        self._free: list[Any] = []  # open connections no thread is using
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        self._pid = os.getpid()
        # Reservations take turns on the namespace's row lock (SQLite: its write lock), so
        # more connections would only wait; one per thread would hold dozens open.
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    # --- per dialect
    def _connect(self) -> Any:
        raise NotImplementedError

    def _pipeline(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    # --- shared
    def _create_tables(self, cur: Any) -> None:
        real = self.real
        for ddl in (
            (
                f"CREATE TABLE IF NOT EXISTS {{p}}state (namespace TEXT PRIMARY KEY,"
                f" level {real} NOT NULL, penalty_at {real} NOT NULL)"
            ),
            (
                f"CREATE TABLE IF NOT EXISTS {{p}}endpoint (namespace TEXT NOT NULL,"
                f" endpoint TEXT NOT NULL, tat {real} NOT NULL, PRIMARY KEY (namespace, endpoint))"
            ),
            f"CREATE TABLE IF NOT EXISTS {{p}}slot (namespace TEXT NOT NULL, t {real} NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {p}slot_namespace_t ON {p}slot (namespace, t)",
        ):
            cur.execute(self._q(ddl))

    @staticmethod
    def _cursor(conn: Any) -> contextlib.closing[Any]:
        return contextlib.closing(conn.cursor())  # sqlite3 cursors are no context managers

    @contextlib.contextmanager
    def _borrowed(self, *, fresh: bool) -> Iterator[tuple[Any, bool]]:
        """A connection of this process's few, for one transaction, and whether it was used
        before (`fresh`: a new one); a broken one (its rollback failed) is dropped."""
        with self._slots:
            with self._all_lock:
                if self._pid != os.getpid():  # a forked child: its parent's are not its own
                    self._free, self._all, self._pid = [], [], os.getpid()
                conn = self._free.pop() if self._free and not fresh else None
            reused = conn is not None
            if conn is None:
                conn = self._connect()
                with self._all_lock:
                    self._all.append(conn)
            keep = True
            try:
                yield conn, reused
            except BaseException:
                try:
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the connection is gone: drop it
                    keep = False
                raise
            finally:
                with self._all_lock:
                    if keep:
                        self._free.append(conn)
                    else:
                        self._all.remove(conn)
                        with contextlib.suppress(Exception):
                            conn.close()

    def _drop_idle(self) -> None:
        """Close the connections no thread is using: the server closed them too (a failover, a
        pooler's idle timeout), as one of them just showed."""
        with self._all_lock:
            idle, self._free = self._free, []
            for conn in idle:
                self._all.remove(conn)
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()

    def _q(self, sql: str) -> str:
        return sql.replace("{p}", self.prefix).replace("{now}", self.clock).replace("?", self.param)

    def _lock_state(self, conn: Any, cur: Any, namespace: str) -> None:
        """Open the transaction and lock the namespace's state row (created if new); its
        (level, penalty_at, now) is `cur`'s one row."""
        if self.begin:
            conn.execute(self.begin)
        conn.execute(
            self._q(
                "INSERT INTO {p}state (namespace, level, penalty_at) VALUES (?, 1.0, 0.0)"
                " ON CONFLICT (namespace) DO NOTHING"
            ),
            (namespace,),
        )
        cur.execute(
            self._q(
                f"SELECT level, penalty_at, {{now}} FROM {{p}}state WHERE namespace = ?"
                f"{self.lock_row}"
            ),
            (namespace,),
        )

    def _transaction(self, body: Callable[[Any], T]) -> T:
        """`body(conn)` in one transaction, committed; the driver's errors classified. A
        connection that failed after waiting in the pool is replaced at once, and the idle
        ones with it, as SQLAlchemy's pre-ping does for the catalog: only a new connection's
        failure is an outage for the retry policy to wait out. (Done twice, a reservation
        books two starts: the budget is spent more slowly, never overrun.)"""

        def attempt(*, fresh: bool) -> T:
            with self._borrowed(fresh=fresh) as (conn, reused):
                try:
                    result = body(conn)
                    conn.commit()
                    return result
                except self.driver_errors as error:
                    if reused and classify_sql(error, self.at).retryable:
                        raise _Stale from error
                    raise

        try:
            try:
                return attempt(fresh=False)
            except _Stale:
                self._drop_idle()
                return attempt(fresh=True)
        except self.driver_errors as error:
            raise classify_sql(error, self.at) from None

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        # Every booked start book() could need, whatever the share: 2 gaps at the floor.
        lookback = retention(gaps(policy, policy.floor)[0])

        def body(conn: Any) -> Reservation:
            with (
                self._pipeline(conn),
                self._cursor(conn) as state,
                self._cursor(conn) as ep,
                self._cursor(conn) as slots,
            ):
                self._lock_state(conn, state, namespace)
                # These run after the lock is granted (READ COMMITTED: each sees what's
                # committed before it).
                ep.execute(
                    self._q("SELECT tat FROM {p}endpoint WHERE namespace = ? AND endpoint = ?"),
                    (namespace, endpoint),
                )
                slots.execute(
                    self._q(
                        "SELECT t FROM {p}slot WHERE namespace = ? AND t > {now} - ? ORDER BY t"
                    ),
                    (namespace, lookback),
                )
                level, at, now = state.fetchone()
                tat_row = ep.fetchone()
                booked = [row[0] for row in slots.fetchall()]
            global_gap, endpoint_gap = gaps(policy, multiplier(level, at, now, policy))
            start = book(now, tat_row[0] if tat_row else 0.0, booked, global_gap)
            with self._pipeline(conn), self._cursor(conn) as cur:
                cur.execute(
                    self._q("INSERT INTO {p}slot (namespace, t) VALUES (?, ?)"), (namespace, start)
                )
                cur.execute(
                    self._q(
                        "INSERT INTO {p}endpoint (namespace, endpoint, tat) VALUES (?, ?, ?)"
                        " ON CONFLICT (namespace, endpoint) DO UPDATE SET tat = excluded.tat"
                    ),
                    (namespace, endpoint, start + endpoint_gap),
                )
                cur.execute(
                    self._q("DELETE FROM {p}slot WHERE namespace = ? AND t < ?"),
                    (namespace, now - retention(global_gap)),
                )
            return Reservation(now, start)

        return self._transaction(body)

    def _locked_state(self, conn: Any, namespace: str) -> tuple[float, float, float]:
        with self._cursor(conn) as cur:
            self._lock_state(conn, cur, namespace)
            return cur.fetchone()

    def penalize(self, namespace: str, policy: Policy) -> None:
        def body(conn: Any) -> None:
            level, at, now = self._locked_state(conn, namespace)
            new_level, new_at = penalized(level, at, now, policy)
            if (new_level, new_at) != (level, at):
                conn.execute(
                    self._q("UPDATE {p}state SET level = ?, penalty_at = ? WHERE namespace = ?"),
                    (new_level, new_at, namespace),
                )

        self._transaction(body)

    def share(self, namespace: str, policy: Policy) -> float:
        def body(conn: Any) -> float:
            level, at, now = self._locked_state(conn, namespace)
            return multiplier(level, at, now, policy)

        return self._transaction(body)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(Exception):  # another thread's, maybe broken
                    conn.close()
            self._all.clear()
            self._free.clear()
