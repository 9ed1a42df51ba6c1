"""A migration from the command line: register batches, run them in process, report.

Runs go to the DAGSTER_HOME instance, so they show in `dagster dev` like runs launched
from the UI.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from stripe_sync.catalog import WriteBack
from stripe_sync.catalog.frames import catalog_frame
from stripe_sync.core.batches import batches, new_batch_keys
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.core.planner import PlanOptions
from stripe_sync.core.validation import plan_frame, validate_batch
from stripe_sync.defs.assets import BATCHES_PER_RUN, STOPS_MIGRATION
from stripe_sync.defs.jobs import register_batches
from stripe_sync.defs.partitions import batch_partitions


@dataclass
class MigrationResult:
    run_ids: list[str]
    failed_batches: list[str]
    new_batches: list[str]
    report_markdown: str
    report: dict

    @property
    def succeeded(self) -> bool:
        return not self.failed_batches


def run_migration(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    force_resync: bool = False,
    no_checkpoint: bool = False,
    batches_per_run: int = BATCHES_PER_RUN,
    log_level: str = "INFO",
    log_file: str = "logs/stripe-sync.log",
    say=print,
    stop_requested=lambda: False,
) -> MigrationResult:
    """Register new batches, sync every batch (several per run), then rebuild the report."""
    for run_id in fail_abandoned_runs(instance):
        say(
            f"run {run_id} was killed before it finished: marked failed, its Stripe pool slots freed"
        )
    with dg.build_resources(
        {name: defs.resources[name] for name in ("catalog", "settings")}
    ) as resources:
        new_batches = register_batches(instance, resources.catalog, resources.settings)
    keys = instance.get_dynamic_partitions(batch_partitions.name)
    say(f"{len(keys)} batches ({len(new_batches)} new), {batches_per_run} per run")
    loggers = {"console": {"config": {"log_level": log_level, "log_file": log_file}}}
    run_config = {
        "loggers": loggers,
        "ops": {
            "stripe_products": {
                "config": {"force_resync": force_resync, "no_checkpoint": no_checkpoint}
            }
        },
    }
    job = defs.resolve_job_def("migrate_batches")
    run_ids, failed = [], []
    for start in range(0, len(keys), batches_per_run):
        if stop_requested():
            failed.extend(keys[start:])
            say("stopped on request: the remaining batches are left for the next run")
            break
        chunk = keys[start : start + batches_per_run]
        result = run_batches(job, instance, chunk, run_config)
        run_ids.append(result.run_id)
        if not result.success:
            failed.extend(chunk)
        say(
            f"batches {start + 1}-{start + len(chunk)} of {len(keys)}: {'ok' if result.success else 'FAILED'} (run {result.run_id})"
        )
        reason = None if result.success else _stop_reason(result)
        if reason is not None:
            failed.extend(keys[start + len(chunk) :])
            say(f"{reason}: the remaining batches are left for the next run")
            break
    report_result = defs.resolve_job_def("report").execute_in_process(
        instance=instance, run_config={"loggers": loggers}, raise_on_error=False
    )
    materialization = report_result.asset_materializations_for_node("migration_report")[0]
    json_path = Path(materialization.metadata["json"].value)
    return MigrationResult(
        run_ids=run_ids,
        failed_batches=failed,
        new_batches=new_batches,
        report_markdown=materialization.metadata["report"].value,
        report=json.loads(json_path.read_text()),
    )


def plan_migration(
    defs: dg.Definitions, instance: dg.DagsterInstance, options: PlanOptions, summary: PlanSummary
) -> PlanSummary:
    """What `run_migration` would do, batch by batch, into `summary`: reads the catalog and
    the checkpoints only (no Stripe request, no catalog write, no partition registered)."""
    with dg.build_resources(
        {name: defs.resources[name] for name in ("catalog", "settings", "checkpoints")}
    ) as resources:
        settings, store = resources.settings, resources.checkpoints.store()
        source = resources.catalog.open()
        try:
            registered = instance.get_dynamic_partitions(batch_partitions.name)
            keys = [*registered, *new_batch_keys(source, registered, settings.batch_size)]
            for batch in batches(keys):
                rows = [
                    {"batch": batch.key, **row}
                    for row in source.read_rows(batch.lower, batch.upper)
                ]
                validated = validate_batch(catalog_frame(rows), settings.validation_rules())
                plan = plan_frame(validated, [batch.key], store, options)
                summary.add(batch.key, plan[batch.key])
        finally:
            source.close()
    return summary


RESET_CHUNK = 10_000  # catalog rows emptied per write-back call


def reset_sync_state(defs: dg.Definitions, *, catalog_columns: bool) -> tuple[int, int]:
    """Forget every checkpoint, so the next run reconciles each synced row with Stripe; with
    `catalog_columns`, also empty the catalog's write-back columns. Returns (batches
    forgotten, catalog rows emptied)."""
    with dg.build_resources(
        {name: defs.resources[name] for name in ("catalog", "checkpoints")}
    ) as resources:
        forgotten = resources.checkpoints.store().clear()
        if not catalog_columns:
            return forgotten, 0
        source = resources.catalog.open()
        try:
            ids = list(source.iter_ids())
            for start in range(0, len(ids), RESET_CHUNK):
                never_synced = [
                    WriteBack(cms_id, None, None, None, None, None, None)
                    for cms_id in ids[start : start + RESET_CHUNK]
                ]
                source.write_back(never_synced)
        finally:
            source.close()
    return forgotten, len(ids)


_INTERRUPTS = ("DagsterExecutionInterruptedError", "KeyboardInterrupt")


def _stop_reason(result: dg.ExecuteInProcessResult) -> str | None:
    """Why no further run may start after this failed one, if so: the process was told to
    stop (during a run Dagster's own SIGINT/SIGTERM handler turns the signal into an
    interrupt of the step, so `stop_requested` never hears of it), or Stripe refused the key."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.error is not None and data.error.cls_name in _INTERRUPTS:
            return "stopped on request"
        failure = data.user_failure_data
        if failure is not None and failure.metadata.get(STOPS_MIGRATION) is not None:
            return "Stripe refused the key, so no further batch was started"
    return None


def run_batches(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: list[str], run_config: dict
) -> dg.ExecuteInProcessResult:
    """One in-process run of `job` over a range of batches, tagged with this process so a
    later `migrate` can tell if it was killed."""
    return job.execute_in_process(
        instance=instance,
        run_config=run_config,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: keys[0],
            ASSET_PARTITION_RANGE_END_TAG: keys[-1],
            **_launcher_tags(),
        },
        raise_on_error=False,
    )


_HOST_TAG, _PID_TAG = "stripe_sync/host", "stripe_sync/pid"


def _launcher_tags() -> dict[str, str]:
    return {_HOST_TAG: socket.gethostname(), _PID_TAG: str(os.getpid())}


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-process runs of this machine whose process is gone (SIGKILL, power
    loss): no daemon watches them, and their pool slots would block every later run."""
    abandoned = []
    started_here = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED], tags={_HOST_TAG: socket.gethostname()}
    )
    for run in instance.get_runs(filters=started_here):
        if not _alive(int(run.tags[_PID_TAG])):
            instance.report_run_failed(run)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            abandoned.append(run.run_id)
    return abandoned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return True
