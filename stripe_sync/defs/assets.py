"""The five assets of a migration, per batch of catalog rows, and the report over all."""

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster._core.errors import DagsterExecutionInterruptedError  # interrupts: no public API
from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt
from dagster_pandera import pandera_schema_to_dagster_type
from pydantic import Field

from stripe_sync.catalog import WRITE_BACK_COLUMNS, Catalog, WriteBack
from stripe_sync.catalog.frames import catalog_frame
from stripe_sync.core.applier import Applier, ApplyStopped, Outcome, Progress, Result
from stripe_sync.core.backups import Backup, BackupStore, now_iso
from stripe_sync.core.checkpoints import Checkpoint, CheckpointStore
from stripe_sync.core.errors import ErrorKind, StripeFailure
from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.core.planner import Action, ActionKind, PlanOptions
from stripe_sync.core.report import RESULTS, build_report
from stripe_sync.core.schemas import CatalogRows, ValidatedProducts
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.validation import plan_frame, planning_inputs, records, validate_batch
from stripe_sync.defs.partitions import batch_partitions, batches_for
from stripe_sync.defs.resources import (
    BackupResource,
    CatalogResource,
    CheckpointResource,
    OutcomeLedger,
    StripeResource,
    SyncSettings,
    user_errors,
)

PROGRESS_EVERY_S = 2.0
# A backfill of many batches runs them 10 to a run, as `stripe-sync migrate` does: a
# million products make 100 runs, not 1,000.
BATCHES_PER_RUN = 10
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=BATCHES_PER_RUN)
# Backfill policies are beta in Dagster 1.13; this project relies on them knowingly.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
STOPS_MIGRATION = "stops_migration"  # metadata of a step failure after which no run may start
# Unlike `eager()`, which waits until every batch exists, rebuild after any batch changed.
REPORT_AFTER_ANY_BATCH = (
    dg.AutomationCondition.any_deps_updated()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)

with warnings.catch_warnings():  # dagster-pandera's converter is marked beta
    warnings.simplefilter("ignore", dg.BetaWarning)
    CatalogRowsType = pandera_schema_to_dagster_type(CatalogRows)
    ValidatedProductsType = pandera_schema_to_dagster_type(ValidatedProducts)


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    io_manager_key="batch_frames",
    dagster_type=CatalogRowsType,
    kinds={"supabase"},
)
def supabase_products(context: dg.AssetExecutionContext, catalog: CatalogResource) -> pd.DataFrame:
    """The batch's catalog rows as read: the CMS's columns and the sync state written back."""
    rows = []
    with user_errors(), catalog.opened() as source:
        for batch in batches_for(context.instance, context.partition_keys):
            batch_rows = [
                {"batch": batch.key, **row} for row in source.read_rows(batch.lower, batch.upper)
            ]
            rows += batch_rows
            context.log.info(f"batch {batch.key}: {len(batch_rows)} rows, {batch.describe()}")
    raw = catalog_frame(rows)
    context.add_output_metadata({"dagster/row_count": len(raw), "catalog": source.describe()})
    return raw


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    io_manager_key="batch_frames",
    dagster_type=ValidatedProductsType,
    kinds={"pandas"},
)
def validated_products(
    context: dg.AssetExecutionContext, supabase_products: pd.DataFrame, settings: SyncSettings
) -> pd.DataFrame:
    """Every row checked and transformed for Stripe; rows that can't be are quarantined with reasons."""
    validated = validate_batch(supabase_products, settings.validation_rules())
    invalid = validated[validated["reasons"].map(len) > 0]
    context.add_output_metadata(
        {
            "dagster/row_count": len(validated),
            "valid": len(validated) - len(invalid),
            "invalid": len(invalid),
            "quarantined": dg.MetadataValue.md(
                "\n".join(
                    ["| catalog id | reasons |", "| --- | --- |"]
                    + [
                        f"| {row.cms_id} | {'; '.join(row.reasons)} |"
                        for row in invalid.head(50).itertuples()
                    ]
                )
            ),
        }
    )
    return validated


