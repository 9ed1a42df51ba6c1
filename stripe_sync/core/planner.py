"""Plan: catalog rows, their last sync state and checkpoints -> one action per product.

Pure: no I/O. `migrate` applies exactly this plan, `plan` prints it, and the report
counts it, so a dry run can't disagree with the real run.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.identity import PRODUCT_FIELDS, DesiredProduct, changed_fields
from stripe_sync.core.money import price_text


class ActionKind(enum.StrEnum):
    CREATE = "create"  # never synced: the product with its default price (1 request, 2 by
    # the live-mode second route)
    UPDATE = "update"  # synced before, some fields (or the price) changed since
    RECONCILE = "reconcile"  # last state not trusted or forced: read Stripe, write what differs
    UNCHANGED = "unchanged"  # same content hash as last synced: no request at all
    INVALID = "invalid"  # stopped by validation, never sent to Stripe
    ARCHIVE = "archive"  # deleted from the catalog, mirror mode: archive the product
    ORPHANED = "orphaned"  # deleted from the catalog, mirror off: left live, reported


# What the plan calls each change, in the order it lists them.
CHANGES = (
    "create",
    "update",
    "new_price",
    "archive",
    "unarchive",
    "remove",
    "removed_kept",
    "retry",
    "reconcile",
    "unchanged",
    "invalid",
)


@dataclass(frozen=True)
class SyncState:
    """What the catalog's write-back columns say about the last sync of a row."""

    stripe_product_id: str | None = None
    stripe_price_id: str | None = None
    sync_status: str | None = None
    sync_hash: str | None = None


@dataclass(frozen=True)
class PlanOptions:
    # Re-send every product's fields (its price is checked by a read): no trust in any state.
    force_resync: bool = False
    # Trust content hashes only where a checkpoint agrees; False reconciles every synced row.
    use_checkpoints: bool = True
    # Archive the Stripe products of rows deleted from the catalog.
    mirror: bool = False


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    cms_id: str
    state: SyncState
    desired: DesiredProduct | None = None
    # UPDATE: the changed product fields, and "price" for a new price. RECONCILE: fields
    # sent even if Stripe already has them (all of them when forced).
    fields: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # INVALID: why
    previous: DesiredProduct | None = None  # as last synced, when a checkpoint says

    @property
    def reprice(self) -> bool:
        return "price" in self.fields or "prices" in self.fields

    @property
    def change(self) -> str:
        """The plan's name for what happens to the row (one of CHANGES)."""
        if self.kind is ActionKind.UPDATE:
            if "active" in self.fields:
                return "unarchive" if self.desired.active else "archive"
            return "new_price" if self.reprice else "update"
        if self.kind is ActionKind.RECONCILE and self.state.sync_status == "failed":
            return "retry"
        return {ActionKind.ARCHIVE: "remove", ActionKind.ORPHANED: "removed_kept"}.get(
            self.kind, self.kind.value
        )

    @property
    def writes(self) -> bool:
        """Whether the action may write to Stripe (and so is backed up first)."""
        return self.kind not in (ActionKind.UNCHANGED, ActionKind.INVALID, ActionKind.ORPHANED)

    def diff(self) -> list[str]:
        """Readable changes, e.g. `name: 'Hat' -> 'Cap'` (values as last synced, if known)."""
        if self.kind is ActionKind.INVALID:
            return list(self.reasons)
        if self.kind in (ActionKind.ARCHIVE, ActionKind.ORPHANED):
            return [f"deleted from the catalog: {self.state.stripe_product_id}"]
        if self.kind is ActionKind.CREATE:
            return [f"{name}: {value!r}" for name, value in _values(self.desired).items()]
        if self.kind is ActionKind.RECONCILE:
            return ["read Stripe, write what differs from the catalog"]
        new = _values(self.desired)
        old = _values(self.previous) if self.previous else {}
        return [
            f"{name}: {old[name]!r} -> {new[name]!r}" if name in old else f"{name}: {new[name]!r}"
            for name in self.fields
        ]


def plan_row(
    cms_id: str,
    desired: DesiredProduct | None,
    reasons: tuple[str, ...],
    state: SyncState,
    checkpoint: Checkpoint | None = None,
    options: PlanOptions = PlanOptions(),
) -> Action:
    """The action for one row of the catalog (see `ActionKind`)."""
    previous = _previous(checkpoint)
    if desired is None:
        return Action(ActionKind.INVALID, cms_id, state, reasons=reasons)
    if not state.stripe_product_id:
        return Action(ActionKind.CREATE, cms_id, state, desired)
    if options.force_resync:
        return Action(ActionKind.RECONCILE, cms_id, state, desired, fields=PRODUCT_FIELDS)
    trusted = (
        options.use_checkpoints
        and checkpoint is not None
        and not checkpoint.removed
        and state.sync_status == "synced"
        and state.stripe_product_id == desired.stripe_id == checkpoint.stripe_product_id
        and state.sync_hash == checkpoint.sync_hash
    )
    changed = changed_fields(state.sync_hash, desired) if trusted else None
    if changed is None:
        return Action(ActionKind.RECONCILE, cms_id, state, desired, previous=previous)
    if not changed:
        return Action(ActionKind.UNCHANGED, cms_id, state, desired, previous=previous)
    return Action(ActionKind.UPDATE, cms_id, state, desired, fields=changed, previous=previous)


def plan_batch(
    rows: Iterable[tuple[str, DesiredProduct | None, tuple[str, ...], SyncState]],
    checkpoints: Mapping[str, Checkpoint],
    options: PlanOptions = PlanOptions(),
) -> list[Action]:
    """Actions for a batch's rows (as `planning_inputs` yields them), then for the rows its
    checkpoints know that the catalog no longer has."""
    actions, present = [], set()
    for cms_id, desired, reasons, state in rows:
        present.add(cms_id)
        actions.append(plan_row(cms_id, desired, reasons, state, checkpoints.get(cms_id), options))
    for cms_id, checkpoint in checkpoints.items():
        if cms_id in present or checkpoint.removed:
            continue
        kind = ActionKind.ARCHIVE if options.mirror else ActionKind.ORPHANED
        state = SyncState(
            checkpoint.stripe_product_id, checkpoint.stripe_price_id, "synced", checkpoint.sync_hash
        )
        actions.append(Action(kind, cms_id, state, previous=_previous(checkpoint)))
    return actions


def _previous(checkpoint: Checkpoint | None) -> DesiredProduct | None:
    return checkpoint.desired() if checkpoint is not None and checkpoint.synced else None


def _values(product: DesiredProduct) -> dict[str, object]:
    return {
        "name": product.name,
        "description": product.description,
        "images": list(product.images),
        "metadata": dict(product.extra_metadata),
        "active": product.active,
        "price": price_text(product.unit_amount, product.currency),
    } | ({"prices": [price.describe() for price in product.prices]} if product.prices else {})
