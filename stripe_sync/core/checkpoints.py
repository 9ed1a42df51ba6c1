"""Checkpoints: what the pipeline last made each catalog row in Stripe, one JSON file per batch.

The catalog's write-back columns tell users what happened; a checkpoint is what the
planner trusts. A row is planned from its content hash alone (zero Stripe requests when
unchanged) only while its checkpoint agrees with the catalog's columns; without one
(`stripe-sync reset`, `--no-checkpoint`, a new DAGSTER_HOME, or drift found by
verification) the row is reconciled: Stripe is read, and only what differs is written.
Checkpoints also remember rows deleted from the catalog, so mirror mode can archive them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock  # a dependency of dagster's

from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.jsonfiles import read_json, write_json


@dataclass(frozen=True)
class Checkpoint:
    """One row as last synced: its Stripe ids, content hash and the values sent."""

    stripe_product_id: str
    stripe_price_id: str | None
    sync_hash: str
    synced: dict = field(default_factory=dict, compare=False)  # DesiredProduct's fields
    removed: bool = False  # deleted from the catalog; archived in Stripe (mirror mode)

    @classmethod
    def of(cls, desired: DesiredProduct, stripe_price_id: str | None) -> Checkpoint:
        return cls(desired.stripe_id, stripe_price_id, desired.sync_hash, asdict(desired))

    def desired(self) -> DesiredProduct:
        """The product as it was last synced."""
        values = dict(self.synced)
        values["images"] = tuple(values["images"])
        values["extra_metadata"] = tuple(tuple(pair) for pair in values["extra_metadata"])
        return DesiredProduct(**values)


class CheckpointStore:
    """Checkpoints under `base_dir`, one file per batch, replaced atomically."""

    def __init__(self, base_dir: str | Path):
        self.base_dir = Path(base_dir)

    def load(self, batch: str) -> dict[str, Checkpoint]:
        entries = read_json(self._path(batch)) or {}
        return {cms_id: Checkpoint(**entry) for cms_id, entry in entries.items()}

    def record(self, batch: str, changes: Mapping[str, Checkpoint | None]) -> None:
        """Set (or, for None, forget) the checkpoints of some rows of a batch."""
        if not changes:
            return
        path = self._path(batch)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Read-modify-write under a lock: a migration and a verification of the same batch
        # may record at once.
        with FileLock(path.with_name(path.name + ".lock")):
            entries = self.load(batch)
            for cms_id, checkpoint in changes.items():
                if checkpoint is None:
                    entries.pop(cms_id, None)
                else:
                    entries[cms_id] = checkpoint
            self._save(batch, entries)

    def forget(self, batch: str, cms_ids: Iterable[str]) -> None:
        """The next run reconciles these rows with Stripe instead of trusting their hash."""
        self.record(batch, dict.fromkeys(cms_ids))

    def batches(self) -> list[str]:
        if not self.base_dir.exists():
            return []
        return sorted(path.stem for path in self.base_dir.glob("*.json"))

    def clear(self) -> int:
        """Forget every checkpoint; returns how many batches had some."""
        batches = self.batches()
        for batch in batches:
            self._path(batch).unlink()
        return len(batches)

    def _save(self, batch: str, entries: dict[str, Checkpoint]) -> None:
        write_json(self._path(batch), {cms_id: asdict(c) for cms_id, c in entries.items()})

    def _path(self, batch: str) -> Path:
        return self.base_dir / f"{batch}.json"
