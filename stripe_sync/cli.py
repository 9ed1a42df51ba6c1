"""The ``stripe-sync`` command line."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import click
from dotenv import load_dotenv

# The dagster command of this environment, for the hints this CLI prints.
_DAGSTER = pathlib.Path(sys.executable).parent / "dagster"


@click.group()
def main() -> None:
    """stripe-sync: move a product catalog into Stripe Products and Prices."""
    # Settings may come from a .env file in the working directory; real environment
    # variables win over it.
    load_dotenv(pathlib.Path.cwd() / ".env", override=False)


@contextlib.contextmanager
def _one_sentence_errors() -> Iterator[None]:
    """Configuration problems end the command with their sentence, not a traceback."""
    from stripe_sync.catalog import CatalogError
    from stripe_sync.core.errors import ConfigError

    try:
        yield
    except (ConfigError, CatalogError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def _dagster_home() -> pathlib.Path:
    """DAGSTER_HOME, defaulting to ./.dagster_home (with the repository's dagster.yaml)."""
    home = pathlib.Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    instance_yaml, repo_yaml = home / "dagster.yaml", pathlib.Path("dagster.yaml").resolve()
    if not instance_yaml.exists():
        instance_yaml.write_text(
            repo_yaml.read_text() if repo_yaml.exists() else "telemetry:\n  enabled: false\n"
        )
    return home


def _instance(home: pathlib.Path):
    """The DAGSTER_HOME instance. Got under a lock: two migrations started at once on a new
    home would both create its SQLite storage, and one would die of "table alembic_version
    already exists"."""
    import dagster as dg
    from filelock import FileLock  # a dependency of dagster's

    with FileLock(home / ".stripe_sync_instance.lock"):
        return dg.DagsterInstance.get()


def _allow_live_mode(allow: bool) -> None:
    if allow:
        os.environ["STRIPE_ALLOW_LIVE_MODE"] = "true"


def _checked_definitions():
    """Definitions configured from the environment, after a pre-flight that passed (printed)."""
    import dagster as dg

    from stripe_sync.definitions import build_definitions
    from stripe_sync.preflight import preflight

    defs = build_definitions()
    with dg.build_resources(
        {name: defs.resources[name] for name in ("catalog", "stripe")}
    ) as resources:
        for line in preflight(resources.catalog, resources.stripe).lines():
            click.echo(line)
    return defs


def _plan_options(command):
    """The options that change what a migration does, shared by `migrate` and `plan`."""
    for option in reversed(
        [
            click.option(
                "--force-resync",
                is_flag=True,
                help="Re-send every product's fields and check its price, whatever the "
                "hashes say (never a duplicate).",
            ),
            click.option(
                "--no-checkpoint",
                is_flag=True,
                help="Trust no stored sync state: read every synced product from Stripe "
                "and write only what differs.",
            ),
            click.option(
                "--mirror",
                is_flag=True,
                help="Archive the Stripe products of rows deleted from the catalog "
                "(or set STRIPE_SYNC_MIRROR=true).",
            ),
        ]
    ):
        command = option(command)
    return command


def _run_options(*, log_level: str):
    """The options of commands that run Dagster jobs over the batches (`migrate`, `verify`)."""

    def decorate(command):
        for option in reversed(
            [
                click.option(
                    "--batches-per-run",
                    type=click.IntRange(min=1),
                    default=10,
                    show_default=True,
                    help="Batches in one Dagster run.",
                ),
                click.option(
                    "--log-level",
                    type=click.Choice(["DEBUG", "INFO", "WARN", "ERROR"], case_sensitive=False),
                    default=log_level,
                    show_default=True,
                ),
                click.option(
                    "--log-file",
                    default="logs/stripe-sync.log",
                    show_default=True,
                    help="Logs are also appended here.",
                ),
                click.option(
                    "--allow-live-mode", is_flag=True, help="Accept a live-mode Stripe key."
                ),
            ]
        ):
            command = option(command)
        return command

    return decorate


def _mirror(mirror: bool) -> None:
    if mirror:
        os.environ["STRIPE_SYNC_MIRROR"] = "true"


@main.command()
@click.option("--allow-live-mode", is_flag=True, help="Accept a live-mode Stripe key.")
def preflight(allow_live_mode: bool) -> None:
    """Check the catalog (reachable, table and write-back columns) and the Stripe key (valid,
    test or live mode, account) without writing anything."""
    _allow_live_mode(allow_live_mode)
    with _one_sentence_errors():
        _checked_definitions()
    click.echo("preflight: ok")


@main.command()
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per batch for new batches (default 1000).",
)
@_run_options(log_level="INFO")
@click.option(
    "--skip-validation",
    is_flag=True,
    help="Skip the business rules (minimum, maximum, free); Stripe's own still apply.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (as `stripe-sync plan`) and stop.")
