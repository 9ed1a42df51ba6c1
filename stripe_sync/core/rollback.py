"""Rollback: Stripe and the catalog's write-back columns as they were before a migration.

The target of each product and catalog row is its OLDEST entry among the backups of the
window (`backups_since`): its state before the first run in the window changed it.
The plan compares the targets with the state now (Stripe read with `list_products`, 100
ids a request; the catalog rows as read) and holds only what differs, so a second rollback
finds nothing to do and writes nothing. A dry run is the plan, not applied.

- Created by a run (target None): archived, if still active. Stripe can't delete a product
  that has prices.
- Existed: one product update restoring the fields that differ (name, description, images,
  metadata, active); the metadata and nickname of its prices that existed (an adopted
  product's own, which the sync made the pipeline's) restored too, when its prices were
  backed up. If the default price differs, the old default is reactivated first
  (the migration archived it), set as default in that same update, and the migration's
  default archived last: Stripe refuses to archive a default price. With a prices model,
  every price of the product is brought back to how active it was (read once a product):
  the prices the run archived are reactivated first, those it made or reactivated archived
  last.
- Catalog: the target rows' write-back columns, in one write-back. A row whose product
  step failed keeps its columns until a later rollback restores the product.
- Checkpoints of the rows rolled back are forgotten before any write, so the next sync
  reconciles them with Stripe instead of trusting their content hash.

Idempotency keys are deterministic: the request's parameters and the product's `updated`
time as read, so a retry or rerun repeats a key only for the same write from the same state,
and a rollback after a later migration sends new keys.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime

from stripe_sync.core.backups import Backup, backups_since
from stripe_sync.core.contract import WRITE_BACK_COLUMNS, WriteBack
from stripe_sync.core.errors import ConfigError, ErrorKind, StripeFailure
from stripe_sync.core.identity import idempotency_key, stripe_product_id
from stripe_sync.core.product_reads import read_prices_of
from stripe_sync.core.report import table_cell
from stripe_sync.core.state import StateStore
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.wording import counted

ARCHIVE, RESTORE, MISSING, RESET = "archive", "restore", "missing", "reset"
# Where a row's reset goes: the catalog's write-back columns (and the sync state), or, for a
# table without them, the sync state alone (the state store's table).
CATALOG, SYNC_STATE = "catalog", "sync state"
PLANNED, DONE, FAILED, SKIPPED = "planned", "done", "failed", "skipped"
COUNTS = ("archived", "restored", "prices_restored", "catalog_rows_reset", "unchanged", "failed")


def rollback_window(state: StateStore, since: str | None) -> list[Backup]:
    """The backups to roll back, oldest first; a ConfigError for an unknown `since`."""
    try:
        return backups_since(state.backups(), since)
    except ValueError as error:
        raise ConfigError(f"{error}.") from None


# --- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductTarget:
    product_id: str
    cms_id: str
    batch: str
    before: dict | None  # as Stripe returned it before (default price expanded); None: created
    # With a prices model: its prices before the run changed them (None: not changed).
    prices_before: list[dict] | None = None


@dataclass(frozen=True)
class RowTarget:
    cms_id: str
    batch: str
    columns: dict  # the write-back columns as they were


@dataclass(frozen=True)
class Targets:
    products: dict[str, ProductTarget]
    rows: dict[str, RowTarget]


def rollback_targets(backups: Iterable[Backup]) -> Targets:
    """Each product's and row's oldest backup entry (backups come oldest first)."""
    products: dict[str, ProductTarget] = {}
    rows: dict[str, RowTarget] = {}
    for backup in backups:
        cms_of = {stripe_product_id(cms_id): cms_id for cms_id in backup.actions} | {
            product_id: cms_id for cms_id, product_id in backup.products.items()
        }
        for product_id, before in backup.stripe_products.items():
            if product_id not in products:
                cms_id = cms_of.get(product_id) or _metadata(before).get("cms_id", "")
                products[product_id] = ProductTarget(product_id, cms_id, backup.batch, before)
        for product_id, prices in backup.stripe_prices.items():
            target = products.get(product_id)
            if target is not None and target.prices_before is None:
                products[product_id] = replace(target, prices_before=prices)
        for row in backup.catalog_rows:
            cms_id = str(row["id"])
            if cms_id not in rows:
                columns = {column: row.get(column) for column in WRITE_BACK_COLUMNS}
                rows[cms_id] = RowTarget(cms_id, backup.batch, columns)
    return Targets(products, rows)


# --- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductStep:
    """What brings one product back: price reactivation, one update, price archive."""

    target: ProductTarget
    kind: str  # ARCHIVE (created by the migration), RESTORE, or MISSING (gone from Stripe)
    update: dict = field(default_factory=dict)  # product update parameters
    reactivate_prices: tuple[str, ...] = ()  # before the update: a default must be active
    archive_prices: tuple[str, ...] = ()  # after it: a default can't be archived
    # Prices that existed before, their metadata and nickname as they were (an adopted
    # product's own prices, which the sync made the pipeline's).
    restore_prices: tuple[tuple[str, dict], ...] = ()
    read_at: int | None = None  # the product's `updated` as read, for the idempotency keys

    @property
    def restores_price(self) -> bool:
        return "default_price" in self.update

    def describe(self) -> str:
        if self.kind == ARCHIVE:
            return "archive (created by the migration)"
        if self.kind == MISSING:
            return "not in Stripe: can't be restored"
        fields = [name for name in self.update if name != "default_price"]
        parts = [f"restore {', '.join(fields)}"] if fields else []
        if self.restores_price:
            price = self.update["default_price"] or "none"
            parts.append(f"default price back to {price}")
        # The old default's reactivation goes without saying.
        others = [p for p in self.reactivate_prices if p != self.update.get("default_price")]
        if others:
            parts.append(f"reactivate {', '.join(others)}")
        if self.archive_prices:
            parts.append(f"archive {', '.join(self.archive_prices)}")
        if self.restore_prices:
            parts.append(f"restore {', '.join(price for price, _ in self.restore_prices)}")
        return "; ".join(parts)

    def key(self, operation: str, object_id: str, params: dict) -> str:
        return idempotency_key(
            f"rollback-{operation}", object_id, {"params": params, "read_at": self.read_at}
        )


@dataclass(frozen=True)
class RowReset:
    target: RowTarget
    changed: tuple[str, ...]  # the columns that differ now

    def write_back(self) -> WriteBack:
        columns = self.target.columns
        return WriteBack(
            id=self.target.cms_id,
            stripe_product_id=columns["stripe_product_id"],
            stripe_price_id=columns["stripe_price_id"],
            sync_status=columns["sync_status"],
            sync_error=columns["sync_error"],
            synced_at=_moment(columns["synced_at"]),
            sync_hash=columns["sync_hash"],
        )


@dataclass(frozen=True)
class RollbackPlan:
    product_steps: list[ProductStep]
    row_resets: list[RowReset]
    unchanged: int  # products already as they were before
    resets_in: str = CATALOG  # CATALOG or SYNC_STATE

    @property
    def empty(self) -> bool:
        return not self.product_steps and not self.row_resets

    def rows_by_batch(self) -> dict[str, set[str]]:
        """The catalog ids rolled back, by batch: their checkpoints are forgotten."""
        rolled_back: dict[str, set[str]] = {}
        for target in [s.target for s in self.product_steps] + [r.target for r in self.row_resets]:
            if target.cms_id:
                rolled_back.setdefault(target.batch, set()).add(target.cms_id)
        return rolled_back

    def report(self) -> RollbackReport:
        """The plan as a report of what a rollback would do (a dry run)."""
        steps = [_step_result(step, PLANNED) for step in self.product_steps]
        steps += [_reset_result(reset, self.resets_in, PLANNED) for reset in self.row_resets]
        return RollbackReport(
            dry_run=True, steps=steps, unchanged=self.unchanged, resets_in=self.resets_in
        )


def plan_rollback(
    targets: Targets,
    current_products: Mapping[str, dict],
    current_rows: Mapping[str, dict],
    current_prices: Mapping[str, list[dict]] | None = None,
    *,
    catalog_columns: bool = True,
) -> RollbackPlan:
    """The steps that bring every target back; nothing for what already is.

    `current_products`: the products that exist now, by id (default price expanded);
    `current_rows`: the catalog rows now, by id (a row not among them isn't reset: it is
    no longer in the catalog); `current_prices`: every price now of the products whose
    prices a run changed (with a prices model), by product id; `catalog_columns`: whether
    the catalog table has the write-back columns (else a reset is of the sync state alone).
    """
    steps, unchanged = [], 0
    for product_id, target in sorted(targets.products.items()):
        step = _product_step(
            target, current_products.get(product_id), (current_prices or {}).get(product_id)
        )
        if step is None:
            unchanged += 1
        else:
            steps.append(step)
    resets = []
    for cms_id, target in sorted(targets.rows.items()):
        current = current_rows.get(cms_id)
        if current is None:
            continue
        changed = tuple(
            column
            for column in WRITE_BACK_COLUMNS
            if _comparable(column, target.columns[column]) != _comparable(column, current[column])
        )
        if changed:
            resets.append(RowReset(target, changed))
    return RollbackPlan(steps, resets, unchanged, CATALOG if catalog_columns else SYNC_STATE)


def _product_step(
    target: ProductTarget, current: dict | None, current_prices: list[dict] | None = None
) -> ProductStep | None:
    before = target.before
    if current is None:
        return None if before is None else ProductStep(target, MISSING)
    read_at = current.get("updated")
    if before is None:
        if not current["active"]:
            return None
        return ProductStep(target, ARCHIVE, {"active": False}, read_at=read_at)
    update: dict = {}
    if current["name"] != before["name"]:
        update["name"] = before["name"]
    if (current.get("description") or "") != (before.get("description") or ""):
        update["description"] = before.get("description") or ""  # "" unsets it
    if list(current.get("images") or []) != list(before.get("images") or []):
        update["images"] = list(before.get("images") or []) or ""  # "" unsets them
    metadata = _metadata_restore(_metadata(current), _metadata(before))
    if metadata:
        update["metadata"] = metadata
    if current["active"] != before["active"]:
        update["active"] = before["active"]
    old_price = _price_id(before.get("default_price"))
    now_price = _price_id(current.get("default_price"))
    reactivate: tuple[str, ...] = ()
    archive: tuple[str, ...] = ()
    restore: tuple[tuple[str, dict], ...] = ()
    if old_price != now_price:
        update["default_price"] = old_price or ""  # "" unsets it
        reactivate, archive = tuple(filter(None, [old_price])), tuple(filter(None, [now_price]))
    if target.prices_before is not None and current_prices is not None:
        # Every price as active as it was: the run's new ones archived, its archived back.
        was_active = {price["id"] for price in target.prices_before if price["active"]}
        is_active = {price["id"] for price in current_prices if price["active"]}
        reactivate = tuple(sorted(was_active - is_active))
        archive = tuple(sorted(is_active - was_active))
        restore = _prices_restore(target.prices_before, current_prices)
    if not update and not reactivate and not archive and not restore:
        return None
    return ProductStep(
        target, RESTORE, update, reactivate, archive, read_at=read_at, restore_prices=restore
    )


def _prices_restore(before: list[dict], current: list[dict]) -> tuple[tuple[str, dict], ...]:
    """(price id, update) for each price that existed before and whose metadata or nickname
    the sync changed."""
    was = {price["id"]: price for price in before}
    restores = []
    for price in sorted(current, key=lambda p: p["id"]):
        old = was.get(price["id"])
        if old is None:
            continue  # made by the sync: archived
        update: dict = {}
        metadata = _metadata_restore(_metadata(price), _metadata(old))
        if metadata:
            update["metadata"] = metadata
        if (price.get("nickname") or "") != (old.get("nickname") or ""):
            update["nickname"] = old.get("nickname") or ""  # "" clears it
        if update:
            restores.append((price["id"], update))
    return tuple(restores)


def _metadata_restore(current: dict, before: dict) -> dict:
    """Keys back to their old values; keys the migration added unset with ""."""
    restore = {key: value for key, value in before.items() if current.get(key) != value}
    return restore | {key: "" for key in current if key not in before}


# --- applying ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    cms_id: str
    subject: str  # the Stripe product id, or "catalog" for a catalog row
    kind: str  # ARCHIVE, RESTORE, MISSING or RESET
    detail: str
    outcome: str  # PLANNED, DONE, FAILED or SKIPPED
    restores_price: bool = False
    error: str | None = None


def apply_rollback(
    plan: RollbackPlan,
    api: StripeApi,
    state: StateStore,
    *,
    max_in_flight: int = 4,
) -> RollbackReport:
    """Checkpoints forgotten, then the Stripe steps (products in parallel), then one
    write-back of the rows whose product didn't fail."""
    for batch, cms_ids in sorted(plan.rows_by_batch().items()):
        state.forget(batch, sorted(cms_ids))
    refused = threading.Event()  # Stripe refused the key: nothing further is sent
    with ThreadPoolExecutor(max(1, max_in_flight), thread_name_prefix="rollback") as pool:
        steps = list(pool.map(lambda step: _apply_step(api, step, refused), plan.product_steps))
    failed = {result.cms_id for result in steps if result.outcome != DONE}
    resets = [reset for reset in plan.row_resets if reset.target.cms_id not in failed]
    if resets:
        state.write_back([reset.write_back() for reset in resets])
    steps += [
        _reset_result(reset, plan.resets_in, DONE)
        if reset.target.cms_id not in failed
        else _reset_result(reset, plan.resets_in, SKIPPED, "its product was not rolled back")
        for reset in plan.row_resets
    ]
    return RollbackReport(
        dry_run=False, steps=steps, unchanged=plan.unchanged, resets_in=plan.resets_in
    )


