"""The five assets of a migration, per batch of catalog rows, and the report over all.

Each is glue: the work is `core/` (validation, the plan, `BatchSync`, the report).
"""

import warnings
from contextlib import ExitStack

import dagster as dg
import pandas as pd
from dagster_pandera import pandera_schema_to_dagster_type

from stripe_sync.core.adoption import AdoptionReads
from stripe_sync.core.contract import catalog_frame
from stripe_sync.core.progress import RunProgress
from stripe_sync.core.report import name_cell, table_cell
from stripe_sync.core.schemas import CatalogRows, ValidatedProducts
from stripe_sync.core.sync import deliver_kept
from stripe_sync.core.validation import validate_batch
from stripe_sync.core.wording import counted
from stripe_sync.defs.outcomes import RunOutcome, record_outcome, step_outcome
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource, StripeResource
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.defs.sync_steps import batch_sync, observe_plan, stop_or_fail
from stripe_sync.defs.undelivered import InstanceUndelivered
from stripe_sync.factory import validation_rules
from stripe_sync.settings.model import Settings

PROGRESS_EVERY_S = 2.0
# A backfill of many batches runs them 10 to a run, as `stripe-sync migrate` does: a
# million products make 100 runs, not 1,000.
BATCHES_PER_RUN = 10
# The Dagster pool of every step that writes to Stripe (deploy/dagster.yaml limits it).
STRIPE_WRITES_POOL = "stripe_writes"
BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=BATCHES_PER_RUN)
# Backfill policies are beta in Dagster 1.13; this project relies on them knowingly.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

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


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    io_manager_key="batch_frames",
    dagster_type=ValidatedProductsType,
    kinds={"pandas"},
)
def validated_products(
    context: dg.AssetExecutionContext,
    config: RunOptions,
    supabase_products: pd.DataFrame,
    settings: dg.ResourceParam[Settings],
) -> pd.DataFrame:
    """Every row checked and transformed for Stripe; rows that can't be are quarantined with reasons."""
    rules = validation_rules(settings, skip_validation=config.skip_validation)
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


@dg.asset(
    partitions_def=batch_partitions,
    backfill_policy=BACKFILL_POLICY,
    pool=STRIPE_WRITES_POOL,
    kinds={"stripe"},
    output_required=False,  # a dry run materializes nothing
)
def stripe_products(
    context: dg.AssetExecutionContext,
    config: RunOptions,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    settings: dg.ResourceParam[Settings],
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
            mapping = settings.catalog_mapping()
            observe_plan(context, validated_products, source.state, options, mapping, reads)
        return
    with step_outcome(context), catalog.opened() as source, stripe.opened(source.retries) as api:
        # Again here: a run retried from its failed step starts at this one.
        deliver_kept(source.state, InstanceUndelivered(context), context.partition_keys)
        context.log.info(f"Stripe {api.mode} mode at {api.api_base}")
        result = batch_sync(context, api, source, stripe, progress).sync_products(
            validated_products, context.partition_keys, options
        )
        progress.run_progressed(result.tally())
        stop_or_fail(context, result)
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
        result = batch_sync(context, api, source, stripe, progress).sync_prices(
            validated_products, context.partition_keys
        )
        if result.final:  # else no products step of this run recorded its batches
            progress.run_progressed(result.tally())
        stop_or_fail(context, result)
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
