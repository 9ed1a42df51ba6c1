"""Backups: before a batch writes, its catalog rows and the Stripe objects it will change.

One JSON file per run and batch, `<base_dir>/<taken_at>_<run_id>/<batch>.json`, holding:

- `catalog_rows`: the write-back columns (and `id`) of every row the run will write to
  Stripe for, as they were before;
- `stripe_products`: by product id, each product the run will change as Stripe returned
  it before (default price expanded), or None where the run creates it;
- `actions`: by catalog id, the planned change (`create`, `update`, `new_price`, ...).

Rollback restores from the oldest backup of each product in the window it is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from stripe_sync.core.jsonfiles import read_json, write_json


@dataclass(frozen=True)
class Backup:
    run_id: str
    batch: str
    taken_at: str  # ISO 8601, UTC
    catalog_rows: list[dict] = field(default_factory=list)
    stripe_products: dict[str, dict | None] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class BackupStore:
    def __init__(self, base_dir: str | Path):
        self.base_dir = Path(base_dir)

    def save(self, backup: Backup) -> Path:
        stamp = backup.taken_at.replace(":", "").replace("-", "")
        path = self.base_dir / f"{stamp}_{backup.run_id}" / f"{backup.batch}.json"
        write_json(path, asdict(backup))
        return path

    def load_all(self) -> list[Backup]:
        """Every backup, oldest first."""
        if not self.base_dir.exists():
            return []
        backups = [Backup(**read_json(path)) for path in self.base_dir.glob("*/*.json")]
        return sorted(backups, key=lambda backup: (backup.taken_at, backup.batch))

    def since(self, since: str | None) -> list[Backup]:
        """Backups from a run (its id) or a time (ISO 8601) on, oldest first; None: all.

        Raises ValueError when `since` is neither a known run id nor a timestamp.
        """
        backups = self.load_all()
        if since is None:
            return backups
        of_run = [backup.taken_at for backup in backups if backup.run_id == since]
        if of_run:
            start = min(of_run)
        else:
            try:
                moment = datetime.fromisoformat(since)
            except ValueError:
                raise ValueError(
                    f"--since {since!r} is neither the id of a run with backups nor an ISO 8601 time"
                ) from None
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            start = moment.astimezone(UTC).isoformat(timespec="microseconds")
        return [backup for backup in backups if backup.taken_at >= start]
