"""Rollback from the command line: the Dagster job `rollback`, run in process."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from stripe_sync.core.rollback import RollbackReport, rollback_window
from stripe_sync.definitions import build_definitions
from stripe_sync.defs.outcomes import outcome_of
from stripe_sync.factory import opened_catalog
from stripe_sync.operations.instance import dagster_home, open_instance
from stripe_sync.settings.model import Settings


@dataclass(frozen=True)
class RollbackResult:
    succeeded: bool
    report: RollbackReport | None  # None when the run failed before it had a plan
    error: str = ""

    @property
    def steps(self) -> int:
        return len(self.report.steps) if self.report is not None else 0

    def text(self) -> str:
        return self.report.to_markdown() if self.report is not None else f"error: {self.error}"


def check_window(settings: Settings, since: str | None) -> None:
    """A ConfigError, before anything runs, when `since` names no run with backups and no time."""
    with opened_catalog(settings) as source:
        rollback_window(source.state, since)


def rollback(settings: Settings, since: str | None, *, dry_run: bool) -> RollbackResult:
    """The `rollback` job over the backups from `since` on (None: all of them)."""
    instance = open_instance(dagster_home(settings))
    result = (
        build_definitions(settings)
        .resolve_job_def("rollback")
        .execute_in_process(
            instance=instance,
            run_config={
                "ops": {"roll_back_runs": {"config": {"since": since, "dry_run": dry_run}}},
                "loggers": {"console": {"config": {"log_level": "INFO"}}},
            },
            raise_on_error=False,
        )
    )
    try:
        report = result.output_for_node("roll_back_runs")
    except dg.DagsterInvariantViolationError:  # no output: the step failed before its report
        report = None
    detail = "" if result.success else outcome_of(instance, result.run_id, succeeded=False).detail
    error = detail or f"run {result.run_id} ended without a rollback report"
    return RollbackResult(result.success, report, "" if result.success else error)
