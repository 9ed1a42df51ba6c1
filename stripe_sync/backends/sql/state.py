"""The state store in PostgreSQL or SQLite, with SQLAlchemy Core.

Four tables, each keyed by a namespace (the catalog table's name, so one database can hold
the state of several catalogs):

- `stripe_sync_state`: one row per catalog row: its sync state (the write-back columns'
  values) and its checkpoint (JSON);
- `stripe_sync_ledger`: per step and batch, the outcomes of its latest run (JSON);
- `stripe_sync_backups`: per run and batch, the backup taken before it wrote (JSON);
- `stripe_sync_frames`: per asset and batch, the batch's frame between the steps of a run
  (compressed pickle).

They are created when missing (a log line says so). When the catalog is in the same
database, `record` writes the catalog's write-back columns in the same transaction
(`SqlCatalog.write_back_in`).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from stripe_sync.backends.rows import checkpoint_of, chunks, write_back_of
from stripe_sync.backends.sql.catalog import SqlCatalog
from stripe_sync.backends.sql.database import IDS_PER_QUERY, Database
from stripe_sync.core.backups import Backup
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WRITE_BACK_COLUMNS, Catalog, WriteBack
from stripe_sync.core.retry import RetryPolicy, RetryStats
from stripe_sync.core.state import CheckpointChanges

log = logging.getLogger(__name__)
T = TypeVar("T")
# The catalog's write-back in a transaction of the state's (`SqlCatalog.write_back_in`).
WriteBackIn = Callable[[Connection, Sequence[WriteBack]], int]

metadata = sa.MetaData()
STATE = sa.Table(
    "stripe_sync_state",
    metadata,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("catalog_id", sa.Text, primary_key=True),
    sa.Column("batch", sa.Text),
    *(sa.Column(column, sa.Text) for column in WRITE_BACK_COLUMNS if column != "synced_at"),
    sa.Column("synced_at", sa.DateTime(timezone=True)),
    sa.Column("checkpoint", sa.Text),  # JSON: what the pipeline last made of the row
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.Index("stripe_sync_state_batch", "namespace", "batch"),
)
LEDGER = sa.Table(
    "stripe_sync_ledger",
    metadata,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("step", sa.Text, primary_key=True),
    sa.Column("batch", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
)
BACKUPS = sa.Table(
    "stripe_sync_backups",
    metadata,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("batch", sa.Text, primary_key=True),
    sa.Column("taken_at", sa.Text, nullable=False),
    sa.Column("backup", sa.Text, nullable=False),
)
FRAMES = sa.Table(
    "stripe_sync_frames",
    metadata,
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("asset", sa.Text, primary_key=True),
    sa.Column("batch", sa.Text, primary_key=True),
    sa.Column("frame", sa.LargeBinary, nullable=False),
)

_created: set[str] = set()  # databases whose tables this process has made sure of
_creating = threading.Lock()


class SqlState:
    """The state of `catalog` (namespace: its table) in `database`: the catalog's own, its
    write-back joining the state's transaction through `write_back_in`, or (`write_back_in`
    None) one of the state's own, which it closes. Opened by `in_catalog_database` or
    `in_own_database`. Every call goes through `Database.call`: classified, retried by the
    database's policy."""

    def __init__(self, database: Database, catalog: Catalog, write_back_in: WriteBackIn | None):
        self.database = database
        self.namespace = catalog.table
        self._catalog = catalog
        self._write_back_in = write_back_in
        self._location = database.location()
        self._insert = (sqlite if database.is_sqlite else postgresql).insert

    @classmethod
    def in_catalog_database(cls, catalog: SqlCatalog) -> SqlState:
        """The state beside `catalog`'s table: on its engine, with its retry policy."""
        return cls(catalog.database, catalog, catalog.write_back_in)

    @classmethod
    def in_own_database(
        cls,
        url: str,
        catalog: Catalog,
        *,
        timeout_s: float,
        retry: RetryPolicy,
        stats: RetryStats | None,
    ) -> SqlState:
        """The state of `catalog` (SQL or Supabase) in the database at `url`."""
        database = Database(
            url,
            name="state",
            setting="STRIPE_SYNC_STATE_URL",
            timeout_s=timeout_s,
            retry=retry,
            stats=stats,
        )
        return cls(database, catalog, None)

    def describe(self) -> str:
        return f"table stripe_sync_state in {self._location}"

    def check(self) -> None:
        self._read(
            lambda connection: connection.execute(sa.select(STATE.c.namespace).limit(1)).all()
        )

    # --- per catalog row -------------------------------------------------------------------

    def checkpoints(self, batch: str) -> dict[str, Checkpoint]:
        query = sa.select(STATE.c.catalog_id, STATE.c.checkpoint).where(
            STATE.c.namespace == self.namespace,
            STATE.c.batch == batch,
            STATE.c.checkpoint.is_not(None),
        )
        return self._read(
            lambda connection: {
                cms_id: checkpoint_of(text) for cms_id, text in connection.execute(query)
            }
        )

    def sync_states(self, cms_ids: Sequence[str]) -> dict[str, WriteBack]:
        columns = [STATE.c.catalog_id, *(STATE.c[column] for column in WRITE_BACK_COLUMNS)]
        found: dict[str, WriteBack] = {}
        for chunk in chunks(list(cms_ids), IDS_PER_QUERY):
            query = sa.select(*columns).where(
                STATE.c.namespace == self.namespace, STATE.c.catalog_id.in_(chunk)
            )
            rows = self._read(lambda connection, q=query: connection.execute(q).all())
            found |= {row[0]: write_back_of(row[0], dict(row._mapping)) for row in rows}
        return found

    def record(
        self,
        write_backs: Sequence[WriteBack],
        checkpoints: CheckpointChanges | None = None,
        *,
        batch_of: Mapping[str, str] | None = None,
    ) -> int:
        batch_of = batch_of or {}
        write_back = bool(write_backs) and self._catalog.has_write_back_columns

        def transaction(connection: Connection) -> int:
            statements = 0
            if write_back and self._write_back_in is not None:
                statements += self._write_back_in(connection, write_backs)
            statements += self._upsert_sync_states(connection, write_backs, batch_of)
            return statements + self._upsert_checkpoints(connection, checkpoints or {})

        # Upserts and an UPDATE to the same values: a retried transaction is harmless.
        statements = self._write(transaction)
        # A catalog in another database: written after the state, which the next plan trusts.
        if write_back and self._write_back_in is None:
            statements += self._catalog.write_back(write_backs)
        return statements

    def write_back(self, write_backs: Sequence[WriteBack]) -> int:
        return self.record(write_backs)

    def forget(self, batch: str, cms_ids: Sequence[str]) -> None:
        self.record([], {batch: dict.fromkeys(cms_ids)})

    def forget_all(self) -> int:
        update = (
            sa.update(STATE)
            .where(STATE.c.namespace == self.namespace, STATE.c.checkpoint.is_not(None))
            .values(checkpoint=None, updated_at=_now())
        )
        return self._write(lambda connection: connection.execute(update).rowcount)

    def assign(self, members: Mapping[str, str]) -> None:
        for chunk in chunks(list(members), IDS_PER_QUERY):  # a million rows at once take GBs
            rows = [
                {
                    "namespace": self.namespace,
                    "catalog_id": cms_id,
                    "batch": members[cms_id],
                    "updated_at": _now(),
                }
                for cms_id in chunk
            ]
            self._write(lambda connection, rows=rows: self._upsert(connection, rows, []))

    def members(self, batch: str) -> list[str]:
        query = (
            sa.select(STATE.c.catalog_id)
            .where(STATE.c.namespace == self.namespace, STATE.c.batch == batch)
            .order_by(STATE.c.catalog_id)
        )
        return self._read(lambda connection: list(connection.execute(query).scalars()))

    def memberships(self) -> dict[str, str]:
        query = sa.select(STATE.c.catalog_id, STATE.c.batch).where(
            STATE.c.namespace == self.namespace, STATE.c.batch.is_not(None)
        )
        # Streamed, each batch key one string: a million rows' memberships stay ~100 MB.
        return self._read(
            lambda connection: {
                cms_id: sys.intern(batch)
                for cms_id, batch in connection.execution_options(yield_per=10_000).execute(query)
            }
        )

    # --- per batch and run -----------------------------------------------------------------

    def save_outcomes(self, step: str, batch: str, record: dict) -> None:
        self._put(
            LEDGER,
            {"step": step, "batch": batch},
            {"run_id": record["run_id"], "record": _json(record)},
        )

    def outcomes(self, step: str, batch: str) -> dict | None:
        text = self._get(LEDGER.c.record, step=step, batch=batch)
        return None if text is None else json.loads(text)

    def save_backup(self, backup: Backup) -> str:
        self._put(
            BACKUPS,
            {"run_id": backup.run_id, "batch": backup.batch},
            {"taken_at": backup.taken_at, "backup": _json(asdict(backup))},
        )
        return f"backup of run {backup.run_id}, batch {backup.batch} ({self.describe()})"

    def backups(self) -> list[Backup]:
        query = (
            sa.select(BACKUPS.c.backup)
            .where(BACKUPS.c.namespace == self.namespace)
            .order_by(BACKUPS.c.taken_at, BACKUPS.c.batch)
        )
        texts = self._read(lambda connection: list(connection.execute(query).scalars()))
        return [Backup(**json.loads(text)) for text in texts]

    def save_frame(self, asset: str, batch: str, data: bytes) -> None:
        self._put(FRAMES, {"asset": asset, "batch": batch}, {"frame": data})

    def frame(self, asset: str, batch: str) -> bytes | None:
        return self._get(FRAMES.c.frame, asset=asset, batch=batch)

    def close(self) -> None:
        if self._write_back_in is None:  # its own database; else the catalog's
            self.database.dispose()

    # --- helpers ---------------------------------------------------------------------------

    def _upsert_sync_states(
        self, connection: Connection, write_backs: Sequence[WriteBack], batch_of: Mapping
    ) -> int:
        rows = [
            {
                "namespace": self.namespace,
                "catalog_id": result.id,
                "batch": batch_of.get(result.id),
                **result.columns(),
                "updated_at": _now(),
            }
            for result in write_backs
        ]
        return self._upsert(connection, rows, [*WRITE_BACK_COLUMNS, "updated_at"])

    def _upsert_checkpoints(self, connection: Connection, changes: CheckpointChanges) -> int:
        rows = [
            {
                "namespace": self.namespace,
                "catalog_id": cms_id,
                "batch": batch,
                "checkpoint": None if checkpoint is None else _json(asdict(checkpoint)),
                "updated_at": _now(),
            }
            for batch, batch_changes in changes.items()
            for cms_id, checkpoint in batch_changes.items()
        ]
        return self._upsert(connection, rows, ["checkpoint", "updated_at"])

    def _upsert(self, connection: Connection, rows: list[dict], columns: list[str]) -> int:
        """Insert the state rows, or set `columns` of those that exist (and the batch of those
        that have none: a row never changes batch), never the other columns."""
        insert = self._insert(STATE)
        upsert = insert.on_conflict_do_update(
            index_elements=[STATE.c.namespace, STATE.c.catalog_id],
            set_={
                **{column: insert.excluded[column] for column in columns},
                "batch": sa.func.coalesce(STATE.c.batch, insert.excluded.batch),
            },
        )
        if not rows:
            return 0
        # One statement, its rows as parameter sets (compiled once; a VALUES list of 400 rows
        # takes SQLAlchemy 50 ms to compile, this 7 ms in all).
        connection.execute(upsert, rows)
        return 1

    def _put(self, table: sa.Table, key: dict, values: dict) -> None:
        insert = self._insert(table).values(namespace=self.namespace, **key, **values)
        statement = insert.on_conflict_do_update(
            index_elements=[column for column in table.primary_key.columns],
            set_={column: insert.excluded[column] for column in values},
        )
        self._write(lambda connection: connection.execute(statement))

    def _get(self, column: sa.Column, **key: str):
        table = column.table
        query = sa.select(column).where(
            table.c.namespace == self.namespace,
            *(table.c[name] == value for name, value in key.items()),
        )
        return self._read(lambda connection: connection.execute(query).scalar_one_or_none())

    def _read(self, read: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            self._create_tables()
            with self.database.connect() as connection:
                return read(connection)

        return self.database.call(attempt)

    def _write(self, write: Callable[[Connection], T]) -> T:
        """`write(connection)` in one transaction, retried as a whole."""

        def attempt() -> T:
            self._create_tables()
            with self.database.connect() as connection, connection.begin():
                return write(connection)

        return self.database.call(attempt)

    def _create_tables(self) -> None:
        """Made on first use, so a catalog that can't be reached is named as the catalog by
        its own check first."""
        key = self.database.url.render_as_string(hide_password=False)
        with _creating:
            if key in _created:
                return
            with self.database.connect() as connection, connection.begin():
                if connection.dialect.name == "postgresql":
                    # One creator at a time: concurrent CREATE TABLE IF NOT EXISTS collide.
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(hashtext('stripe_sync_state'))")
                    )
                existing = set(sa.inspect(connection).get_table_names())
                missing = [table for table in metadata.sorted_tables if table.name not in existing]
                if missing:
                    metadata.create_all(connection, tables=missing)
                    if connection.dialect.name == "postgresql":
                        _shut_out_api_roles(connection, missing)
                    log.info(
                        "created the tables %s in %s for the pipeline's state",
                        ", ".join(table.name for table in missing),
                        self._location,
                    )
            _created.add(key)


def _shut_out_api_roles(connection: Connection, tables: list[sa.Table]) -> None:
    """On a Supabase database reached directly, new tables in `public` are open to its API
    roles: row level security on, with no policy, and their grants revoked, as the migration
    does (only the pipeline's own role reaches the state)."""
    roles = (
        connection.execute(
            sa.text("SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated')")
        )
        .scalars()
        .all()
    )
    for table in tables:
        name = connection.dialect.identifier_preparer.quote(table.name)
        connection.execute(sa.text(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"))
        for role in roles:
            connection.execute(sa.text(f"REVOKE ALL ON TABLE {name} FROM {role}"))


def _json(value: object) -> str:
    return json.dumps(value, default=str)


def _now() -> datetime:
    return datetime.now(UTC)
