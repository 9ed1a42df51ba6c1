"""A SQLite file: every process on one machine; time.time() is the one clock."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from pathlib import Path

from stripe_sync.core.database_errors import DatabaseAt
from stripe_sync.core.errors import CatalogFailure
from stripe_sync.core.throttle.stores.sql import SqlStore

log = logging.getLogger(__name__)


class SqliteStore(SqlStore):
    uses_local_clock = True
    clock = "stripe_sync_now()"  # time.time(), read under the write lock: bookings in clock order
    begin = "BEGIN IMMEDIATE"  # the database's write lock, until COMMIT
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: str, at: DatabaseAt):
        super().__init__(at)
        if not path or path == ":memory:":
            raise ValueError("a SQLite throttle store must be a file every process can open")
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def set_up(self) -> None:
        try:
            self._transaction(self._create)
        except CatalogFailure as failure:
            if failure.retryable:  # locked by another process: the caller waits
                raise
            # Only numbers a few seconds old live here: a damaged file is started afresh.
            log.warning(
                "the throttle file %s is unreadable (%s): starting a new one", self.path, failure
            )
            self.close()
            for damaged in (self.path, f"{self.path}-wal", f"{self.path}-shm"):
                Path(damaged).unlink(missing_ok=True)
            self._transaction(self._create)

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(self.begin)
        with contextlib.closing(conn.cursor()) as cur:
            self._create_tables(cur)

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode, so `begin` is the only transaction control.
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.create_function("stripe_sync_now", 0, time.time)
        conn.execute("PRAGMA busy_timeout = 60000")
        # WAL without an fsync per commit: still never corrupt, and a throttle's state
        # is worth nothing after a power cut anyway.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn
