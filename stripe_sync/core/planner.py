"""Plan: catalog rows and their last sync state -> one action per product.

Pure: no I/O. `migrate` applies exactly this plan, `plan` prints it, and the report
counts it, so a dry run can't disagree with the real run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stripe_sync.core.identity import DesiredProduct, changed_fields


class ActionKind(enum.StrEnum):
    CREATE = "create"  # never synced: one request, the product with its default price
    UPDATE = "update"  # synced before, some fields (or the price) changed since
    RECONCILE = "reconcile"  # last state unknown or forced: read Stripe, write what differs
    UNCHANGED = "unchanged"  # same content hash as last synced: no request at all
    INVALID = "invalid"  # stopped by validation, never sent to Stripe


@dataclass(frozen=True)
class SyncState:
    """What the catalog's write-back columns say about the last sync of a row."""

    stripe_product_id: str | None = None
    stripe_price_id: str | None = None
    sync_status: str | None = None
    sync_hash: str | None = None


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    cms_id: str
    state: SyncState
    desired: DesiredProduct | None = None
    fields: tuple[str, ...] = ()  # UPDATE: changed product fields, and "price" for a new price
    reasons: tuple[str, ...] = ()  # INVALID: why

    @property
    def reprice(self) -> bool:
        return "price" in self.fields


def plan_row(
    cms_id: str,
    desired: DesiredProduct | None,
    reasons: tuple[str, ...],
    state: SyncState,
    *,
    force: bool = False,
) -> Action:
    """The action for one row (see `ActionKind`)."""
    if desired is None:
        return Action(ActionKind.INVALID, cms_id, state, reasons=reasons)
    if not state.stripe_product_id:
        return Action(ActionKind.CREATE, cms_id, state, desired)
    if force or state.sync_status != "synced" or state.stripe_product_id != desired.stripe_id:
        return Action(ActionKind.RECONCILE, cms_id, state, desired)
    changed = changed_fields(state.sync_hash, desired)
    if changed is None:
        return Action(ActionKind.RECONCILE, cms_id, state, desired)
    if not changed:
        return Action(ActionKind.UNCHANGED, cms_id, state, desired)
    return Action(ActionKind.UPDATE, cms_id, state, desired, fields=changed)
