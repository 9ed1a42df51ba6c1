"""Sensors: the report follows the batches; catalog changes and failed batches request runs.

`catalog_changes` and `failed_batch_retry` write to Stripe, so like every Dagster sensor
they start stopped: turn them on in the UI (Automation), or set the setting
automation.status (STRIPE_SYNC_AUTOMATION) to running to start them (and the reconcile
schedule) running.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from stripe_sync.core.automation import (
    RetryPolicy,
    decide_retries,
    digest,
    needing_sync,
    retry_states_from_json,
    retry_states_to_json,
    runs_of,
)
from stripe_sync.core.contract import change_cursor
from stripe_sync.core.errors import CatalogFailure
from stripe_sync.core.wording import counted
from stripe_sync.defs.assets import (
    BATCHES_PER_RUN,
    stripe_prices,
    stripe_products,
    supabase_products,
    validated_products,
)
from stripe_sync.defs.dagster_compat import partition_range_tags
from stripe_sync.defs.jobs import migrate_batches_job
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.report import migration_report
from stripe_sync.defs.resources import (
    CatalogResource,
)
from stripe_sync.factory import open_tracked_catalog, validation_rules
from stripe_sync.settings.model import Settings

# Dagster's built-in automation sensor starts stopped; this one runs from the start.
report_automation_sensor = dg.AutomationConditionSensorDefinition(
    "migration_report_automation",
    target=[migration_report],
    default_status=dg.DefaultSensorStatus.RUNNING,
)

CHANGES_PAGE = 1_000  # rows a catalog request (Supabase's default maximum)
MAX_CHANGES_PER_TICK = 10_000  # the rest waits for the next tick: a tick stays short
TICK_DEADLINE_S = 10.0  # retries of a tick's catalog calls stop after this long
SENSOR_INTERVAL_S = 60
BATCH_ASSETS = (supabase_products, validated_products, stripe_products, stripe_prices)


def run_request(batches: Sequence[str], run_key: str) -> dg.RunRequest:
    """A run of `migrate_batches` over neighbouring batches: one partition, or a range."""
    if len(batches) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=batches[0])
    return dg.RunRequest(run_key=run_key, tags=partition_range_tags(batches[0], batches[-1]))


def build_automation_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The change sensor and the failed-batch sensor, starting as the setting
    automation.status says (for deployments nobody clicks through, running)."""
    status = dg.DefaultSensorStatus(settings.automation.status.upper())
    automation = settings.automation

    @dg.sensor(
        name="catalog_changes",
        job=migrate_batches_job,
        description=(
            "Runs the batches whose catalog rows changed in a way that reaches Stripe (new, "
            "edited, deleted) and registers batches for new rows. Reads rows by (updated_at, "
            "id) after its cursor and compares their content hash with the one last synced, "
            "so a touch that changes nothing requests nothing; looks for deleted rows with a "
            f"full id scan at most every {automation.removal_scan_minutes:g} minutes "
            "(automation.removal_scan_minutes)."
        ),
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=status,
    )
    def catalog_changes(
        context: dg.SensorEvaluationContext,
        catalog: CatalogResource,
        settings: dg.ResourceParam[Settings],
    ) -> dg.SensorResult:
        return _catalog_changes(context, catalog, settings)

    @dg.sensor(
        name="failed_batch_retry",
        job=migrate_batches_job,
        description=(
            f"Reruns failed batches, one run each: after {automation.retry_base_minutes:g} "
            "minutes (automation.retry_base_minutes), then twice as long after each failed "
            f"retry, at most {automation.retry_max_attempts} times "
            "(automation.retry_max_attempts); then it gives up on the batch and says so in its "
            "log."
        ),
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=status,
    )
    def failed_batch_retry(
        context: dg.SensorEvaluationContext, settings: dg.ResourceParam[Settings]
    ) -> dg.SensorResult:
        return _failed_batch_retry(context, settings)

    return [catalog_changes, failed_batch_retry]


# --- catalog_changes ---------------------------------------------------------------------


