"""Checkpoints: what the pipeline last made each catalog row in Stripe (kept in the state
store, `core/state.py`).

The catalog's write-back columns tell users what happened; a checkpoint is what the
planner trusts. A row is planned from its content hash alone (zero Stripe requests when
unchanged) only while its checkpoint agrees with the catalog's columns; without one
(`stripe-sync reset`, `--no-checkpoint`, or drift found by verification) the row is
reconciled: Stripe is read, and only what differs is written. Checkpoints also remember rows deleted from the catalog, so mirror mode can archive them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from stripe_sync.core.identity import DesiredPrice, DesiredProduct


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
        values["prices"] = tuple(DesiredPrice(**price) for price in values.get("prices", ()))
        values["held_prices"] = tuple(values.get("held_prices", ()))
        return DesiredProduct(**values)
