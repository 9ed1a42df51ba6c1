"""A migration: register new batches, run them in process (several a run), then the report
(recorded without a run of its own)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from stripe_sync.backends.legacy_files import import_files
from stripe_sync.core.progress import MigrationProgress, RunProgress
from stripe_sync.core.secrets import redact
from stripe_sync.core.wording import counted
from stripe_sync.definitions import build_definitions
from stripe_sync.defs.assets import BATCHES_PER_RUN
from stripe_sync.defs.jobs import register_batches
from stripe_sync.defs.loggers import LogOptions
from stripe_sync.defs.outcomes import RecordedOutcome, RunOutcome, outcome_of
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.report import latest_report, migration_report, report_metadata
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.factory import opened_catalog
from stripe_sync.operations.instance import (
    dagster_home,
    fail_abandoned_runs,
    open_instance,
    run_batches,
)
from stripe_sync.settings.model import Settings

_STOPS = {
    RunOutcome.STOPPED: "stopped on request",
    RunOutcome.KEY_REFUSED: "Stripe refused the key, so no further batch was started",
}


def _why_failed(result: dg.ExecuteInProcessResult, recorded: RecordedOutcome, log_file: str) -> str:
    """A failed run's reason in one line (the run logs are in the log file only): the one it
    recorded, else its first failed step's error."""
    if recorded.detail:
        return recorded.detail
    for event in result.get_step_failure_events():
        if event.step_failure_data.error is not None:
            return redact(event.step_failure_data.error.message.strip().splitlines()[0])
    return f"see {log_file}"


@dataclass
class MigrationResult:
    run_ids: list[str]
    failed_batches: list[str]
    new_batches: list[str]
    report_markdown: str  # this migration's report, or the sentence saying why it has none
    report: dict  # this migration's report ({} if none)
    stopped: RunOutcome | None = None  # why no further run started, if one was held back
    report_failed: bool = False  # the report's own run failed: `report_markdown` says why
    # Left for the next migration by a stop on request: the stopped run's and the unstarted.
    stopped_batches: list[str] = field(default_factory=list)
    # Its runs recorded results or backed up what they were about to change in Stripe, so
    # `rollback --since` its start may have something to undo.
    may_have_written: bool = True

    @property
    def succeeded(self) -> bool:
        return not self.failed_batches and not self.stopped_batches and not self.report_failed


@dataclass(frozen=True)
class Dagster:
    """What a migration runs in: the pipeline's definitions and the Dagster instance."""

    definitions: dg.Definitions
    instance: dg.DagsterInstance


def open_dagster(settings: Settings, progress: RunProgress | None = None) -> Dagster:
    """The definitions and the instance of a migration. Writes nothing to the catalog, the
    state or Stripe, so it may come before pre-flight. `progress`: where its runs say how far
    they are."""
    return Dagster(build_definitions(settings, progress), open_instance(dagster_home(settings)))


