"""PostgreSQL: every machine; the server's clock, a row lock per namespace."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from stripe_sync.core.database_errors import DatabaseAt
from stripe_sync.core.retry import CALL_TIMEOUT_S
from stripe_sync.core.throttle.stores.sql import SqlStore


class _LostPipelinesQuietly(logging.Filter):
    """psycopg warns ("error ignored terminating <psycopg.Pipeline [BAD]>") when it cannot
    end a pipeline whose connection was lost while an error is already on its way out; that
    error is the one the throttle classifies and retries, so the warning is only noise: it
    becomes a debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("error ignored terminating"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("psycopg").addFilter(_LostPipelinesQuietly())


class PostgresStore(SqlStore):
    uses_local_clock = False
    param = "%s"
    prefix = "stripe_sync_throttle_"
    clock = "extract(epoch FROM clock_timestamp())::double precision"
    lock_row = " FOR UPDATE"
    real = "double precision"

    def __init__(self, url: str, at: DatabaseAt, *, timeout_s: float = CALL_TIMEOUT_S):
        import psycopg  # on use: a quarter of a second to import, and not every store needs it

        super().__init__(at)
        self.driver_errors = (psycopg.Error,)
        self.url = url
        self.timeout_s = timeout_s

    def set_up(self) -> None:
        def create(conn: Any) -> None:
            with conn.cursor() as cur:
                # Serialize the DDL: concurrent CREATE TABLE IF NOT EXISTS can still collide.
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('stripe_sync_throttle_ddl'))")
                self._create_tables(cur)

        self._transaction(create)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, connect_timeout=max(1, round(self.timeout_s)))

    def _pipeline(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        return conn.pipeline()
