"""The state store in a Supabase project, through PostgREST: the tables of
`supabase/migrations/20261203000000_stripe_sync_state.sql` (the same as `sql/state.py`
creates), read with filters in keyset pages to their end whatever the project's row cap
(`keyset_pages`), and written with upserts; the write-back and the state of a batch go in one
RPC request, `stripe_sync_record`, one transaction in the database. Its requests go through
the catalog's project (`SupabaseProject`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict

from postgrest.types import ReturnMethod

from stripe_sync.backends.rows import checkpoint_of, chunks, write_back_of
from stripe_sync.backends.supabase.catalog import SupabaseCatalog
from stripe_sync.backends.supabase.pages import PAGE_SIZE, id_chunks, keyset_pages, listed, quoted
from stripe_sync.core.backups import Backup
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WriteBack
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.state import CheckpointChanges

STATE_MIGRATION = "supabase/migrations/20261203000000_stripe_sync_state.sql"
ROWS_PER_REQUEST = 1_000  # ids or rows in the JSON body of one request


class SupabaseState:
    """The state of `catalog` (namespace: its table) in its Supabase project."""

    def __init__(self, catalog: SupabaseCatalog):
        self._catalog = catalog
        self._project = catalog.project
        self.namespace = catalog.table

    def describe(self) -> str:
        return f"table stripe_sync_state in {self._project.location}"

    def check(self) -> None:
        """A CatalogError naming the migration when the state tables or functions are missing."""
        try:
            self._rpc("stripe_sync_batch_keys", state_namespace=self.namespace)
        except CatalogError as error:
            raise CatalogError(
                f"The pipeline's state is not installed in Supabase ({error}): apply "
                f"{STATE_MIGRATION}."
            ) from None

    # --- per catalog row -------------------------------------------------------------------

    def checkpoints(self, batch: str) -> dict[str, Checkpoint]:
        rows = self._rows(
            "stripe_sync_state",
            "catalog_id,checkpoint",
            ("catalog_id",),
            lambda query: query.eq("batch", batch).not_.is_("checkpoint", "null"),
        )
        return {row["catalog_id"]: checkpoint_of(row["checkpoint"]) for row in rows}

    def sync_states(self, cms_ids: Sequence[str]) -> dict[str, WriteBack]:
        found: dict[str, WriteBack] = {}
        # A function's one JSON value: no row cap cuts it.
        for chunk in chunks(cms_ids, ROWS_PER_REQUEST):
            rows = self._rpc(
                "stripe_sync_sync_states", state_namespace=self.namespace, ids=list(chunk)
            )
            found |= {row["catalog_id"]: write_back_of(row["catalog_id"], row) for row in rows}
        return found

    def record(
        self,
        write_backs: Sequence[WriteBack],
        checkpoints: CheckpointChanges | None = None,
        *,
        batch_of: Mapping[str, str] | None = None,
    ) -> int:
        batch_of = batch_of or {}
        self._rpc(
            "stripe_sync_record",
            target_table=self._catalog.table,
            state_namespace=self.namespace,
            write_backs=[
                {"id": result.id, "batch": batch_of.get(result.id), **result.columns()}
                for result in write_backs
            ],
            checkpoints=[
                {
                    "id": cms_id,
                    "batch": batch,
                    "checkpoint": None if checkpoint is None else _json(asdict(checkpoint)),
                }
                for batch, changes in (checkpoints or {}).items()
                for cms_id, checkpoint in changes.items()
            ],
            write_back_table=bool(write_backs) and self._catalog.has_write_back_columns,
        )
        return 1

    def write_back(self, write_backs: Sequence[WriteBack]) -> int:
        return self.record(write_backs)

    def forget(self, batch: str, cms_ids: Sequence[str]) -> None:
        self.record([], {batch: dict.fromkeys(cms_ids)})

    def forget_all(self) -> int:
        query = (
            self._table("stripe_sync_state")
            .update({"checkpoint": None}, returning=ReturnMethod.representation)
            .eq("namespace", self.namespace)
            .not_.is_("checkpoint", "null")
        )
        return len(self._execute(query.select("catalog_id")).data)

    def assign(self, members: Mapping[str, str]) -> None:
        rows = [
            {"namespace": self.namespace, "catalog_id": cms_id, "batch": batch}
            for cms_id, batch in members.items()
        ]
        held: dict[str, list[str]] = {}  # batch -> its rows that had a state row already
        for chunk in chunks(rows, ROWS_PER_REQUEST):
            # New state rows; those there already are left as they are. The answer names the
            # rows inserted (a write's answer is never capped).
            insert = (
                self._table("stripe_sync_state")
                .upsert(
                    chunk,
                    on_conflict="namespace,catalog_id",
                    ignore_duplicates=True,
                    returning=ReturnMethod.representation,
                )
                .select("catalog_id")
            )
            inserted = {row["catalog_id"] for row in self._execute(insert).data}
            for row in chunk:
                if row["catalog_id"] not in inserted:
                    held.setdefault(row["batch"], []).append(row["catalog_id"])
        for batch, cms_ids in held.items():
            for ids in id_chunks(cms_ids):  # only a row without a batch gets one
                update = (
                    self._table("stripe_sync_state")
                    .update({"batch": batch}, returning=ReturnMethod.minimal)
                    .eq("namespace", self.namespace)
                    .is_("batch", "null")
                    .filter("catalog_id", "in", listed(ids))
                )
                self._execute(update)

    def members(self, batch: str) -> list[str]:
        rows = self._rows(
            "stripe_sync_state",
            "catalog_id",
            ("catalog_id",),
            lambda query: query.eq("batch", batch),
        )
        return [row["catalog_id"] for row in rows]

    def memberships(self) -> dict[str, str]:
        rows = self._rows(
            "stripe_sync_state",
            "catalog_id,batch",
            ("catalog_id",),
            lambda query: query.not_.is_("batch", "null"),
        )
        return {row["catalog_id"]: sys.intern(row["batch"]) for row in rows}  # one key string

    # --- per batch and run -----------------------------------------------------------------

    def save_outcomes(self, step: str, batch: str, record: dict) -> None:
        self._upsert(
            "stripe_sync_ledger",
            {"step": step, "batch": batch, "run_id": record["run_id"], "record": _json(record)},
            "namespace,step,batch",
        )

    def outcomes(self, step: str, batch: str) -> dict | None:
        query = self._select("stripe_sync_ledger", "record").eq("step", step).eq("batch", batch)
        rows = self._execute(query).data
        return json.loads(rows[0]["record"]) if rows else None

    def save_backup(self, backup: Backup) -> str:
        self._upsert(
            "stripe_sync_backups",
            {
                "run_id": backup.run_id,
                "batch": backup.batch,
                "taken_at": backup.taken_at,
                "backup": _json(asdict(backup)),
            },
            "namespace,run_id,batch",
        )
        return f"backup of run {backup.run_id}, batch {backup.batch} ({self.describe()})"

    def backups(self) -> list[Backup]:
        rows = self._rows("stripe_sync_backups", "run_id,batch,backup", ("run_id", "batch"))
        backups = [Backup(**json.loads(row["backup"])) for row in rows]
        return sorted(backups, key=lambda backup: (backup.taken_at, backup.batch))

    def save_frame(self, asset: str, batch: str, data: bytes) -> None:
        # bytea in PostgREST's JSON is its hex text form.
        self._upsert(
            "stripe_sync_frames",
            {"asset": asset, "batch": batch, "frame": "\\x" + data.hex()},
            "namespace,asset,batch",
        )

    def frame(self, asset: str, batch: str) -> bytes | None:
        query = self._select("stripe_sync_frames", "frame").eq("asset", asset).eq("batch", batch)
        rows = self._execute(query).data
        return bytes.fromhex(rows[0]["frame"].removeprefix("\\x")) if rows else None

    def close(self) -> None:
        pass  # the project is the catalog's

    # --- helpers ---------------------------------------------------------------------------

    def _table(self, name: str):
        return self._project.table(name)

    def _select(self, table: str, columns: str):
        return self._table(table).select(columns).eq("namespace", self.namespace)

    def _rows(self, table: str, columns: str, keys: tuple[str, ...], where=None) -> Iterator[dict]:
        """Every row of `table` in this namespace (narrowed by `where`), keyset-paged on `keys`
        (one or two columns, unique in the namespace; all of them in `columns`)."""

        def read(last: dict | None) -> list[dict]:
            query = self._select(table, columns)
            if where is not None:
                query = where(query)
            if last is not None:
                query = _after(query, keys, [last[key] for key in keys])
            for key in keys:
                query = query.order(key)
            return self._execute(query.limit(PAGE_SIZE)).data

        for page in keyset_pages(read):
            yield from page

    def _upsert(self, table: str, row: dict, on_conflict: str) -> None:
        query = self._table(table).upsert(
            {"namespace": self.namespace, **row},
            on_conflict=on_conflict,
            returning=ReturnMethod.minimal,
        )
        self._execute(query)

    def _rpc(self, function: str, **params: object):
        return self._execute(self._project.rpc(function, json.loads(_json(params)))).data

    def _execute(self, query):
        """`query` sent through the project; a missing table or column is named as the
        catalog table's, as the catalog's own requests name it."""
        return self._project.execute(query, table=self.namespace)


def _after(query, keys: tuple[str, ...], after: list[str]):
    """Rows whose `keys` come after `after`."""
    if len(keys) == 1:
        return query.gt(keys[0], after[0])
    (first, second), (at, last) = keys, map(quoted, after)
    return query.or_(f"{first}.gt.{at},and({first}.eq.{at},{second}.gt.{last})")


def _json(value: object) -> str:
    return json.dumps(value, default=str)