def _catalog_changes(
    context: dg.SensorEvaluationContext, catalog: CatalogResource, settings: Settings
) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    after = tuple(cursor["after"]) if cursor.get("after") else None
    scanned_at = cursor.get("removal_scan_at")
    now = datetime.now(UTC)
    scan_due = scanned_at is None or now - datetime.fromisoformat(scanned_at) >= timedelta(
        minutes=settings.automation.removal_scan_minutes
    )
    registered = context.instance.get_dynamic_partitions(batch_partitions.name)
    # A tick waits a little for the catalog, not a run's whole retry deadline: the next tick
    # comes soon anyway.
    source = open_tracked_catalog(catalog.resolved_settings(), deadline_s=TICK_DEADLINE_S)
    try:
        rows: list[dict] = []
        while len(rows) < MAX_CHANGES_PER_TICK:
            page = source.changed_since(after, CHANGES_PAGE)
            rows += page
            after = change_cursor(page[-1]) if page else after
            if len(page) < CHANGES_PAGE:
                break
        changed = needing_sync(rows, validation_rules(settings))
        if rows:
            context.log.info(
                f"{counted(len(rows), 'row')} changed since the last tick: {len(changed)} to sync, "
                f"{len(rows) - len(changed)} changed nothing that reaches Stripe (a touched "
                "updated_at, or the pipeline's own write-back)"
            )
        saved = (
            {key: source.state.checkpoints(key) for key in registered}
            if changed or scan_due
            else {}
        )
        removed: dict[str, list[str]] = {}
        if scan_due:
            present = set(source.iter_ids())
            for key, entries in saved.items():
                gone = sorted(i for i, c in entries.items() if not c.removed and i not in present)
                if gone:
                    removed[key] = gone
            scanned_at = now.isoformat()
            context.log.info(
                f"removal scan: {counted(len(present), 'id')} in the catalog; "
                f"{counted(sum(map(len, removed.values())), 'synced row')} deleted, in "
                f"{counted(len(removed), 'batch')}"
            )
        new_keys, located = [], {}
        if changed:  # the batches of the changed rows, new ones registered
            registration = source.register(registered, settings.sync.batch_size)
            new_keys = registration.keys
            located = {i: batch for i in changed if (batch := registration.batch_of(i))}
        keys = [*registered, *new_keys]
    except CatalogFailure as failure:
        if not failure.retryable:
            raise
        # No cursor: it holds, so the next tick reads from where this one would have.
        context.log.warning(f"the catalog is unreachable, this tick is skipped: {failure}")
        return dg.SensorResult(skip_reason=f"the catalog is unreachable: {failure}")
    finally:
        source.close()

    changes: dict[str, dict[str, str]] = {key: {} for key in keys}
    for cms_id, key in located.items():
        changes[key][cms_id] = changed[cms_id]
    for key, ids in removed.items():
        changes[key].update(dict.fromkeys(ids, "removed"))
    runs = runs_of(keys, [key for key, found in changes.items() if found], BATCHES_PER_RUN)
    requests = [
        run_request(
            run, f"catalog_changes:{run[0]}..{run[-1]}:{digest({k: changes[k] for k in run})}"
        )
        for run in runs
    ]
    for run in runs:
        batches = run[0] if len(run) == 1 else f"{run[0]} to {run[-1]}"
        context.log.info(
            f"requesting a run of {batches}: "
            f"{counted(sum(len(changes[k]) for k in run), 'row')} changed or deleted"
        )
    if new_keys:
        context.log.info(
            f"registering {counted(len(new_keys), 'new batch')}: {new_keys[0]} … {new_keys[-1]}"
        )
    nothing = f"{counted(len(rows), 'row')} changed, none in a way that reaches Stripe" + (
        "; no synced row was deleted" if scan_due else ""
    )
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[batch_partitions.build_add_request(new_keys)]
        if new_keys
        else None,
        cursor=json.dumps({"after": after, "removal_scan_at": scanned_at}),
        skip_reason=None if requests else nothing,
    )


# --- failed_batch_retry ------------------------------------------------------------------


def _failed_batch_retry(context: dg.SensorEvaluationContext, settings: Settings) -> dg.SensorResult:
    instance = context.instance
    keys = instance.get_dynamic_partitions(batch_partitions.name)
    failed, in_progress = set(), set()
    for asset in BATCH_ASSETS:
        statuses = instance.get_status_by_partition(asset.key, keys, batch_partitions) or {}
        for key, status in statuses.items():
            if status == dg.AssetPartitionStatus.FAILED:
                failed.add(key)
            elif status == dg.AssetPartitionStatus.IN_PROGRESS:
                in_progress.add(key)
    policy = RetryPolicy(
        base=timedelta(minutes=settings.automation.retry_base_minutes),
        max_attempts=settings.automation.retry_max_attempts,
    )
    decision = decide_retries(
        retry_states_from_json(context.cursor), failed, in_progress, datetime.now(UTC), policy
    )
    for key in decision.recovered:
        context.log.info(f"batch {key} is no longer failed: forgotten")
    for key in decision.gave_up:
        state = decision.states[key]
        context.log.warning(
            f"gave up on batch {key} after {counted(state.attempts, 'attempt')} (failed since "
            f"{state.first_failed_at}): fix the cause, then rerun it (e.g. backfill its failed "
            "partitions); this sensor takes it up again only once it has succeeded"
        )
    requests = []
    for key in decision.retry:
        state = decision.states[key]
        context.log.info(f"retrying batch {key}: attempt {state.attempts} of {policy.max_attempts}")
        requests.append(
            run_request([key], f"failed_batch_retry:{key}:{state.first_failed_at}:{state.attempts}")
        )
    waiting = [key for key, state in decision.states.items() if key in failed and not state.gave_up]
    nothing = (
        f"{counted(len(waiting), 'failed batch')} waiting for the next retry"
        if waiting
        else "no failed batch to retry"
    )
    return dg.SensorResult(
        run_requests=requests,
        cursor=retry_states_to_json(decision.states),
        skip_reason=None if requests else nothing,
    )