def _apply_step(api: StripeApi, step: ProductStep, refused: threading.Event) -> StepResult:
    if step.kind == MISSING:
        return _step_result(step, FAILED, "the product is not in Stripe any more")
    if refused.is_set():
        return _step_result(step, SKIPPED, "Stripe refused the key")
    product_id = step.target.product_id
    try:
        for price in step.reactivate_prices:
            params = {"active": True}
            api.update_price(price, params, step.key("reactivate-price", price, params))
        if step.update:
            api.update_product(
                product_id, step.update, step.key("update-product", product_id, step.update)
            )
        for price in step.archive_prices:
            params = {"active": False}
            api.update_price(price, params, step.key("archive-price", price, params))
        for price, params in step.restore_prices:
            api.update_price(price, params, step.key("restore-price", price, params))
    except StripeFailure as failure:
        if failure.kind is ErrorKind.FATAL:
            refused.set()
        return _step_result(step, FAILED, failure.message)
    return _step_result(step, DONE)


def _step_result(step: ProductStep, outcome: str, error: str | None = None) -> StepResult:
    return StepResult(
        step.target.cms_id,
        step.target.product_id,
        step.kind,
        step.describe(),
        outcome,
        step.restores_price,
        error,
    )


def _reset_result(
    reset: RowReset, resets_in: str, outcome: str, error: str | None = None
) -> StepResult:
    detail = "restore " + ", ".join(reset.changed)
    return StepResult(reset.target.cms_id, resets_in, RESET, detail, outcome, error=error)