@_plan_options
def migrate(
    batch_size: int | None,
    batches_per_run: int,
    log_level: str,
    log_file: str,
    allow_live_mode: bool,
    skip_validation: bool,
    dry_run: bool,
    force_resync: bool,
    no_checkpoint: bool,
    mirror: bool,
) -> None:
    """Sync the catalog into Stripe: pre-flight, register batches, run them, report.

    Runs are recorded in the DAGSTER_HOME instance and show in `dagster dev`. Exits 0 when
    every valid product is synced, 1 when any batch failed.
    """
    if batch_size is not None:
        os.environ["STRIPE_SYNC_BATCH_SIZE"] = str(batch_size)
    if skip_validation:
        os.environ["STRIPE_SYNC_SKIP_VALIDATION"] = "true"
    _allow_live_mode(allow_live_mode)
    _mirror(mirror)
    if dry_run:
        _print_plan(force_resync=force_resync, no_checkpoint=no_checkpoint)
        return
    sys.exit(
        0
        if _migrate(
            batches_per_run,
            log_level,
            log_file,
            force_resync=force_resync,
            no_checkpoint=no_checkpoint,
        )
        else 1
    )


def _migrate(
    batches_per_run: int,
    log_level: str,
    log_file: str,
    *,
    force_resync: bool = False,
    no_checkpoint: bool = False,
) -> bool:
    from stripe_sync.migration import run_migration

    home = _dagster_home()
    stop = threading.Event()

    def request_stop(signum, frame):
        # Ctrl+C or SIGTERM between runs: no new batch starts (during a run, Dagster's own
        # handler interrupts the Stripe step, which writes back what finished). A second
        # signal stops at once.
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with _one_sentence_errors():
        defs = _checked_definitions()
        result = run_migration(
            defs,
            _instance(home),
            force_resync=force_resync,
            no_checkpoint=no_checkpoint,
            batches_per_run=batches_per_run,
            log_level=log_level,
            log_file=log_file,
            say=click.echo,
            stop_requested=stop.is_set,
        )
    click.echo(result.report_markdown)
    click.echo(f"Dagster runs are in {home}: see them with `DAGSTER_HOME={home} {_DAGSTER} dev`.")
    # A time, not the first run's id: a run that changed nothing takes no backup.
    click.echo(f"To undo this migration: stripe-sync rollback --since {started}")
    if not result.succeeded:
        click.echo(
            f"{len(result.failed_batches)} batches failed: rerun `stripe-sync migrate` to retry them.",
            err=True,
        )
    return result.succeeded


# --- verify (stripe-sync verify) ---


@main.command()
@_run_options(log_level="WARN")
def verify(batches_per_run: int, log_level: str, log_file: str, allow_live_mode: bool) -> None:
    """Check that Stripe holds what the latest sync of every batch made of the catalog: each
    product, its fields and default price; invalid, archived and deleted rows not live.

    Reads Stripe only, 100 products a request. Runs the asset checks of the `verify_batches`
    job in the DAGSTER_HOME instance, so the results show in `dagster dev`; drifted rows are
    reconciled by the next `stripe-sync migrate`. Exits 0 when everything matches (warnings
    allowed), 1 on a mismatch, 2 when the configuration is wrong.
    """
    _allow_live_mode(allow_live_mode)
    home = _dagster_home()
    with _one_sentence_errors():
        outcome = _verify(home, batches_per_run, log_level, log_file)
    click.echo(outcome.markdown())
    click.echo(f"Dagster runs are in {home}: see them with `DAGSTER_HOME={home} {_DAGSTER} dev`.")
    for failure in outcome.failures:
        click.echo(f"error: {failure}", err=True)
    sys.exit(outcome.exit_code)


