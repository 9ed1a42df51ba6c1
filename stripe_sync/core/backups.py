"""Backups: before a batch writes, its catalog rows and the Stripe objects it will change.

One per run and batch (kept in the state store, `core/state.py`), holding:

- `catalog_rows`: the write-back columns (and `id`) of every row the run will write to
  Stripe for, as they were before;
- `stripe_products`: by product id, each product the run will change as Stripe returned
  it before (default price expanded), or None where the run creates it;
- `actions`: by catalog id, the planned change (`create`, `adopt`, `update`, ...), and
  `products` the Stripe product it changes;
- `stripe_prices`: with a prices model, every price of each product whose prices the run
  changes, as they were before.

Rollback restores from the oldest backup of each product in the window it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Backup:
    run_id: str
    batch: str
    taken_at: str  # ISO 8601, UTC
    catalog_rows: list[dict] = field(default_factory=list)
    stripe_products: dict[str, dict | None] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    # With a prices model, by product id: every price of each product whose prices the run
    # changes, as Stripe listed them before (taken by the prices step, in a backup of its own).
    stripe_prices: dict[str, list[dict]] = field(default_factory=dict)
    # By catalog id, the Stripe product its action writes to (its own id, or one it adopts).
    products: dict[str, str] = field(default_factory=dict)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def backups_since(backups: list[Backup], since: str | None) -> list[Backup]:
    """Of `backups` (oldest first), those from a run (its id) or a time (ISO 8601) on; None:
    all.

    Raises ValueError when `since` is neither a known run id nor a timestamp.
    """
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