class SyncRunConfig(dg.Config):
    """Options of one run (in the launchpad: `ops: stripe_products: config:`)."""

    dry_run: bool = Field(
        default=False,
        description="Plan only: the plan is an observation of stripe_products; nothing is "
        "materialized, and no Stripe or catalog request is made.",
    )
    force_resync: bool = Field(
        default=False,
        description="Re-send every product's fields and check its price, whatever the hashes say.",
    )
    no_checkpoint: bool = Field(
        default=False,
        description="Trust no stored sync state: read every synced product from Stripe and "
        "write only what differs.",
    )

    def plan_options(self, settings: SyncSettings) -> PlanOptions:
        return PlanOptions(
            force_resync=self.force_resync,
            use_checkpoints=not self.no_checkpoint,
            mirror=settings.mirror,
        )


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    pool="stripe_writes",
    kinds={"stripe"},
    output_required=False,  # a dry run materializes nothing
)
def stripe_products(
    context: dg.AssetExecutionContext,
    config: SyncRunConfig,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    ledger: OutcomeLedger,
    checkpoints: CheckpointResource,
    backups: BackupResource,
    settings: SyncSettings,
) -> Iterator[dg.MaterializeResult]:
    """Stripe products of the batch, each created with its default price in one request,
    updated with only what changed, or left alone; products of rows deleted from the catalog
    archived in mirror mode. Backed up before any write; Stripe ids written back to the
    catalog."""
    started = time.monotonic()
    store = checkpoints.store()
    plan = plan_frame(
        validated_products, context.partition_keys, store, config.plan_options(settings)
    )
    actions = [action for batch_actions in plan.values() for action in batch_actions]
    batch_of = {
        action.cms_id: batch for batch, batch_actions in plan.items() for action in batch_actions
    }
    desired = {action.cms_id: action.desired for action in actions if action.desired is not None}
    summary = PlanSummary()
    for batch, batch_actions in plan.items():
        summary.add(batch, batch_actions)
    planned = {"dagster/row_count": summary.products, **summary.changes}
    if config.dry_run:
        # An observation, not a materialization: nothing downstream runs (no prices step, no
        # verification reading Stripe), and the batch's last sync stays its latest.
        context.log.info(f"dry run: {planned}")
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={
                    **planned,
                    "dry_run": True,
                    "plan": dg.MetadataValue.md(summary.to_markdown()),
                },
            )
        )
        return
    with user_errors(), catalog.opened() as source, contextlib.closing(stripe.api()) as api:
        context.log.info(f"Stripe {api.mode} mode at {api.api_base}: {len(actions)} products")
        try:
            backup_paths = [
                str(path)
                for batch, batch_actions in plan.items()
                if (
                    path := _back_up(
                        backups.store(), api, context, batch, batch_actions, validated_products
                    )
                )
            ]
        except StripeFailure as failure:
            if failure.kind is not ErrorKind.FATAL:
                raise
            # The backup's read is the run's first request: a refused key stops it here.
            _raise_if_stopped(
                ApplyStopped(f"Stripe refused the key ({failure.message})", [], fatal=True)
            )
        applier = Applier(
            api, max_in_flight=stripe.in_flight(api), on_progress=_progress_logger(context)
        )
        stopped = None
        try:
            outcomes = applier.apply_products(actions)
        except ApplyStopped as error:
            outcomes, stopped = error.finished, error
        settled = [o for o in outcomes if not o.price_pending]
        with _uninterrupted():
            write_backs = _write_back(source, settled, validated_products)
            _record_checkpoints(store, batch_of, desired, settled)
    _save_ledger(
        ledger,
        "stripe_products",
        context,
        api.mode,
        outcomes,
        batch_of,
        validated_products,
        started,
    )
    _raise_if_stopped(stopped)
    yield dg.MaterializeResult(
        metadata={
            **_summary(outcomes, write_backs, started),
            "backups": dg.MetadataValue.json(backup_paths),
        }
    )


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=[stripe_products],
    pool="stripe_writes",
    kinds={"stripe"},
)
def stripe_prices(
    context: dg.AssetExecutionContext,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    ledger: OutcomeLedger,
    checkpoints: CheckpointResource,
) -> dg.MaterializeResult:
    """Stripe prices of the batch: a new default price where the amount or currency changed
    (created, made the default, the old one archived). The batch fails if any product did."""
    started = time.monotonic()
    desired = {inputs[0]: inputs[1] for inputs in planning_inputs(validated_products)}
    records = {
        batch: record
        for batch in context.partition_keys
        if (record := _this_run(ledger.load("stripe_products", batch), context)) is not None
    }
    batch_of = {o["cms_id"]: batch for batch, record in records.items() for o in record["outcomes"]}
    product_outcomes = [
        Outcome(**{**o, "action": ActionKind(o["action"])})
        for record in records.values()
        for o in record["outcomes"]
    ]
    pending = [(o, desired[o.cms_id]) for o in product_outcomes if o.price_pending]
    with user_errors(), catalog.opened() as source, contextlib.closing(stripe.api()) as api:
        stopped = None
        try:
            price_outcomes = Applier(api, max_in_flight=stripe.in_flight(api)).apply_prices(pending)
        except ApplyStopped as error:
            price_outcomes, stopped = error.finished, error
        with _uninterrupted():
            write_backs = _write_back(source, price_outcomes, validated_products)
            _record_checkpoints(checkpoints.store(), batch_of, desired, price_outcomes)
    repriced = {o.cms_id: o for o in price_outcomes}
    final = [
        _with_requests(repriced[o.cms_id], o.requests) if o.cms_id in repriced else o
        for o in product_outcomes
    ]
    if records:  # none in a dry run: the products step wrote nothing
        _save_ledger(
            ledger, "stripe_prices", context, api.mode, final, batch_of, validated_products, started
        )
    _raise_if_stopped(stopped)
    failed = [o for o in final if o.result == Result.FAILED]
    if failed:
        examples = "; ".join(f"{o.cms_id}: {o.error}" for o in failed[:3])
        raise dg.Failure(
            f"{len(failed)} of {len(final)} products failed (e.g. {examples}); the rest synced and were "
            "written back. Rerun the failed batches.",
            metadata={"failed": len(failed)},
        )
    return dg.MaterializeResult(metadata=_summary(price_outcomes, write_backs, started))


