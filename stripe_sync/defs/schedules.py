"""The reconcile schedule: every batch, on a cron (default hourly), as the safety net under the
change sensor. Cheap: rows whose content hash matches their last sync cost no Stripe request."""

from __future__ import annotations

import dagster as dg

from stripe_sync.core.errors import CatalogFailure, ConfigError
from stripe_sync.core.wording import counted
from stripe_sync.defs.assets import BATCHES_PER_RUN
from stripe_sync.defs.jobs import migrate_batches_job, register_batches
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource
from stripe_sync.defs.sensors import TICK_DEADLINE_S, run_request
from stripe_sync.settings.model import AutomationSettings, Settings


def build_reconcile_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The schedule, with its cron and starting status from the settings (automation.*)."""
    cron = settings.automation.reconcile_cron
    try:
        return _reconcile_schedule(
            cron, dg.DefaultScheduleStatus(settings.automation.status.upper())
        )
    except dg.DagsterInvalidDefinitionError:
        default = AutomationSettings.model_fields["reconcile_cron"].default
        raise ConfigError(
            f"{settings.where('automation.reconcile_cron')} must be a cron expression such as "
            f"{default!r} (hourly), not {cron!r}."
        ) from None


def _reconcile_schedule(cron: str, status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="reconcile_batches",
        cron_schedule=cron,
        job=migrate_batches_job,
        execution_timezone="UTC",
        default_status=status,
        description=(
            "Registers batches for new rows, then runs every batch, 10 to a run: whatever the "
            "change sensor missed is synced, and unchanged rows cost no Stripe request. Cron: "
            f"{cron} (UTC), the setting automation.reconcile_cron."
        ),
    )
    def reconcile_batches(
        context: dg.ScheduleEvaluationContext,
        catalog: CatalogResource,
        settings: dg.ResourceParam[Settings],
    ):
        try:
            new_keys = register_batches(
                context.instance,
                catalog.resolved_settings(),
                settings.sync.batch_size,
                deadline_s=TICK_DEADLINE_S,
            )
        except CatalogFailure as failure:
            if not failure.retryable:
                raise
            context.log.warning(f"the catalog is unreachable, this tick is skipped: {failure}")
            return dg.SkipReason(f"the catalog is unreachable: {failure}")
        keys = context.instance.get_dynamic_partitions(batch_partitions.name)
        if not keys:
            return dg.SkipReason("no batches: the catalog is empty")
        tick = context.scheduled_execution_time.isoformat()
        context.log.info(
            f"reconciling {counted(len(keys), 'batch')} ({len(new_keys)} new), "
            f"{BATCHES_PER_RUN} per run"
        )
        runs = [keys[at : at + BATCHES_PER_RUN] for at in range(0, len(keys), BATCHES_PER_RUN)]
        return [run_request(run, f"reconcile_batches:{tick}:{run[0]}..{run[-1]}") for run in runs]

    return reconcile_batches