class _Verification:
    """What the verification runs found: mismatch rows by batch, counts, failed runs."""

    def __init__(self) -> None:
        self.batches = 0
        self.products = 0
        self.rows: dict[tuple, dict] = {}  # the same batch-level row comes from both checks
        self.unlisted = 0  # beyond the rows a check lists per batch
        self.failed_checks = 0
        self.failures: list[str] = []
        self.wrong_configuration = False

    @property
    def exit_code(self) -> int:
        if self.wrong_configuration:
            return 2
        return 1 if self.failed_checks or self.failures else 0

    def add(self, evaluation) -> None:
        from stripe_sync.defs.checks import products_match_catalog

        if evaluation.check_name == products_match_catalog.name:
            self.batches += 1
            self.products += evaluation.metadata["products"].value
        if not evaluation.passed and evaluation.severity.value == "ERROR":
            self.failed_checks += 1
        listed = evaluation.metadata["mismatch_table"].records
        counted = evaluation.metadata["mismatches"].value + evaluation.metadata["warnings"].value
        self.unlisted += counted - len(listed)
        for record in listed:
            row = {"batch": evaluation.partition, **record.data}
            self.rows[tuple(row.items())] = row

    def markdown(self) -> str:
        from stripe_sync.core.report import table_cell
        from stripe_sync.core.verify import ERROR

        errors = sum(row["severity"] == ERROR for row in self.rows.values())
        warned = len(self.rows) - errors
        summary = f"{self.products} products in {self.batches} batches: {errors} mismatches, {warned} warnings"
        lines = [f"verify: {summary}"]
        if self.rows:
            columns = ("batch", "severity", "cms_id", "product_id", "field", "expected", "actual")
            lines += [
                "",
                "| " + " | ".join((*columns, "note")) + " |",
                "|" + " --- |" * (len(columns) + 1),
            ]
            for row in sorted(self.rows.values(), key=lambda r: (r["severity"], r["batch"])):
                cells = (table_cell(row[c]) for c in columns)
                lines.append("| " + " | ".join((*cells, row["note"])) + " |")
        if self.unlisted:
            lines.append(f"\n… and {self.unlisted} more (each check lists 100 per batch).")
        return "\n".join(lines)


def _verify(home: pathlib.Path, batches_per_run: int, log_level: str, log_file: str):
    """Run the verification checks over every batch, `batches_per_run` batches a run."""
    import dagster as dg

    from stripe_sync.core.errors import ConfigError
    from stripe_sync.core.secrets import redact
    from stripe_sync.definitions import build_definitions
    from stripe_sync.defs.checks import WRONG_CONFIGURATION
    from stripe_sync.defs.partitions import batch_partitions
    from stripe_sync.migration import run_batches

    defs = build_definitions()
    with dg.build_resources({"stripe": defs.resources["stripe"]}) as resources:
        resources.stripe.api().close()  # a missing, malformed or live key: exit 2, no request
    instance = _instance(home)
    keys = instance.get_dynamic_partitions(batch_partitions.name)
    if not keys:
        raise ConfigError(
            f"DAGSTER_HOME {home} holds no batches: run `stripe-sync migrate` first, or set "
            "DAGSTER_HOME to the one it used."
        )
    job = defs.resolve_job_def("verify_batches")
    run_config = {
        "loggers": {"console": {"config": {"log_level": log_level, "log_file": log_file}}}
    }
    outcome = _Verification()
    for start in range(0, len(keys), batches_per_run):
        chunk = keys[start : start + batches_per_run]
        result = run_batches(job, instance, chunk, run_config)
        for evaluation in result.get_asset_check_evaluations():
            outcome.add(evaluation)
        for event in result.all_events:
            if not event.is_step_failure:
                continue
            failure = event.step_failure_data.user_failure_data
            if failure is not None and failure.metadata.get(WRONG_CONFIGURATION) is not None:
                outcome.wrong_configuration = True
            error = event.step_failure_data.error
            message = failure.description if failure is not None else error and error.message
            outcome.failures.append(
                f"batches {start + 1}-{start + len(chunk)} could not be verified (run "
                f"{result.run_id}): {redact(str(message).strip())}"
            )
    return outcome


# --- rollback (stripe-sync rollback) ---


@main.command()
@click.option(
    "--since",
    default=None,
    metavar="RUN_ID|TIMESTAMP",
    help="Roll back the runs from this run (its id) or this time (ISO 8601) on; default: all.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--yes", is_flag=True, help="Roll back without asking.")
@click.option("--allow-live-mode", is_flag=True, help="Accept a live-mode Stripe key.")
def rollback(since: str | None, dry_run: bool, yes: bool, allow_live_mode: bool) -> None:
    """Undo migrations from their backups: archive the products they created, restore the
    fields and default prices of those they changed, reset the catalog's write-back columns.

    Shows the plan and asks first (unless --yes). Runs the Dagster job `rollback` in process
    against the DAGSTER_HOME instance, so it shows in `dagster dev`. A second rollback finds
    nothing to do. Exits 0 when done, 1 when a step failed (rerun it), 2 on configuration.
    """
    _allow_live_mode(allow_live_mode)
    ask = not (dry_run or yes)
    if ask and not sys.stdin.isatty():
        click.echo(
            "error: rollback asks before it writes and there is no terminal to ask on: pass "
            "--yes to roll back, or --dry-run to see the plan.",
            err=True,
        )
        sys.exit(2)
    sys.exit(0 if _rollback(since, dry_run=dry_run, ask=ask) else 1)


