"""What the pipeline knows between runs, kept in a database: the contract `core/` needs.

Per catalog row, a state row holds its sync state (the values of the write-back columns:
Stripe ids, status, error, synced_at, per-field hashes) and its checkpoint (what the pipeline
last made of it in Stripe, with the values sent; see `core/checkpoints.py`). Beside them: the
outcome ledger of each batch's latest run, the backups taken before each run wrote, and the
batch frames between the steps of a run. `stripe_sync.backends` implements `StateStore` on
PostgreSQL and SQLite (SQLAlchemy) and on Supabase (PostgREST).

`record` writes a batch's sync state, its checkpoints and, where the catalog has write-back
columns, the write-back, in one transaction when they share a database, so they never
disagree. A catalog without write-back columns is left untouched: `TrackedCatalog` hands its
rows over with the sync state from here instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from stripe_sync.core.backups import Backup
from stripe_sync.core.batches import Registration, registration
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WRITE_BACK_COLUMNS, Catalog, WriteBack, with_prices
from stripe_sync.core.retry import RetryStats

STATE_READ_PAGE = 1_000  # rows whose sync state one read fetches
# batch -> catalog id -> the new checkpoint (None: forget it)
CheckpointChanges = Mapping[str, Mapping[str, Checkpoint | None]]


class StateStore(Protocol):
    def describe(self) -> str:
        """Where the state is, e.g. "table stripe_sync_state in PostgreSQL 127.0.0.1:5432/cms";
        never a password or key."""

    def check(self) -> None:
        """Raise CatalogError when the state can't be read (unreachable, not installed)."""

    # --- per catalog row
    def checkpoints(self, batch: str) -> dict[str, Checkpoint]:
        """The checkpoints of a batch's rows (rows deleted from the catalog included)."""

    def sync_states(self, cms_ids: Sequence[str]) -> dict[str, WriteBack]:
        """The stored sync state of these rows (those that have one)."""

    def record(
        self,
        write_backs: Sequence[WriteBack],
        checkpoints: CheckpointChanges | None = None,
        *,
        batch_of: Mapping[str, str] | None = None,
    ) -> int:
        """Store the rows' sync state and the checkpoint changes and write the rows back to
        the catalog (when it has write-back columns), atomically where they share a
        database; returns the requests or statements made. `batch_of` names the batch of
        rows that have none yet; a row's batch never changes."""

    def write_back(self, write_backs: Sequence[WriteBack]) -> int:
        """`record` without checkpoint changes: a `CatalogWriter`."""

    def forget(self, batch: str, cms_ids: Sequence[str]) -> None:
        """The next run reconciles these rows with Stripe instead of trusting their hash."""

    def forget_all(self) -> int:
        """Forget every checkpoint; returns how many rows had one."""

    def assign(self, members: Mapping[str, str]) -> None:
        """Put each row into its batch (cms id -> batch key); a row that has a batch keeps it."""

    def members(self, batch: str) -> list[str]:
        """The ids of a batch's rows (rows deleted from the catalog included)."""

    def memberships(self) -> dict[str, str]:
        """Every row that has a batch, with its batch."""

    # --- per batch and run
    def save_outcomes(self, step: str, batch: str, record: dict) -> None: ...
    def outcomes(self, step: str, batch: str) -> dict | None: ...
    def save_backup(self, backup: Backup) -> str:
        """Store a backup; returns how to name it ("backup of run … batch …")."""

    def backups(self) -> list[Backup]:
        """Every backup, oldest first."""

    def save_frame(self, asset: str, batch: str, data: bytes) -> None: ...
    def frame(self, asset: str, batch: str) -> bytes | None: ...
    def close(self) -> None: ...


class TrackedCatalog:
    """A catalog whose write-back goes through the state store; a catalog without write-back
    columns gets its rows' sync state from the store, so everything downstream reads rows of
    the same shape."""

    def __init__(self, catalog: Catalog, state: StateStore, retries: RetryStats | None = None):
        self.catalog = catalog
        self.state = state
        self.table = catalog.table
        self.retries = retries if retries is not None else RetryStats()  # catalog and state

    def describe(self) -> str:
        return self.catalog.describe()

    def check(self) -> None:
        self.catalog.check()
        self.state.check()

    @property
    def has_write_back_columns(self) -> bool:
        return self.catalog.has_write_back_columns

    def iter_ids(self, page_size: int = 10_000) -> Iterator[str]:
        return self.catalog.iter_ids(page_size)

    def count_ids(self) -> int:
        return self.catalog.count_ids()

    def read_rows(self, ids: Sequence[str]) -> Iterator[dict]:
        rows = list(self.catalog.read_rows(ids))
        for start in range(0, len(rows), STATE_READ_PAGE):
            yield from self._with_state(rows[start : start + STATE_READ_PAGE])

    def registration(self, registered: Sequence[str], batch_size: int) -> Registration:
        """Which batches the catalog's rows that have none would get (nothing is written)."""
        return registration(self.iter_ids(), self.state.memberships(), registered, batch_size)

    def register(self, registered: Sequence[str], batch_size: int) -> Registration:
        """Give every row without a batch one; returns what it did (the batch keys to
        register, and every row's batch)."""
        planned = self.registration(registered, batch_size)
        if planned.assigned:
            self.state.assign(planned.assigned)
        return planned

    def read_batch(
        self, key: str, members: Sequence[str] | None = None
    ) -> tuple[list[dict], list[dict]]:
        """The rows of a batch that the catalog still holds (each with its `batch` and, with a
        prices model, its `prices`), and the price rows of its deleted rows. `members`: the
        batch's row ids, when the caller knows them (a plan's registration, not written)."""
        ids = self.state.members(key) if members is None else members
        rows = [{"batch": key, **row} for row in self.read_rows(ids)]
        if not self.catalog.prices:
            return rows, []
        return rows, with_prices(rows, self.catalog.read_prices(ids))

    def changed_since(self, after: tuple[str, str] | None, limit: int) -> list[dict]:
        return list(self._with_state(self.catalog.changed_since(after, limit)))

    def write_back(self, results: Sequence[WriteBack]) -> int:
        return self.state.write_back(results)

    def close(self) -> None:
        self.state.close()
        self.catalog.close()

    def _with_state(self, rows: list[dict]) -> Iterator[dict]:
        if self.catalog.has_write_back_columns or not rows:
            yield from rows
            return
        states = self.state.sync_states([row["id"] for row in rows])
        for row in rows:
            state = states.get(row["id"])
            yield row | (state.columns() if state else dict.fromkeys(WRITE_BACK_COLUMNS))
