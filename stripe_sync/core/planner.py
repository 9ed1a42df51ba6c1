"""Plan: catalog rows, their last sync state and checkpoints -> one action per product.

Pure: no I/O. `migrate` applies exactly this plan, `plan` prints it, and the report
counts it, so a dry run can't disagree with the real run.

Which Stripe product a row is, in this order: the product its checkpoint names (the
pipeline's own state); a product id the row already holds (its `stripe_product_id`, written
by the pipeline or by another tool, or a column mapped as `catalog.columns.stripe_product_id`);
a product whose metadata key `adopt.metadata_key` holds the row's id (`by_metadata`, from a
listing of the account); only then the pipeline's own id (`identity.stripe_product_id`). A
product found the second or third way is adopted (ADOPT), once `settle_adoptions` has seen it
in Stripe; where two products claim a row, the row is held (HELD) and nothing is written.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.compare import field_differs, is_desired_price
from stripe_sync.core.identity import (
    MANAGED_BY,
    PRODUCT_FIELDS,
    DesiredProduct,
    changed_fields,
    stripe_product_id,
)
from stripe_sync.core.money import price_text


class ActionKind(enum.StrEnum):
    CREATE = "create"  # never synced: the product with its default price (1 request, 2 by
    # the live-mode second route)
    ADOPT = "adopt"  # a product the account already holds for the row: brought under
    # management (one update), its price reused where it matches
    UPDATE = "update"  # synced before, some fields (or the price) changed since
    RECONCILE = "reconcile"  # last state not trusted or forced: read Stripe, write what differs
    UNCHANGED = "unchanged"  # same content hash as last synced: no request at all
    INVALID = "invalid"  # stopped by validation, never sent to Stripe
    HELD = "held"  # valid, but which Stripe product it is can't be told: nothing is written
    ARCHIVE = "archive"  # deleted from the catalog, mirror mode: archive the product
    ORPHANED = "orphaned"  # deleted from the catalog, mirror off: left live, reported


# What the plan calls each change, in the order it lists them.
CHANGES = (
    "create",
    "adopt",
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
    "held",
)


@dataclass(frozen=True)
class SyncState:
    """What the catalog's write-back columns say about the last sync of a row."""

    stripe_product_id: str | None = None
    stripe_price_id: str | None = None
    sync_status: str | None = None
    sync_hash: str | None = None
    # The product id a column of the catalog's own holds (`catalog.columns.stripe_product_id`).
    held_product_id: str | None = None


