"""Jobs: migrate batches, register batches, the report, and rollback."""

from collections.abc import Callable

import dagster as dg
from pydantic import Field

from stripe_sync.core.rollback import RollbackReport, roll_back, rollback_window
from stripe_sync.core.wording import counted
from stripe_sync.defs.assets import (
    STRIPE_WRITES_POOL,
    stripe_prices,
    stripe_products,
    supabase_products,
    validated_products,
)
from stripe_sync.defs.checks import stripe_matches_catalog
from stripe_sync.defs.dagster_compat import pool_limit_set
from stripe_sync.defs.outcomes import RunOutcome, record_outcome, step_outcome
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.report import migration_report
from stripe_sync.defs.resources import (
    CatalogResource,
    StripeResource,
)
from stripe_sync.factory import opened_catalog
from stripe_sync.settings.model import Settings

migrate_batches_job = dg.define_asset_job(
    "migrate_batches",
    selection=[supabase_products, validated_products, stripe_products, stripe_prices],
    description="Sync the selected batches of the catalog into Stripe.",
)

verify_batches_job = dg.define_asset_job(
    "verify_batches",
    selection=dg.AssetSelection.checks(stripe_matches_catalog),
    description="Verify the selected batches: Stripe holds what their latest sync made (reads only).",
)

report_job = dg.define_asset_job(
    "report",
    selection=[migration_report],
    description="Rebuild the migration report from every batch.",
)


def register_batches(
    instance: dg.DagsterInstance,
    settings: Settings,
    batch_size: int,
    *,
    deadline_s: float | None = None,
    on_waiting: Callable[[str], None] | None = None,
) -> list[str]:
    """Give the catalog's rows that have no batch one and add the partitions that are new to
    this instance; returns their keys. `deadline_s` shortens the catalog's retry deadline (a
    tick's); `on_waiting` is told once when the catalog must be waited for (a failover)."""
    with opened_catalog(settings, deadline_s=deadline_s, on_waiting=on_waiting) as source:
        registered = instance.get_dynamic_partitions(batch_partitions.name)
        new_keys = source.register(registered, batch_size).keys
    if new_keys:
        instance.add_dynamic_partitions(batch_partitions.name, new_keys)
    pool_limit_set(instance, STRIPE_WRITES_POOL)
    return new_keys


class RegisterConfig(dg.Config):
    batch_size: int | None = Field(
        default=None, description="Rows per new batch; unset: the setting sync.batch_size."
    )


@dg.op(description="Register a batch partition for every batch_size catalog rows not yet in one.")
def register_new_batches(
    context: dg.OpExecutionContext,
    config: RegisterConfig,
    catalog: CatalogResource,
    settings: dg.ResourceParam[Settings],
) -> None:
    with step_outcome(context):
        new_keys = register_batches(
            context.instance,
            catalog.resolved_settings(),
            config.batch_size or settings.sync.batch_size,
        )
    context.log.info(
        f"registered {counted(len(new_keys), 'new batch')}"
        + (f": {new_keys[0]} … {new_keys[-1]}" if new_keys else "")
    )


@dg.job(description="Register batch partitions for new catalog rows.")
def register_batches_job() -> None:
    register_new_batches()


# --- rollback ---------------------------------------------------------------------------


class RollbackConfig(dg.Config):
    since: str | None = Field(
        default=None, description="A run id or an ISO 8601 time; unset: every backup."
    )
    dry_run: bool = Field(default=False, description="The plan only: no write.")


@dg.op(
    pool=STRIPE_WRITES_POOL,
    description="Bring Stripe and the catalog's write-back columns back to how they were "
    "before the runs in the window: from the backups, only what differs.",
)
def roll_back_runs(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    stripe: StripeResource,
    catalog: CatalogResource,
):
    """The rollback's report is the op's output, also when some steps failed (the step then
    fails after it)."""
    with step_outcome(context), catalog.opened() as source:
        window = rollback_window(source.state, config.since)
        context.log.info(f"backups since {config.since or 'the first run'}: {len(window)}")
        with stripe.opened() as api:
            backed_up = {row["id"] for backup in window for row in backup.catalog_rows}
            rows = {row["id"]: row for row in source.read_rows(sorted(backed_up))}
            report: RollbackReport = roll_back(
                window,
                api,
                source.state,
                rows,
                catalog_columns=source.has_write_back_columns,
                dry_run=config.dry_run,
                max_in_flight=stripe.in_flight(api),
            )
    yield dg.Output(
        report,
        metadata={
            **report.counts,
            "steps": len(report.steps),
            "dry_run": config.dry_run,
            "report": dg.MetadataValue.md(report.to_markdown()),
        },
    )
    if report.unfinished:
        first = report.unfinished[0]
        message = (
            f"{counted(len(report.unfinished), 'rollback step')} not done, failed or skipped "
            f"(e.g. {first.cms_id}: {first.error}); the rest were rolled back. Rerun the "
            "rollback to retry them."
        )
        record_outcome(context, RunOutcome.FAILED_BATCHES, message)
        raise dg.Failure(message)


@dg.job(
    name="rollback",
    description="Roll back migrations from their backups: archive the products they created, "
    "restore the fields and default prices of those they changed, reset the write-back columns.",
)
def rollback_job() -> None:
    roll_back_runs()
