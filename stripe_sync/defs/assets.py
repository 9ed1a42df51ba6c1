"""The five assets of a migration, per batch of catalog rows, and the report over all.

Each is glue: the work is `core/` (validation, the plan, `BatchSync`, the report).
"""

import time
import warnings
from collections.abc import Collection
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type
from pydantic import Field

from stripe_sync.core.adoption import AdoptionReads, settled_plan
from stripe_sync.core.applier import Progress
from stripe_sync.core.contract import catalog_frame
from stripe_sync.core.ledger import final_record
from stripe_sync.core.mapping import FieldMapping
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.core.planner import PlanOptions
from stripe_sync.core.progress import RunProgress
from stripe_sync.core.report import Report, build_report, name_cell, save_report, table_cell
from stripe_sync.core.schemas import CatalogRows, ValidatedProducts
from stripe_sync.core.state import StateStore, TrackedCatalog
from stripe_sync.core.sync import BatchSync, StepResult, deliver_kept
from stripe_sync.core.validation import validate_batch
from stripe_sync.core.wording import counted
from stripe_sync.defs.dagster_compat import interrupts_deferred
from stripe_sync.defs.outcomes import RunOutcome, record_outcome, step_outcome
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import (
    CatalogResource,
    PipelineSettings,
    StripeResource,
)
from stripe_sync.defs.undelivered import InstanceUndelivered

PROGRESS_EVERY_S = 2.0
# A backfill of many batches runs them 10 to a run, as `stripe-sync migrate` does: a
# million products make 100 runs, not 1,000.
BATCHES_PER_RUN = 10
# The Dagster pool of every step that writes to Stripe (deploy/dagster.yaml limits it).
STRIPE_WRITES_POOL = "stripe_writes"
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=BATCHES_PER_RUN)
# Backfill policies are beta in Dagster 1.13; this project relies on them knowingly.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
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
)
def supabase_products(context: dg.AssetExecutionContext, catalog: CatalogResource) -> pd.DataFrame:
    """The batch's catalog rows as read: the CMS's columns and the sync state written back."""
    rows, read, unknown = [], [], []
    with step_outcome(context), catalog.opened() as source:
        undelivered = InstanceUndelivered(context)
        if delivered := deliver_kept(source.state, undelivered, context.partition_keys):
            context.log.info(
                f"recorded the results of {counted(delivered, 'batch')} an earlier run kept "
                "during a catalog outage"
            )
        for batch in context.partition_keys:
            batch_rows, orphans = source.read_batch(batch)
            rows += batch_rows
            unknown += orphans
            read.append(f"batch {batch}: {counted(len(batch_rows), 'row')}")
    if unknown:
        read.append(
            f"{counted(len(unknown), 'price row')} naming a product deleted from the catalog "
            f"(left out): {', '.join(str(price['id']) for price in unknown[:20])}"
        )
    # One message for the run's batches: each message is a write to the run's event log.
    context.log.info("\n".join(read))
    raw = catalog_frame(rows)
    context.add_output_metadata(
        {
            "dagster/row_count": len(raw),
            "catalog": source.describe(),
            **source.retries.as_metadata("catalog"),
            **({"prices without a product": _price_table(unknown)} if unknown else {}),
        }
    )
    return raw


def _price_table(prices: list[dict]) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        "\n".join(
            ["| price id | product id |", "| --- | --- |"]
            + [f"| {price['id']} | {price['product_id']} |" for price in prices[:50]]
        )
    )