@dataclass(frozen=True)
class PlanOptions:
    # Re-send every product's fields (its price is checked by a read): no trust in any state.
    force_resync: bool = False
    # Trust content hashes only where a checkpoint agrees; False reconciles every synced row.
    use_checkpoints: bool = True
    # Archive the Stripe products of rows deleted from the catalog.
    mirror: bool = False
    # The product metadata key that holds a row's catalog id (`adopt.metadata_key`).
    adopt_metadata_key: str | None = None


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    cms_id: str
    state: SyncState
    desired: DesiredProduct | None = None
    # UPDATE: the changed product fields, and "price" for a new price. RECONCILE: fields
    # sent even if Stripe already has them (all of them when forced).
    fields: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()  # INVALID, HELD: why
    previous: DesiredProduct | None = None  # as last synced, when a checkpoint says
    found_by: str = ""  # ADOPT: how the product was found ("stripe_product_id", ...)
    adopted: dict | None = None  # ADOPT: the product as Stripe has it (`settle_adoptions`)
    notes: tuple[str, ...] = ()  # worth a warning in the report (a stored id gone from Stripe)

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
        return self.kind not in (
            ActionKind.UNCHANGED,
            ActionKind.INVALID,
            ActionKind.ORPHANED,
            ActionKind.HELD,
        )

    def diff(self) -> list[str]:
        """Readable changes, e.g. `name: 'Hat' -> 'Cap'` (values as last synced, if known)."""
        if self.kind in (ActionKind.INVALID, ActionKind.HELD):
            return list(self.reasons)
        if self.kind is ActionKind.ADOPT:
            return [*self.notes, *_adoption_diff(self)]
        if self.kind in (ActionKind.ARCHIVE, ActionKind.ORPHANED):
            return [f"deleted from the catalog: {self.state.stripe_product_id}"]
        if self.kind is ActionKind.CREATE:
            created = [f"{name}: {value!r}" for name, value in _values(self.desired).items()]
            return [*self.notes, *created]
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
    by_metadata: Sequence[str] = (),
) -> Action:
    """The action for one row of the catalog (see `ActionKind`); `by_metadata`: the products
    whose `adopt.metadata_key` holds the row's id."""
    previous = _previous(checkpoint)
    if desired is None:
        return Action(ActionKind.INVALID, cms_id, state, reasons=reasons)
    if checkpoint is not None:
        desired = desired.known_as(checkpoint.stripe_product_id)
    else:
        claim = _claim(cms_id, state, by_metadata, options.adopt_metadata_key)
        if claim is not None:
            product_id, found_by, ambiguity = claim
            if ambiguity:
                return Action(ActionKind.HELD, cms_id, state, desired, reasons=(ambiguity,))
            adopted = desired.known_as(product_id)
            return Action(ActionKind.ADOPT, cms_id, state, adopted, found_by=found_by)
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
    by_metadata: Mapping[str, Sequence[str]] | None = None,
) -> list[Action]:
    """Actions for a batch's rows (as `planning_inputs` yields them), then for the rows its
    checkpoints know that the catalog no longer has. `by_metadata`: catalog id -> the
    products whose `adopt.metadata_key` holds it (`products_by_metadata`)."""
    actions, present = [], set()
    for cms_id, desired, reasons, state in rows:
        present.add(cms_id)
        actions.append(
            plan_row(
                cms_id,
                desired,
                reasons,
                state,
                checkpoints.get(cms_id),
                options,
                (by_metadata or {}).get(cms_id, ()),
            )
        )
    for cms_id, checkpoint in checkpoints.items():
        if cms_id in present or checkpoint.removed:
            continue
        kind = ActionKind.ARCHIVE if options.mirror else ActionKind.ORPHANED
        state = SyncState(
            checkpoint.stripe_product_id, checkpoint.stripe_price_id, "synced", checkpoint.sync_hash
        )
        actions.append(Action(kind, cms_id, state, previous=_previous(checkpoint)))
    return actions


def products_by_metadata(products: Iterable[dict], key: str) -> dict[str, list[str]]:
    """Catalog id -> the ids of the products whose metadata `key` holds it."""
    found: dict[str, list[str]] = defaultdict(list)
    for product in products:
        value = (product.get("metadata") or {}).get(key)
        if value:
            found[value].append(product["id"])
    return dict(found)


def needs_listing(
    cms_ids: Iterable[str], checkpoints: Mapping[str, Checkpoint], options: PlanOptions
) -> bool:
    """Whether a plan of these rows needs the account's products listed: an adoption key is
    set and some row has no checkpoint (which product it is may be known only by metadata)."""
    return options.adopt_metadata_key is not None and any(
        cms_id not in checkpoints for cms_id in cms_ids
    )


def _claim(
    cms_id: str, state: SyncState, by_metadata: Sequence[str], key: str | None
) -> tuple[str, str, str] | None:
    """(product id, how it was found, why the row is ambiguous or "") of a product the
    account may already hold for a row without a checkpoint; None: the pipeline's own id."""
    own = stripe_product_id(cms_id)
    stored = state.stripe_product_id or state.held_product_id
    stored_in = (
        "stripe_product_id" if state.stripe_product_id else "catalog.columns.stripe_product_id"
    )
    matches = list(dict.fromkeys(by_metadata))
    found_by = f"metadata.{key}"
    if len(matches) > 1:
        listed = f"{', '.join(matches[:-1])} and {matches[-1]}"
        every = "both" if len(matches) == 2 else "all"
        reason = f"adopt_ambiguous: {listed} {every} have {found_by} = {cms_id!r}"
        return matches[0], found_by, reason
    if stored and matches and matches[0] != stored:
        return (
            stored,
            stored_in,
            f"adopt_ambiguous: the row holds {stored} but {matches[0]} has {found_by} = {cms_id!r}",
        )
    if stored:
        return None if stored == own else (stored, stored_in, "")
    if matches:
        return None if matches[0] == own else (matches[0], found_by, "")
    return None


def products_to_settle(actions: Sequence[Action]) -> list[str]:
    """The products `settle_adoptions` needs read: each one to adopt, and the row's own (made
    by an earlier run, or the one to create when the other is gone)."""
    adopting = [action for action in actions if action.kind is ActionKind.ADOPT]
    return [a.desired.stripe_id for a in adopting] + [stripe_product_id(a.cms_id) for a in adopting]


