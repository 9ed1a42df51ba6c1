"""PostgreSQL: every machine; the server's clock, a row lock per namespace."""

from __future__ import annotations

import contextlib
from typing import Any

from stripe_sync.core.throttle.stores.sql import SqlStore


class PostgresStore(SqlStore):
    uses_local_clock = False
    param = "%s"
    prefix = "stripe_sync_throttle_"
    clock = "extract(epoch FROM clock_timestamp())::double precision"
    lock_row = " FOR UPDATE"
    real = "double precision"

    def __init__(self, url: str):
        import psycopg  # noqa: F401 - fail early if missing

        super().__init__()
        self.url = url
        with self._borrowed() as conn:
            with conn.cursor() as cur:
                # Serialize the DDL: concurrent CREATE TABLE IF NOT EXISTS can still collide.
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('stripe_sync_throttle_ddl'))")
                self._create_tables(cur)
            conn.commit()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url)

    def _pipeline(self, conn: Any) -> contextlib.AbstractContextManager[Any]:
        return conn.pipeline()
