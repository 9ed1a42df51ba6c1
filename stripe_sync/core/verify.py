"""Verification: does Stripe hold what the latest sync of a batch made of the catalog?

Pure: a batch's validated rows (as `planning_inputs` yields them), its checkpoints and the
Stripe products read for it (`product_ids` says which, for one `ids[]` list request per 100
products; search is never used) -> the mismatches, and the checkpoint changes that make the
next sync repair them.

- A valid row: its product exists; name, description, images, the pipeline's metadata and the
  active flag match (so a row the catalog marks inactive must be archived); its default price
  is active with the row's amount and currency. A row whose sync failed is a mismatch too.
- An invalid row never synced (no checkpoint, no Stripe id in the catalog) has no live product
  at its derived id. One synced before keeps its last valid version live by design: a warning
  ("stale"), not a mismatch.
- A row deleted from the catalog that its checkpoint remembers: in mirror mode its product
  must be archived; with mirror off it stays live by design: a warning.

Repairs: a drifted row's checkpoint is forgotten, so the next sync reconciles it (reads Stripe,
writes what differs) instead of trusting its content hash; a deleted row that was archived and
is live again is marked not removed, so mirror mode archives it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.compare import field_differs, is_desired_price
from stripe_sync.core.identity import MANAGED_BY, PRODUCT_FIELDS, DesiredProduct, stripe_product_id
from stripe_sync.core.money import price_text
from stripe_sync.core.planner import SyncState

ERROR = "error"  # Stripe is not what the catalog says: verification fails
WARNING = "warning"  # by design, but worth knowing: verification still passes
PRODUCT = "product"  # found by the check on the products
PRICE = "price"  # found by the check on the default prices
SHOWN_CHARACTERS = 200  # of an expected or actual value in a table

Row = tuple[str, DesiredProduct | None, tuple[str, ...], SyncState]


@dataclass(frozen=True)
class Mismatch:
    """One way Stripe differs from the catalog: a field of a product, with both values."""

    cms_id: str
    product_id: str
    subject: str  # PRODUCT or PRICE
    field: str
    expected: object
    actual: object
    severity: str = ERROR
    note: str = ""

    def as_row(self) -> dict[str, str]:
        """The mismatch as text, values shortened, for a table."""
        return {
            "severity": self.severity,
            "cms_id": self.cms_id,
            "product_id": self.product_id,
            "field": self.field,
            "expected": shown(self.expected),
            "actual": shown(self.actual),
            "note": self.note,
        }


@dataclass(frozen=True)
class BatchVerification:
    products: int  # products verified: the batch's rows and the deleted rows remembered
    mismatches: tuple[Mismatch, ...] = ()
    # Checkpoint changes for the next sync: None forgets a row's checkpoint.
    repairs: dict[str, Checkpoint | None] = field(default_factory=dict)
    # Why Stripe's products could not be read (the batch was not compared); "" when they were.
    stripe_unread: str = ""

    def of(self, subject: str) -> list[Mismatch]:
        return [m for m in self.mismatches if m.subject == subject]


def product_ids(rows: Iterable[Row], checkpoints: Mapping[str, Checkpoint]) -> list[str]:
    """Every Stripe product a batch's verification reads, each once: the derived id of every
    row with an id and the product its sync state names (one it adopted), and the product of
    every row a checkpoint remembers."""
    ids = [
        product_id
        for cms_id, _, _, state in rows
        if cms_id
        for product_id in (stripe_product_id(cms_id), state.stripe_product_id)
        if product_id
    ]
    ids += [checkpoint.stripe_product_id for checkpoint in checkpoints.values()]
    return list(dict.fromkeys(ids))


def synced_product_id(cms_id: str, state: SyncState, checkpoint: Checkpoint | None) -> str:
    """The Stripe product a row was synced to: its checkpoint's, else its sync state's (an
    adopted product keeps its own id), else the row's own."""
    if checkpoint is not None:
        return checkpoint.stripe_product_id
    return state.stripe_product_id or stripe_product_id(cms_id)


def as_synced(
    desired: DesiredProduct, state: SyncState, checkpoint: Checkpoint | None
) -> DesiredProduct:
    """A valid row as the Stripe product it was synced to (`synced_product_id`)."""
    return desired.known_as(synced_product_id(desired.cms_id, state, checkpoint))


def verify_batch(
    rows: Iterable[Row],
    checkpoints: Mapping[str, Checkpoint],
    products: Mapping[str, dict],
    *,
    mirror: bool,
    prices: Mapping[str, list[dict]] | None = None,
) -> BatchVerification:
    """Compare a batch's rows and checkpoints with its Stripe products (by id, default
    prices expanded; a product missing from `products` does not exist) and, with a prices
    model, every price of each (`prices`, by product id)."""
    mismatches: list[Mismatch] = []
    repairs: dict[str, Checkpoint | None] = {}
    present: set[str] = set()
    for cms_id, desired, reasons, state in rows:
        if not cms_id or cms_id in present:  # no identity; a duplicate id is checked once
            continue
        present.add(cms_id)
        checkpoint = checkpoints.get(cms_id)
        if desired is not None:
            desired = as_synced(desired, state, checkpoint)
            found = _valid_row(
                desired,
                state,
                checkpoint,
                products.get(desired.stripe_id),
                (prices or {}).get(desired.stripe_id, []),
            )
            if checkpoint is not None and any(m.severity == ERROR for m in found):
                repairs[cms_id] = None
        else:
            synced_before = checkpoint is not None or bool(state.stripe_product_id)
            product_id = synced_product_id(cms_id, state, checkpoint)
            found = _invalid_row(cms_id, product_id, reasons, synced_before, products)
        mismatches += found
    deleted = {cms_id: c for cms_id, c in checkpoints.items() if cms_id not in present}
    for cms_id, checkpoint in deleted.items():
        found = _deleted_row(cms_id, checkpoint, products, mirror=mirror)
        if checkpoint.removed and any(m.severity == ERROR for m in found):
            repairs[cms_id] = replace(checkpoint, removed=False)
        mismatches += found
    return BatchVerification(len(present) + len(deleted), tuple(mismatches), repairs)


