"""Verification from the command line: the verification checks over every batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from stripe_sync.core.errors import ConfigError
from stripe_sync.core.report import table_cell
from stripe_sync.core.verify import ERROR
from stripe_sync.core.wording import counted
from stripe_sync.definitions import build_definitions
from stripe_sync.defs.assets import BATCHES_PER_RUN
from stripe_sync.defs.checks import products_match_catalog
from stripe_sync.defs.loggers import LogOptions
from stripe_sync.defs.outcomes import RunOutcome, outcome_of
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.factory import opened_stripe_api
from stripe_sync.operations.instance import dagster_home, open_instance, run_batches
from stripe_sync.settings.model import Settings

_MISMATCH_COLUMNS = ("batch", "severity", "cms_id", "product_id", "field", "expected", "actual")


@dataclass
class Verification:
    """What the verification runs found: mismatch rows by batch, counts, runs that failed."""

    batches: int = 0
    products: int = 0
    rows: dict[tuple, dict] = field(default_factory=dict)  # both checks report batch-level rows
    unlisted: int = 0  # beyond the rows a check lists per batch
    failed_checks: int = 0
    failures: list[str] = field(default_factory=list)
    wrong_configuration: bool = False
    stripe_unread: list[str] = field(default_factory=list)  # why, for each batch not compared

    @property
    def exit_code(self) -> int:
        """0: everything matches (warnings allowed); 1: a mismatch; 2: the configuration (or
        the key) is wrong; 3: some batches could not be verified (Stripe or the catalog
        unreachable, a run failed): run it again."""
        if self.wrong_configuration:
            return 2
        if self.failed_checks:
            return 1
        return 3 if self.stripe_unread or self.failures else 0

    def add(self, evaluation: dg.AssetCheckEvaluation) -> None:
        products_check = evaluation.check_name == products_match_catalog.name
        if products_check:
            self.batches += 1
            self.products += evaluation.metadata["products"].value
        unread = evaluation.metadata["stripe_unread"].value
        if unread:  # not compared: no mismatch of its own
            if products_check:
                self.stripe_unread.append(unread)
            return
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            self.failed_checks += 1
        listed = evaluation.metadata["mismatch_table"].records
        counted = evaluation.metadata["mismatches"].value + evaluation.metadata["warnings"].value
        self.unlisted += counted - len(listed)
        for record in listed:
            row = {"batch": evaluation.partition, **record.data}
            self.rows[tuple(row.items())] = row

    def markdown(self) -> str:
        errors = sum(row["severity"] == ERROR for row in self.rows.values())
        warned = len(self.rows) - errors
        compared = self.batches - len(self.stripe_unread)
        lines = []
        if self.stripe_unread:
            lines.append(
                f"verify: Stripe could not be reached ({self.stripe_unread[0]}): "
                f"{counted(len(self.stripe_unread), 'batch')} not verified; run "
                "`stripe-sync verify` again."
            )
        if compared or not self.stripe_unread:
            summary = f"{counted(self.products, 'product')} in {counted(compared, 'batch')}"
            lines.append(
                f"verify: {summary}: {counted(errors, 'mismatch')}, {counted(warned, 'warning')}"
            )
        if self.rows:
            lines += [
                "",
                "| " + " | ".join((*_MISMATCH_COLUMNS, "note")) + " |",
                "|" + " --- |" * (len(_MISMATCH_COLUMNS) + 1),
            ]
            for row in sorted(self.rows.values(), key=lambda r: (r["severity"], r["batch"])):
                cells = (table_cell(row[c]) for c in _MISMATCH_COLUMNS)
                lines.append("| " + " | ".join((*cells, row["note"])) + " |")
        if self.unlisted:
            lines.append(f"\n… and {self.unlisted} more (each check lists 100 per batch).")
        return "\n".join(lines)


def verify(
    settings: Settings,
    options: RunOptions,
    logs: LogOptions,
    *,
    batches_per_run: int = BATCHES_PER_RUN,
) -> Verification:
    """Run the verification checks over every batch, `batches_per_run` batches a run."""
    with opened_stripe_api(settings):
        pass  # a missing, malformed or live key: a ConfigError here, before any request
    home = dagster_home(settings)
    instance = open_instance(home)
    keys = instance.get_dynamic_partitions(batch_partitions.name)
    if not keys:
        raise ConfigError(
            f"DAGSTER_HOME {home} holds no batches: run `stripe-sync migrate` first, or set "
            "DAGSTER_HOME to the one it used."
        )
    job = build_definitions(settings).resolve_job_def("verify_batches")
    outcome = Verification()
    for start in range(0, len(keys), batches_per_run):
        chunk = keys[start : start + batches_per_run]
        result = run_batches(job, instance, chunk, {**options.run_config(job), **logs.run_config()})
        for evaluation in result.get_asset_check_evaluations():
            outcome.add(evaluation)
        if result.success:
            continue
        ended = outcome_of(instance, result.run_id, succeeded=False)
        if ended.outcome in (RunOutcome.WRONG_CONFIGURATION, RunOutcome.KEY_REFUSED):
            outcome.wrong_configuration = True
        outcome.failures.append(
            f"batches {start + 1}-{start + len(chunk)} could not be verified (run "
            f"{result.run_id}): {ended.detail or 'the run failed, see its logs'}"
        )
    return outcome