@dg.asset(deps=[stripe_prices], kinds={"stripe"}, automation_condition=REPORT_AFTER_ANY_BATCH)
def migration_report(
    context: dg.AssetExecutionContext, ledger: OutcomeLedger, settings: SyncSettings
) -> dg.MaterializeResult:
    """What the latest run of every batch did: created, updated, unchanged, invalid and failed
    products, failures with reasons, Stripe requests and time; also saved as JSON and Markdown."""
    records = [
        record
        for key in context.instance.get_dynamic_partitions(batch_partitions.name)
        if (record := _final_record(ledger, key)) is not None
    ]
    mode = records[0]["mode"] if records else "unknown"
    report = build_report(mode, records)
    markdown = report.to_markdown()
    paths = _save_report(Path(settings.reports_dir), report.to_json(), markdown)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.products,
            **{name: count for name, count in report.counts.items()},
            "stripe_requests": report.stripe_requests,
            "report": dg.MetadataValue.md(markdown),
            "json": dg.MetadataValue.path(str(paths[0])),
            "markdown": dg.MetadataValue.path(str(paths[1])),
        }
    )


# --- helpers ----------------------------------------------------------------------------


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """A write-back runs to its end: a stop signal arriving meanwhile takes effect after it."""
    with capture_interrupts():
        yield
        interrupted = check_captured_interrupt()
    if interrupted:
        raise DagsterExecutionInterruptedError()


def _raise_if_stopped(stopped: ApplyStopped | None) -> None:
    """After the finished work was written back: pass an interruption on, or fail the step."""
    if stopped is None:
        return
    if stopped.__cause__ is not None:
        raise stopped.__cause__
    advice = " Check STRIPE_SECRET_KEY and its permissions." if stopped.fatal else ""
    raise dg.Failure(
        f"{stopped}: the run stopped; finished products were written back.{advice}",
        # run_migration starts no further run after this one (the key is refused for all).
        metadata={STOPS_MIGRATION: True} if stopped.fatal else None,
    )