def _rollback(since: str | None, *, dry_run: bool, ask: bool) -> bool:
    from stripe_sync.core.rollback import rollback_window

    home = _dagster_home()
    with _one_sentence_errors():
        defs = _checked_definitions()
        rollback_window(defs.resources["backups"].store(), since)  # an unknown --since stops here
        instance = _instance(home)
        if ask:
            succeeded, report, steps = _run_rollback(defs, instance, since, dry_run=True)
            click.echo(report)
            if not succeeded or steps == 0:
                return succeeded
            click.confirm(f"Apply these {steps} steps?", abort=True)
        succeeded, report, _ = _run_rollback(defs, instance, since, dry_run=dry_run)
    click.echo(report)
    click.echo(f"Dagster runs are in {home}: see them with `DAGSTER_HOME={home} {_DAGSTER} dev`.")
    return succeeded


def _run_rollback(defs, instance, since: str | None, *, dry_run: bool) -> tuple[bool, str, int]:
    """The `rollback` job in process: whether it succeeded, its report, its steps."""
    result = defs.resolve_job_def("rollback").execute_in_process(
        instance=instance,
        run_config={
            "ops": {"roll_back_runs": {"config": {"since": since, "dry_run": dry_run}}},
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        },
        raise_on_error=False,
    )
    for event in result.all_events:  # the report is on the step's output or on its failure
        if event.is_successful_output:
            metadata = event.step_output_data.metadata
        elif event.is_step_failure:
            failure = event.step_failure_data.user_failure_data
            if failure is None or "report" not in failure.metadata:
                message = failure.description if failure else event.step_failure_data.error.message
                return False, f"error: {message}", 0
            metadata = failure.metadata
        else:
            continue
        return result.success, metadata["report"].value, metadata["steps"].value
    return False, f"error: run {result.run_id} ended without a rollback report", 0


@main.command()
@_plan_options
@click.option("--json", "as_json", is_flag=True, help="Every product's action, as JSON.")
@click.option("--sample", default=20, show_default=True, help="Rows whose diff is shown.")
def plan(force_resync: bool, no_checkpoint: bool, mirror: bool, as_json: bool, sample: int) -> None:
    """Show what `migrate` would do to every product (create, update which fields, new price,
    archive, unchanged, invalid, retry) with counts and a diff of a sample. Reads the catalog
    and the stored sync state only: no Stripe request, no write anywhere."""
    _mirror(mirror)
    _print_plan(
        force_resync=force_resync, no_checkpoint=no_checkpoint, as_json=as_json, sample=sample
    )


def _print_plan(
    *, force_resync: bool, no_checkpoint: bool, as_json: bool = False, sample: int = 20
) -> None:
    from stripe_sync.core.plan_output import PlanSummary
    from stripe_sync.core.planner import PlanOptions
    from stripe_sync.definitions import build_definitions
    from stripe_sync.migration import plan_migration

    home = _dagster_home()
    with _one_sentence_errors():
        defs = build_definitions()
        options = PlanOptions(
            force_resync=force_resync,
            use_checkpoints=not no_checkpoint,
            mirror=defs.resources["settings"].mirror,
        )
        summary = PlanSummary(sample=sample, every_row=as_json)
        plan_migration(defs, _instance(home), options, summary)
    click.echo(json.dumps(summary.to_json(), indent=2) if as_json else summary.to_markdown())


@main.command()
@click.option(
    "--catalog-columns",
    is_flag=True,
    help="Also empty the write-back columns of every catalog row (a catalog write).",
)
@click.option("--yes", is_flag=True, help="Don't ask for confirmation.")
def reset(catalog_columns: bool, yes: bool) -> None:
    """Forget the stored sync state (checkpoints) so the next run re-examines every product
    against Stripe. Touches neither Stripe nor, unless --catalog-columns, the catalog."""
    from stripe_sync.definitions import build_definitions
    from stripe_sync.migration import reset_sync_state

    _dagster_home()
    what = "the stored sync state" + (
        " and the catalog's write-back columns" if catalog_columns else ""
    )
    if not yes and not click.confirm(f"Forget {what}?", default=False):
        click.echo("nothing reset")
        sys.exit(1)
    with _one_sentence_errors():
        forgotten, emptied = reset_sync_state(build_definitions(), catalog_columns=catalog_columns)
    click.echo(f"forgot the checkpoints of {forgotten} batches")
    if catalog_columns:
        click.echo(f"emptied the write-back columns of {emptied} catalog rows")


