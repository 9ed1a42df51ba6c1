"""The migration report: what the latest run of every batch did, rebuilt after any batch."""

from collections.abc import Collection

import dagster as dg

from stripe_sync.core.ledger import final_record
from stripe_sync.core.report import Report, build_report, save_report
from stripe_sync.defs.assets import stripe_prices
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource
from stripe_sync.factory import opened_catalog
from stripe_sync.settings.model import Settings

# Unlike `eager()`, which waits until every batch exists, rebuild after any batch changed.
REPORT_AFTER_ANY_BATCH = (
    dg.AutomationCondition.any_deps_updated()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
)


@dg.asset(deps=[stripe_prices], kinds={"stripe"}, automation_condition=REPORT_AFTER_ANY_BATCH)
def migration_report(
    context: dg.AssetExecutionContext, catalog: CatalogResource
) -> dg.MaterializeResult:
    """What the latest run of every batch did: created, updated, unchanged, invalid and failed
    products, failures with reasons, Stripe requests and time; also saved as JSON and Markdown."""
    return dg.MaterializeResult(
        metadata=report_metadata(context.instance, catalog.resolved_settings())
    )


def latest_report(
    instance: dg.DagsterInstance,
    settings: Settings,
    *,
    of_runs: Collection[str] | None = None,
) -> Report:
    """What the latest run of every registered batch did; `of_runs`: only the batches whose
    latest run is one of these."""
    with opened_catalog(settings) as source:
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


def report_metadata(instance: dg.DagsterInstance, settings: Settings) -> dict:
    """The report of every registered batch, saved as JSON and Markdown: the metadata of a
    `migration_report` materialization."""
    report = latest_report(instance, settings)
    json_path, markdown_path = save_report(settings.paths.reports_dir, report)
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