def migrate(
    settings: Settings,
    options: RunOptions,
    logs: LogOptions,
    *,
    batches_per_run: int = BATCHES_PER_RUN,
    say: Callable[[str], None] = print,
    stop_requested: Callable[[], bool] = lambda: False,
    progress: MigrationProgress | None = None,
    dagster: Dagster | None = None,
    catalog_rows: int | None = None,
) -> MigrationResult:
    """Register new batches, sync every batch (`batches_per_run` a run), then rebuild the
    report. A run that stops (told to, or Stripe refusing the key) holds back the rest.
    `progress`: told how far the whole migration is; `dagster`: from `open_dagster` (with
    the same `progress`), if already opened; `catalog_rows`: the catalog's rows, if already
    counted (a count of a large Supabase table is a scan)."""
    progress = progress or MigrationProgress()
    dagster = dagster or open_dagster(settings, progress)
    definitions, instance = dagster.definitions, dagster.instance
    for run_id in fail_abandoned_runs(instance):
        say(
            f"run {run_id} was killed before it finished: marked failed, its Stripe pool slots freed"
        )
    with opened_catalog(settings, on_waiting=say) as source:
        imported = import_files(source.state, settings.state_dir, settings.backups_dir)
        rows = source.count_ids() if catalog_rows is None else catalog_rows
    if imported.anything:
        say(imported.describe())
    new_batches = register_batches(instance, settings, settings.sync.batch_size, on_waiting=say)
    progress.start(rows)
    keys = instance.get_dynamic_partitions(batch_partitions.name)
    say(f"{counted(len(keys), 'batch')} ({len(new_batches)} new), {batches_per_run} per run")
    job = definitions.resolve_job_def("migrate_batches")
    run_config = {**options.run_config(job), **logs.run_config()}
    run_ids: list[str] = []
    failed: list[str] = []
    left: list[str] = []  # by a stop on request: not failed, nothing to retry
    stopped = None
    for start in range(0, len(keys), batches_per_run):
        if stop_requested():
            left.extend(keys[start:])
            stopped = RunOutcome.STOPPED
            say(f"{_STOPS[stopped]}: the remaining batches are left for the next run")
            break
        chunk = keys[start : start + batches_per_run]
        result = run_batches(job, instance, chunk, run_config)
        progress.run_finished()
        run_ids.append(result.run_id)
        recorded = outcome_of(instance, result.run_id, succeeded=result.success)
        outcome = recorded.outcome
        batches = f"batches {start + 1}-{start + len(chunk)} of {len(keys)}"
        if result.success:
            say(f"{batches}: ok (run {result.run_id})")
        elif outcome is RunOutcome.STOPPED:
            left.extend(chunk)
            say(f"{batches}: stopped (run {result.run_id})")
        else:
            failed.extend(chunk)
            why = _why_failed(result, recorded, logs.log_file)
            say(f"{batches}: FAILED (run {result.run_id}): {why}")
        if outcome.stops_migration:
            (left if outcome is RunOutcome.STOPPED else failed).extend(keys[start + len(chunk) :])
            stopped = outcome
            say(f"{_STOPS[outcome]}: the remaining batches are left for the next run")
            break
    if not failed and not left:
        progress.all_batches_ran()
    # The report needs no run of its own (a run costs more than building it): it is reported
    # as a materialization of `migration_report`, as the `report` job would make it.
    try:
        metadata = report_metadata(instance, settings)
        own = _own_report(instance, settings, metadata, run_ids)
    except Exception as error:  # noqa: BLE001 - any failure: say it, never show an older report
        return MigrationResult(
            run_ids=run_ids,
            failed_batches=failed,
            new_batches=new_batches,
            report_markdown=f"No report: {redact(str(error))}",
            report={},
            stopped=stopped,
            report_failed=True,
            stopped_batches=left,
        )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(migration_report.key, metadata=metadata)
    )
    return MigrationResult(
        run_ids=run_ids,
        failed_batches=failed,
        new_batches=new_batches,
        report_markdown=own.markdown,
        report=own.report,
        stopped=stopped,
        stopped_batches=left,
        may_have_written=own.may_have_written,
    )


# The results of rows a run may have written to Stripe for (a failed row's requests may have
# gone through); unchanged, invalid and orphaned rows send no write.
_MAY_HAVE_WRITTEN = ("created", "adopted", "updated", "archived", "failed")


@dataclass(frozen=True)
class _OwnReport:
    markdown: str
    report: dict
    may_have_written: bool


def _own_report(
    instance: dg.DagsterInstance, settings: Settings, metadata: dict, run_ids: list[str]
) -> _OwnReport:
    """The report of what this migration's runs did: the materialized one (`metadata`, every
    batch's latest run) when those runs are all this migration's, else one of the batches
    whose latest run is, or a sentence when there are none. A run that recorded nothing may
    still have written to Stripe (the record failed): its backups say so."""
    every_batch = json.loads(Path(metadata["json"].value).read_text())
    if set(every_batch["run_ids"]) <= set(run_ids):
        markdown, report = metadata["report"].value, every_batch
    else:
        own = latest_report(instance, settings, of_runs=run_ids)
        markdown, report = own.to_markdown(), own.to_json()
    if report["run_ids"]:
        wrote = any(report["counts"][result] for result in _MAY_HAVE_WRITTEN)
        return _OwnReport(markdown, report, may_have_written=wrote)
    with opened_catalog(settings) as source:
        backed_up = bool(run_ids) and any(b.run_id in run_ids for b in source.state.backups())
    return _OwnReport(
        "No report: no run of this migration recorded any result.", {}, may_have_written=backed_up
    )