def shown(value: object) -> str:
    """A value as a table shows it: text as is, anything else as JSON, at most 200 characters."""
    if value is None:
        text = "none"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"


# --- rules --------------------------------------------------------------------------------


def _valid_row(
    desired: DesiredProduct,
    state: SyncState,
    checkpoint: Checkpoint | None,
    product: dict | None,
    prices: list[dict],
) -> list[Mismatch]:
    def mismatch(subject: str, name: str, expected: object, actual: object, note: str = ""):
        return Mismatch(
            desired.cms_id, desired.stripe_id, subject, name, expected, actual, note=note
        )

    if product is None:
        if state.sync_status == "failed":
            note = "its last sync failed"
        elif checkpoint is None and not state.stripe_product_id:
            note = "never synced"
        else:
            note = "deleted in Stripe"
        return [mismatch(PRODUCT, "product", "exists", "missing", note)]
    wanted = desired.product_fields()
    found = [
        mismatch(PRODUCT, name, *_values(name, product, wanted))
        for name in PRODUCT_FIELDS
        if field_differs(name, product, wanted)
    ]
    price = product.get("default_price") or {}
    if not isinstance(price, dict):  # not expanded: only its id is known
        price = {"id": price}
    if desired.prices:
        return found + [
            mismatch(PRICE, *difference)
            for difference in _price_differences(desired, price, prices)
        ]
    if not is_desired_price(price, desired):
        actual = price_text(price.get("unit_amount"), price.get("currency")) if price else None
        if price and not price.get("active", False):
            actual = f"{actual} (archived)"
        expected = price_text(desired.unit_amount, desired.currency)
        found.append(mismatch(PRICE, "default_price", expected, actual))
    return found


def _price_differences(
    desired: DesiredProduct, default: dict, prices: list[dict]
) -> list[tuple[str, object, object]]:
    """(what, expected, actual) for each way the product's prices differ from its price
    rows: each row's one active price (content, nickname), the default, no other active
    price of the pipeline's (a quarantined row's is left alone)."""
    differences = []
    for price in desired.prices:
        active = [p for p in prices if p.get("active") and price.matches(p)]
        if len(active) != 1:
            differences.append((f"price {price.key}", price.describe(), f"{len(active)} active"))
        elif (active[0].get("nickname") or None) != price.nickname:
            differences.append(
                (f"price {price.key} nickname", price.nickname, active[0].get("nickname"))
            )
    if not desired.prices[0].matches(default) or not default.get("active", False):
        actual = (default.get("metadata") or {}).get("cms_price_id") if default else None
        differences.append(("default_price", desired.prices[0].key, actual))
    wanted = {price.key for price in desired.prices} | set(desired.held_prices)
    for price in prices:
        key = (price.get("metadata") or {}).get("cms_price_id")
        managed = (price.get("metadata") or {}).get("managed_by") == MANAGED_BY
        if price.get("active") and managed and key not in wanted:
            differences.append((f"price {key or price['id']}", "archived", "active"))
    return differences


def _invalid_row(
    cms_id: str,
    product_id: str,
    reasons: tuple[str, ...],
    synced_before: bool,
    products: Mapping[str, dict],
) -> list[Mismatch]:
    """An invalid row's product (its own, or the one it was synced or adopted as)."""
    if not _live(products.get(product_id)):
        return []
    if synced_before:
        return [
            Mismatch(
                cms_id,
                product_id,
                PRODUCT,
                "catalog row",
                "valid",
                "; ".join(reasons),
                WARNING,
                "stale: Stripe keeps the last valid version until the row is fixed",
            )
        ]
    return [
        Mismatch(
            cms_id,
            product_id,
            PRODUCT,
            "active",
            False,
            True,
            note="invalid in the catalog and never synced, yet live in Stripe",
        )
    ]


def _deleted_row(
    cms_id: str, checkpoint: Checkpoint, products: Mapping[str, dict], *, mirror: bool
) -> list[Mismatch]:
    product_id = checkpoint.stripe_product_id
    if not _live(products.get(product_id)):
        return []
    if mirror:
        note = "deleted from the catalog: mirror mode archives it"
        return [Mismatch(cms_id, product_id, PRODUCT, "active", False, True, note=note)]
    note = "deleted from the catalog, still live in Stripe (mirror mode is off)"
    return [
        Mismatch(cms_id, product_id, PRODUCT, "catalog row", "present", "deleted", WARNING, note)
    ]


def _live(product: dict | None) -> bool:
    return product is not None and bool(product.get("active"))


def _values(name: str, product: dict, wanted: dict) -> tuple[object, object]:
    """(expected, actual) of a product field, as `field_differs` compares them."""
    if name == "metadata":
        expected = {k: v for k, v in wanted["metadata"].items() if k != "sync_hash"}
        current = product.get("metadata") or {}
        return expected, {key: current.get(key) for key in expected}
    if name == "description":
        return wanted.get("description"), product.get("description") or None
    return wanted.get(name), product.get(name)
