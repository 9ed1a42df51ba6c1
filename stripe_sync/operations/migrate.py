"""A migration: register new batches, run them in process (several a run), then the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stripe_sync.definitions import build_definitions
from stripe_sync.defs.assets import BATCHES_PER_RUN
from stripe_sync.defs.jobs import register_batches
from stripe_sync.defs.outcomes import RunOutcome, outcome_of
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.operations.instance import (
    dagster_home,
    fail_abandoned_runs,
    open_instance,
    resources,
    run_batches,
)
from stripe_sync.operations.options import RunOptions
from stripe_sync.settings import Settings
from stripe_sync.state.legacy import import_files

_STOPS = {
    RunOutcome.STOPPED: "stopped on request",
    RunOutcome.KEY_REFUSED: "Stripe refused the key, so no further batch was started",
}


@dataclass
class MigrationResult:
    run_ids: list[str]
    failed_batches: list[str]
    new_batches: list[str]
    report_markdown: str
    report: dict
    stopped: RunOutcome | None = None  # why no further run started, if one was held back
    report_failed: bool = False  # the report's own run failed: `report_markdown` says why

    @property
    def succeeded(self) -> bool:
        return not self.failed_batches and not self.report_failed


def migrate(
    settings: Settings,
    options: RunOptions,
    *,
    batches_per_run: int = BATCHES_PER_RUN,
    say: Callable[[str], None] = print,
    stop_requested: Callable[[], bool] = lambda: False,
) -> MigrationResult:
    """Register new batches, sync every batch (`batches_per_run` a run), then rebuild the
    report. A run that stops (told to, or Stripe refusing the key) holds back the rest."""
    definitions = build_definitions(settings)
    instance = open_instance(dagster_home(settings))
    for run_id in fail_abandoned_runs(instance):
        say(
            f"run {run_id} was killed before it finished: marked failed, its Stripe pool slots freed"
        )
    with resources(settings, "catalog") as built:
        with built.catalog.opened() as source:
            imported = import_files(source.state, settings.state_dir, settings.backups_dir)
        if imported.anything:
            say(imported.describe())
        new_batches = register_batches(instance, built.catalog, settings.sync.batch_size)
    keys = instance.get_dynamic_partitions(batch_partitions.name)
    say(f"{len(keys)} batches ({len(new_batches)} new), {batches_per_run} per run")
    job = definitions.resolve_job_def("migrate_batches")
    run_config = options.migrate_config(settings)
    run_ids: list[str] = []
    failed: list[str] = []
    stopped = None
    for start in range(0, len(keys), batches_per_run):
        if stop_requested():
            failed.extend(keys[start:])
            stopped = RunOutcome.STOPPED
            say(f"{_STOPS[stopped]}: the remaining batches are left for the next run")
            break
        chunk = keys[start : start + batches_per_run]
        result = run_batches(job, instance, chunk, run_config)
        run_ids.append(result.run_id)
        if not result.success:
            failed.extend(chunk)
        say(
            f"batches {start + 1}-{start + len(chunk)} of {len(keys)}: "
            f"{'ok' if result.success else 'FAILED'} (run {result.run_id})"
        )
        outcome = outcome_of(instance, result.run_id, succeeded=result.success).outcome
        if outcome.stops_migration:
            failed.extend(keys[start + len(chunk) :])
            stopped = outcome
            say(f"{_STOPS[outcome]}: the remaining batches are left for the next run")
            break
    report = definitions.resolve_job_def("report").execute_in_process(
        instance=instance, run_config={"loggers": options.loggers()}, raise_on_error=False
    )
    materializations = report.asset_materializations_for_node("migration_report")
    if not materializations:  # never an older report in its place
        detail = outcome_of(instance, report.run_id, succeeded=False).detail
        return MigrationResult(
            run_ids=run_ids,
            failed_batches=failed,
            new_batches=new_batches,
            report_markdown=f"No report: its run {report.run_id} failed ({detail or 'see its log'}).",
            report={},
            stopped=stopped,
            report_failed=True,
        )
    metadata = materializations[0].metadata
    return MigrationResult(
        run_ids=run_ids,
        failed_batches=failed,
        new_batches=new_batches,
        report_markdown=metadata["report"].value,
        report=json.loads(Path(metadata["json"].value).read_text()),
        stopped=stopped,
    )