@main.command()
@click.option("--products", default=240, show_default=True, help="Products in the sample catalog.")
@click.option(
    "--dir",
    "demo_dir",
    default=".stripe_sync_demo",
    show_default=True,
    type=click.Path(path_type=pathlib.Path),
)
def demo(products: int, demo_dir: pathlib.Path) -> None:
    """Run a whole migration locally, no accounts needed: a sample catalog in SQLite, the
    Stripe emulator, the migration, the report."""
    from stripe_sync.demo import seed_sample_catalog
    from stripe_sync.testing import EmulatorConfig, run_emulator

    demo_dir = demo_dir.resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    catalog_url = seed_sample_catalog(demo_dir / "catalog.db", products)
    state_file = demo_dir / "stripe_emulator.json"
    os.environ.update(
        CATALOG_DATABASE_URL=catalog_url,
        STRIPE_SECRET_KEY="sk_test_stripe_sync_demo",
        DAGSTER_HOME=os.environ.get("DAGSTER_HOME") or str(demo_dir / "dagster_home"),
        STRIPE_SYNC_REPORTS_DIR=str(demo_dir / "reports"),
        STRIPE_SYNC_BATCH_SIZE=os.environ.get("STRIPE_SYNC_BATCH_SIZE", "50"),
    )
    with run_emulator(
        EmulatorConfig(latency_ms=20, latency_jitter_ms=10), state_file=state_file
    ) as base_url:
        os.environ["STRIPE_API_BASE"] = base_url
        click.echo(f"sample catalog: {catalog_url}; Stripe emulator at {base_url}")
        succeeded = _migrate(
            batches_per_run=2, log_level="INFO", log_file=str(demo_dir / "stripe-sync.log")
        )
    click.echo(
        "\nTo browse these runs in the Dagster UI, start the emulator on its saved state and dagster dev:\n"
        f"  {pathlib.Path(sys.executable).parent / 'stripe-sync'} emulator --port 12111 --state-file {state_file} &\n"
        f"  CATALOG_DATABASE_URL={catalog_url} STRIPE_SECRET_KEY=sk_test_stripe_sync_demo "
        f"STRIPE_API_BASE=http://127.0.0.1:12111 DAGSTER_HOME={os.environ['DAGSTER_HOME']} "
        f"{_DAGSTER} dev"
    )
    sys.exit(0 if succeeded else 1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=12111, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Fixed latency added to every API request.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Latency jitter: each request waits latency ± up to N ms (uniform).",
)
@click.option(
    "--rate-limit",
    default=None,
    type=float,
    help="Global limit in requests/s (429 beyond it). Default: none.",
)
@click.option(
    "--endpoint-rate-limit",
    default=None,
    type=float,
    help="Per-endpoint limit in requests/s (429 beyond it). Default: none.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Probability that a request gets an injected fault.",
)
@click.option("--seed", default=None, type=int, help="Random seed for reproducible faults.")
@click.option(
    "--search-delay-s",
    default=2.0,
    show_default=True,
    type=float,
    help="Seconds before a new or changed object becomes searchable.",
)
@click.option(
    "--state-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Load state from this JSON file at start and save it there on exit.",
)
def emulator(
    host: str,
    port: int,
    latency_ms: float,
    jitter_ms: float,
    rate_limit: float | None,
    endpoint_rate_limit: float | None,
    fault_rate: float,
    seed: int | None,
    search_delay_s: float,
    state_file: pathlib.Path | None,
) -> None:
    """Run the local Stripe emulator (a stateful fake of the Stripe API) until SIGINT/SIGTERM."""
    # Imported here so the CLI loads even where the emulator can't.
    from stripe_sync.testing import EmulatorConfig, serve

    config = EmulatorConfig(
        latency_ms=latency_ms,
        latency_jitter_ms=jitter_ms,
        rate_limit=rate_limit,
        endpoint_rate_limit=endpoint_rate_limit,
        fault_rate=fault_rate,
        seed=seed,
        search_delay_s=search_delay_s,
    )
    serve(host, port, config, state_file)


if __name__ == "__main__":
    main()