def _progress_logger(context: dg.AssetExecutionContext):
    last = [0.0]

    def log(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or progress.done == progress.total:
            last[0] = now
            context.log.info(progress.describe())

    return log


def _write_back(source: Catalog, outcomes: list[Outcome], validated: pd.DataFrame) -> int:
    """Write what changed for these rows in one request; returns the requests made."""
    # First row per id: rows sharing an id (quarantined as duplicates) share one write-back.
    states = {row["cms_id"]: row for row in reversed(records(validated))}
    now = datetime.now(UTC)
    write_backs = {}
    for outcome in outcomes:
        before = states.get(outcome.cms_id)
        if before is None:  # deleted from the catalog: no row to write to
            continue
        synced = outcome.sync_status == "synced"
        row = WriteBack(
            id=outcome.cms_id,
            stripe_product_id=outcome.stripe_product_id or before["stripe_product_id"],
            stripe_price_id=outcome.stripe_price_id or before["stripe_price_id"],
            sync_status=outcome.sync_status,
            sync_error=outcome.error,
            synced_at=now,
            sync_hash=outcome.sync_hash if synced else before["sync_hash"],
        )
        unchanged = all(
            getattr(row, column) == before[column]
            for column in (
                "stripe_product_id",
                "stripe_price_id",
                "sync_status",
                "sync_error",
                "sync_hash",
            )
        )
        if not unchanged:
            write_backs.setdefault(row.id, row)
    return source.write_back(list(write_backs.values())) if write_backs else 0


_NOTHING_NEW = (ActionKind.UNCHANGED, ActionKind.ORPHANED)  # their checkpoints stay as they are


def _record_checkpoints(
    store: CheckpointStore,
    batch_of: dict[str, str],
    desired: dict[str, DesiredProduct],
    outcomes: list[Outcome],
) -> None:
    """What the outcomes made each row in Stripe, for the next plan to trust."""
    changes: dict[str, dict[str, Checkpoint]] = {}
    for outcome in outcomes:
        batch = batch_of[outcome.cms_id]
        if outcome.result == Result.ARCHIVED:
            kept = store.load(batch)[outcome.cms_id]
            changes.setdefault(batch, {})[outcome.cms_id] = replace(kept, removed=True)
        elif outcome.sync_status == "synced" and outcome.action not in _NOTHING_NEW:
            checkpoint = Checkpoint.of(desired[outcome.cms_id], outcome.stripe_price_id)
            changes.setdefault(batch, {})[outcome.cms_id] = checkpoint
    for batch, batch_changes in changes.items():
        store.record(batch, batch_changes)


def _back_up(
    store: BackupStore,
    api: StripeApi,
    context: dg.AssetExecutionContext,
    batch: str,
    actions: list[Action],
    validated: pd.DataFrame,
) -> Path | None:
    """Save the batch's rows and Stripe products that the actions may change, before they do."""
    writing = [action for action in actions if action.writes]
    if not writing:
        return None
    rows = {row["cms_id"]: row for row in reversed(records(validated))}
    product_ids = [
        action.desired.stripe_id if action.desired else action.state.stripe_product_id
        for action in writing
    ]
    # Products to create are read too (1 request per 100): after `reset --catalog-columns`
    # a "create" may meet a product that existed before this run, which rollback must keep.
    found = {product["id"]: product for product in api.list_products(product_ids)}
    backup = Backup(
        run_id=context.run.run_id,
        batch=batch,
        taken_at=now_iso(),
        catalog_rows=[
            {"id": action.cms_id, **_write_back_columns(rows[action.cms_id])}
            for action in writing
            if action.cms_id in rows
        ],
        # None: not in Stripe before this run (rollback archives what the run made of it).
        stripe_products={product_id: found.get(product_id) for product_id in product_ids},
        actions={action.cms_id: action.change for action in writing},
    )
    return store.save(backup)


def _write_back_columns(row: dict) -> dict:
    values = {column: row[column] for column in WRITE_BACK_COLUMNS}
    synced_at = values["synced_at"]
    values["synced_at"] = None if pd.isna(synced_at) else pd.Timestamp(synced_at).isoformat()
    return values


def _summary(outcomes: list[Outcome], write_backs: int, started: float) -> dict:
    results = dict.fromkeys(RESULTS, 0)
    for outcome in outcomes:
        results[outcome.result] += 1
    return {
        **results,
        "stripe_requests": sum(o.requests for o in outcomes),
        "catalog_write_back_requests": write_backs,
        "seconds": round(time.monotonic() - started, 3),
    }


def _save_ledger(
    ledger: OutcomeLedger,
    asset: str,
    context: dg.AssetExecutionContext,
    mode: str,
    outcomes: list[Outcome],
    batch_of: dict[str, str],
    validated: pd.DataFrame,
    started: float,
) -> None:
    seconds = time.monotonic() - started
    for batch in context.partition_keys:
        mine = [o for o in outcomes if batch_of[o.cms_id] == batch]
        rows = validated[validated["batch"] == batch]
        ledger.save(
            asset,
            batch,
            {
                "run_id": context.run.run_id,
                "batch": batch,
                "mode": mode,
                "requests": sum(o.requests for o in mine),
                "seconds": seconds * len(mine) / max(len(outcomes), 1),
                "outcomes": [asdict(o) for o in mine],
                "warnings": [
                    {"cms_id": cms_id, "warning": warning}
                    for cms_id, warnings in zip(rows["cms_id"], rows["warnings"], strict=True)
                    for warning in warnings
                ],
            },
        )


def _this_run(record: dict | None, context: dg.AssetExecutionContext) -> dict | None:
    return record if record is not None and record["run_id"] == context.run.run_id else None


def _with_requests(outcome: Outcome, earlier_requests: int) -> Outcome:
    return replace(outcome, requests=outcome.requests + earlier_requests)


def _final_record(ledger: OutcomeLedger, batch: str) -> dict | None:
    """The prices step's record when it ran in the products step's run; else the products one."""
    products = ledger.load("stripe_products", batch)
    prices = ledger.load("stripe_prices", batch)
    if products is None:
        return prices
    if prices is not None and prices["run_id"] == products["run_id"]:
        return {**prices, "seconds": prices["seconds"] + products["seconds"]}
    return products


def _save_report(reports_dir: Path, report_json: dict, markdown: str) -> tuple[Path, Path]:
    reports_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path, md_path = (
        reports_dir / f"migration_report_{stamp}.json",
        reports_dir / f"migration_report_{stamp}.md",
    )
    json_path.write_text(json.dumps(report_json, indent=2))
    md_path.write_text(markdown)
    for path, latest in (
        (json_path, "migration_report_latest.json"),
        (md_path, "migration_report_latest.md"),
    ):
        (reports_dir / latest).write_text(path.read_text())
    return json_path, md_path