def roll_back(
    backups: list[Backup],
    api: StripeApi,
    state: StateStore,
    current_rows: Mapping[str, dict],
    *,
    catalog_columns: bool = True,
    dry_run: bool = False,
    max_in_flight: int = 4,
) -> RollbackReport:
    """Plan from the backups and the state now, then apply the plan (unless a dry run).
    `catalog_columns`: whether the catalog table has the write-back columns."""
    targets = rollback_targets(backups)
    current = {product["id"]: product for product in api.list_products(sorted(targets.products))}
    priced = [id_ for id_, target in targets.products.items() if target.prices_before is not None]
    reads = read_prices_of(api, sorted(priced), max_in_flight=max_in_flight)
    if reads.failures:
        raise next(iter(reads.failures.values()))
    plan = plan_rollback(
        targets, current, current_rows, reads.prices, catalog_columns=catalog_columns
    )
    if dry_run:
        return plan.report()
    return apply_rollback(plan, api, state, max_in_flight=max_in_flight)


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackReport:
    dry_run: bool
    steps: list[StepResult]
    unchanged: int
    resets_in: str = CATALOG  # where the rows' resets go: CATALOG or SYNC_STATE

    @property
    def counts(self) -> dict[str, int]:
        """What was done (a dry run: what would be), and the steps that failed."""
        taken = [s for s in self.steps if s.outcome in (PLANNED, DONE)]
        return {
            "archived": sum(s.kind == ARCHIVE for s in taken),
            "restored": sum(s.kind == RESTORE for s in taken),
            "prices_restored": sum(s.restores_price for s in taken),
            "catalog_rows_reset": sum(s.kind == RESET for s in taken),
            "unchanged": self.unchanged,
            "failed": sum(s.outcome == FAILED for s in self.steps),
        }

    @property
    def unfinished(self) -> list[StepResult]:
        """The steps that failed or were skipped."""
        return [step for step in self.steps if step.outcome not in (PLANNED, DONE)]

    def to_json(self) -> dict:
        return {**asdict(self), "counts": self.counts}

    def to_markdown(self, row_limit: int = 200) -> str:
        title = "# Rollback plan (dry run: nothing written)" if self.dry_run else "# Rollback"
        resets = "catalog rows reset" if self.resets_in == CATALOG else "sync states reset"
        lines = [
            title,
            "",
            f"| archived | restored | prices restored | {resets} | unchanged | failed |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            "| " + " | ".join(str(self.counts[name]) for name in COUNTS) + " |",
            "",
        ]
        if not self.steps:
            return "\n".join([*lines, "Nothing to roll back.", ""])
        lines += ["| catalog id | object | step | result |", "| --- | --- | --- | --- |"]
        for step in self.steps[:row_limit]:
            result = step.outcome + (f": {step.error}" if step.error else "")
            lines.append(
                f"| {table_cell(step.cms_id)} | {step.subject} | {table_cell(step.detail)} | {table_cell(result)} |"
            )
        if len(self.steps) > row_limit:
            lines.append(f"\n… and {counted(len(self.steps) - row_limit, 'more step')}.")
        return "\n".join(lines) + "\n"


# --- helpers ----------------------------------------------------------------------------


def _metadata(product: dict | None) -> dict:
    return dict((product or {}).get("metadata") or {})


def _price_id(price: dict | str | None) -> str | None:
    return price.get("id") if isinstance(price, dict) else price


def _moment(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _comparable(column: str, value: object) -> object:
    return _moment(value) if column == "synced_at" else value