def settle_adoptions(actions: Sequence[Action], found: Mapping[str, dict]) -> list[Action]:
    """The actions once the products they would adopt were read (`found`, by id): a product
    not in Stripe is created as the row's own instead (and said so); one the pipeline already
    manages for the row is reconciled; one it manages for another row, or claimed by two rows
    of the plan, holds the row."""
    claimed: dict[str, list[str]] = defaultdict(list)
    for action in actions:
        if action.kind is ActionKind.ADOPT:
            claimed[action.desired.stripe_id].append(action.cms_id)
    return [
        _settled(action, found, claimed) if action.kind is ActionKind.ADOPT else action
        for action in actions
    ]


def _settled(action: Action, found: Mapping[str, dict], claimed: Mapping[str, list[str]]) -> Action:
    product_id = action.desired.stripe_id
    product = found.get(product_id)
    own = action.desired.known_as(stripe_product_id(action.cms_id))
    ours = _managed_for(found.get(own.stripe_id), action.cms_id)  # made by an earlier run
    if product is None and ours:  # the row's stale id names nothing: its own product is it
        return replace(action, kind=ActionKind.RECONCILE, desired=own, found_by="")
    if product is None:
        note = (
            f"stripe_product_id_gone: {product_id} (the row's {action.found_by}) is not in "
            f"Stripe; created as {own.stripe_id}"
        )
        return replace(action, kind=ActionKind.CREATE, desired=own, notes=(note,), found_by="")
    if ours:
        reason = (
            f"adopt_ambiguous: {own.stripe_id} (the pipeline's own) and {product_id} both "
            "claim the row"
        )
        return replace(action, kind=ActionKind.HELD, reasons=(reason,))
    metadata = product.get("metadata") or {}
    if metadata.get("managed_by") == MANAGED_BY:
        if _managed_for(product, action.cms_id):
            return replace(action, kind=ActionKind.RECONCILE, found_by="")
        reason = (
            f"adopt_ambiguous: {product_id} is managed for the catalog row "
            f"{metadata.get('cms_id')!r}"
        )
        return replace(action, kind=ActionKind.HELD, reasons=(reason,))
    rows = claimed[product_id]
    if len(rows) > 1:
        reason = (
            f"adopt_ambiguous: {product_id} is claimed by the rows {', '.join(map(repr, rows))}"
        )
        return replace(action, kind=ActionKind.HELD, reasons=(reason,))
    return replace(action, adopted=product)


def _managed_for(product: dict | None, cms_id: str) -> bool:
    """Whether a Stripe product (None: none) is the pipeline's product of that row."""
    metadata = (product or {}).get("metadata") or {}
    return metadata.get("managed_by") == MANAGED_BY and metadata.get("cms_id") == cms_id


def _adoption_diff(action: Action) -> list[str]:
    """What adopting changes: the product, found how, its fields that differ, its default
    price kept or replaced."""
    desired, product = action.desired, action.adopted
    lines = [f"{desired.stripe_id}: found by {action.found_by}"]
    if product is None:  # not settled against Stripe (`settle_adoptions`)
        return [*lines, "what changes is read from Stripe when the sync runs"]
    wanted = desired.product_fields()
    for name in PRODUCT_FIELDS:
        if name == "metadata":
            own = sorted(set(product.get("metadata") or {}) - set(wanted["metadata"]))
            kept = f" (its own kept: {', '.join(own)})" if own else ""
            lines.append(f"metadata: + {', '.join(sorted(wanted['metadata']))}{kept}")
        elif field_differs(name, product, wanted):
            lines.append(f"{name}: {product.get(name)!r} -> {wanted.get(name)!r}")
    if desired.prices:
        lines.append(f"prices: {[price.describe() for price in desired.prices]!r}")
        return lines
    default = product.get("default_price") or {}
    new = price_text(desired.unit_amount, desired.currency)
    if is_desired_price(default, desired):
        lines.append(f"price: {new} kept ({default['id']})")
    else:
        old = price_text(default["unit_amount"], default["currency"]) if default else "none"
        lines.append(
            f"price: {old} -> {new} (an active price of the product with it, or a new one)"
        )
    return lines


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