class ValidationRunConfig(dg.Config):
    """Options of one run's validation (in the launchpad: `ops: validated_products: config:`)."""

    skip_validation: bool | None = Field(
        default=None,
        description="Skip the business rules (minimum, maximum, free) in this run; unset: the "
        "setting validation.skip_validation.",
    )


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    io_manager_key="batch_frames",
    dagster_type=ValidatedProductsType,
    kinds={"pandas"},
)
def validated_products(
    context: dg.AssetExecutionContext,
    config: ValidationRunConfig,
    supabase_products: pd.DataFrame,
    settings: PipelineSettings,
) -> pd.DataFrame:
    """Every row checked and transformed for Stripe; rows that can't be are quarantined with reasons."""
    rules = settings.validation_rules(skip_validation=config.skip_validation)
    validated = validate_batch(supabase_products, rules)
    invalid = validated[validated["reasons"].map(len) > 0]
    price_reasons = [reason for reasons in validated["price_reasons"] for reason in reasons]
    context.add_output_metadata(
        {
            "dagster/row_count": len(validated),
            "valid": len(validated) - len(invalid),
            "invalid": len(invalid),
            **(
                {
                    "invalid prices": len(price_reasons),
                    "quarantined prices": dg.MetadataValue.md("\n".join(price_reasons[:50])),
                }
                if price_reasons
                else {}
            ),
            "quarantined": dg.MetadataValue.md(
                "\n".join(
                    ["| catalog id | name | reasons |", "| --- | --- | --- |"]
                    + [
                        f"| {table_cell(row.cms_id)} | {name_cell(row.name)} | "
                        f"{table_cell('; '.join(row.reasons))} |"
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
    mirror: bool | None = Field(
        default=None,
        description="Archive the Stripe products of rows deleted from the catalog in this run; "
        "unset: the setting sync.mirror.",
    )

    def plan_options(self, settings: PipelineSettings) -> PlanOptions:
        return PlanOptions(
            force_resync=self.force_resync,
            use_checkpoints=not self.no_checkpoint,
            mirror=settings.mirror if self.mirror is None else self.mirror,
            adopt_metadata_key=settings.adopt_metadata_key,
        )


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    pool=STRIPE_WRITES_POOL,
    kinds={"stripe"},
    output_required=False,  # a dry run materializes nothing
)
def stripe_products(
    context: dg.AssetExecutionContext,
    config: SyncRunConfig,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    settings: PipelineSettings,
    progress: dg.ResourceParam[RunProgress],
):
    """Stripe products of the batch, each created with its default price in one request,
    updated with only what changed, or left alone; products of rows deleted from the catalog
    archived in mirror mode. Backed up before any write; Stripe ids written back to the
    catalog."""
    options = config.plan_options(settings)
    if config.dry_run:
        with catalog.opened() as source, ExitStack() as stack:
            reads = AdoptionReads(lambda: stack.enter_context(stripe.opened(source.retries)))
            mapping = catalog.field_mapping()
            _observe_plan(context, validated_products, source.state, options, mapping, reads)
        return
    with step_outcome(context), catalog.opened() as source, stripe.opened(source.retries) as api:
        # Again here: a run retried from its failed step starts at this one.
        deliver_kept(source.state, InstanceUndelivered(context), context.partition_keys)
        context.log.info(f"Stripe {api.mode} mode at {api.api_base}")
        result = _batch_sync(context, api, source, stripe, progress).sync_products(
            validated_products, context.partition_keys, options
        )
        progress.run_progressed(result.tally())
        _stop_or_fail(context, result)
    yield dg.MaterializeResult(
        metadata={
            **result.summary(),
            **source.retries.as_metadata("catalog"),
            "backups": dg.MetadataValue.json(result.backups),
        }
    )


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    deps=[stripe_products],
    pool=STRIPE_WRITES_POOL,
    kinds={"stripe"},
)
def stripe_prices(
    context: dg.AssetExecutionContext,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    progress: dg.ResourceParam[RunProgress],
) -> dg.MaterializeResult:
    """Stripe prices of the batch: a new default price where the amount or currency changed
    (created, made the default, the old one archived). The batch fails if any product did."""
    with step_outcome(context), catalog.opened() as source, stripe.opened(source.retries) as api:
        result = _batch_sync(context, api, source, stripe, progress).sync_prices(
            validated_products, context.partition_keys
        )
        if result.final:  # else no products step of this run recorded its batches
            progress.run_progressed(result.tally())
        _stop_or_fail(context, result)
    if result.failed:
        examples = "; ".join(f"{o.cms_id}: {o.error}" for o in result.failed[:3])
        message = (
            f"{len(result.failed)} of {counted(len(result.final), 'product')} failed (e.g. "
            f"{examples}); "
            "the rest synced and were written back. Rerun the failed batches."
        )
        record_outcome(context, RunOutcome.FAILED_BATCHES, message)
        raise dg.Failure(message, metadata={"failed": len(result.failed)})
    return dg.MaterializeResult(
        metadata={**result.summary(), **source.retries.as_metadata("catalog")}
    )


@dg.asset(deps=[stripe_prices], kinds={"stripe"}, automation_condition=REPORT_AFTER_ANY_BATCH)
def migration_report(
    context: dg.AssetExecutionContext, catalog: CatalogResource, settings: PipelineSettings
) -> dg.MaterializeResult:
    """What the latest run of every batch did: created, updated, unchanged, invalid and failed
    products, failures with reasons, Stripe requests and time; also saved as JSON and Markdown."""
    return dg.MaterializeResult(metadata=report_metadata(context.instance, catalog, settings))


def latest_report(
    instance: dg.DagsterInstance,
    catalog: CatalogResource,
    *,
    of_runs: Collection[str] | None = None,
) -> Report:
    """What the latest run of every registered batch did; `of_runs`: only the batches whose
    latest run is one of these."""
    with catalog.opened() as source:
        records = [
            record
            for key in instance.get_dynamic_partitions(batch_partitions.name)
            if (record := final_record(source.state, key)) is not None
            and (of_runs is None or record["run_id"] in of_runs)
        ]
    report = build_report(records[0]["mode"] if records else "unknown", records)
    # An empty filter would be every run; a run still going, or deleted, tells no time.
    runs = instance.get_run_records(dg.RunsFilter(run_ids=report.run_ids)) if report.run_ids else []
    return report.with_run_spans(
        (run.start_time, run.end_time) for run in runs if run.start_time and run.end_time
    )


def report_metadata(
    instance: dg.DagsterInstance, catalog: CatalogResource, settings: PipelineSettings
) -> dict:
    """The report of every registered batch, saved as JSON and Markdown: the metadata of a
    `migration_report` materialization."""
    report = latest_report(instance, catalog)
    json_path, markdown_path = save_report(Path(settings.reports_dir), report)
    timings = {
        "run_seconds": report.run_seconds,
        "products_per_s": report.products_per_s,
        "stripe_requests_per_product": report.stripe_requests_per_product,
    }
    return {
        "dagster/row_count": report.products,
        **report.counts,
        **(
            {f"prices_{name}": count for name, count in report.prices.items()}
            if any(report.prices.values())
            else {}
        ),
        "stripe_requests": report.stripe_requests,
        # Floats, so the UI plots them across materializations (a regression shows).
        **{
            name: dg.MetadataValue.float(round(value, 2))
            for name, value in timings.items()
            if value is not None
        },
        "report": dg.MetadataValue.md(report.to_markdown()),
        "json": dg.MetadataValue.path(str(json_path)),
        "markdown": dg.MetadataValue.path(str(markdown_path)),
    }


# --- helpers ----------------------------------------------------------------------------


def _batch_sync(
    context, api, source: TrackedCatalog, stripe: StripeResource, progress: RunProgress
) -> BatchSync:
    state, state_retries = source.state, source.retries
    return BatchSync(
        api,
        state,
        context.run.run_id,
        max_in_flight=stripe.in_flight(api),
        on_progress=_progress_reporter(context, progress),
        shielded=interrupts_deferred,
        undelivered=InstanceUndelivered(context),
        catalog_retries=state_retries,
    )


def _fail_if_undelivered(context: dg.AssetExecutionContext, result: StepResult) -> None:
    """The catalog was down for longer than the retry deadline after Stripe's work: the
    results are kept in the run's event log, the batch fails and says so."""
    if result.undelivered is None:
        return
    message = (
        f"The catalog was unreachable ({result.undelivered}): the Stripe results of "
        f"{counted(len(result.applied), 'product')} are kept in this run and written back by "
        "the next run, before anything else and with no Stripe request for them."
    )
    record_outcome(context, RunOutcome.FAILED_BATCHES, message)
    raise dg.Failure(message, metadata=result.summary())


def _observe_plan(
    context: dg.AssetExecutionContext,
    validated: pd.DataFrame,
    state: StateStore,
    options: PlanOptions,
    mapping: FieldMapping,
    reads: AdoptionReads,
) -> None:
    """A dry run: the plan as an observation, not a materialization. Nothing downstream runs
    (no prices step, no verification reading Stripe), and the batch's last sync stays its
    latest. Stripe is read only where a row may adopt a product (`reads`)."""
    plan = settled_plan(validated, context.partition_keys, state, options, reads)
    summary = PlanSummary(mapping=mapping)
    for batch, actions in plan.items():
        summary.add(batch, actions)
    planned = {"dagster/row_count": summary.products, **summary.changes}
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


def _stop_or_fail(context: dg.AssetExecutionContext, result: StepResult) -> None:
    """After the finished work was written back (or kept for the next run): record why the run
    stops, then pass an interruption on, or fail the step."""
    stopped = result.stopped
    if stopped is None or isinstance(stopped.__cause__, Exception):
        # No stop, or an error (a database away past its deadline): the Stripe results kept
        # for the next run are what the step says first.
        _fail_if_undelivered(context, result)
    if stopped is None:
        return
    if stopped.fatal:
        message = (
            f"{stopped}: the run stopped; finished products were written back. Check "
            "STRIPE_SECRET_KEY and its permissions."
        )
        record_outcome(context, RunOutcome.KEY_REFUSED, message)
        raise dg.Failure(message)
    if isinstance(stopped.__cause__, Exception):  # an error, not a stop: the step fails of it
        raise stopped.__cause__
    record_outcome(context, RunOutcome.STOPPED, str(stopped))
    if stopped.__cause__ is not None:
        raise stopped.__cause__
    raise dg.Failure(f"{stopped}: the run stopped; finished products were written back.")


def _progress_reporter(context: dg.AssetExecutionContext, run_progress: RunProgress):
    """Every row settled goes to `run_progress`; a log line every few seconds (each is a
    write to the run's event log)."""
    last = [0.0]

    def report(progress: Progress) -> None:
        run_progress.run_progressed(progress.settled)
        now = time.monotonic()
        if progress.done and (now - last[0] >= PROGRESS_EVERY_S or progress.done == progress.total):
            last[0] = now
            context.log.info(progress.describe())

    return report
