"""The `stripe-sync` command line: flags -> settings -> an operation -> what it printed.

Every command loads the settings once (the project file, the environment and .env, then its
own flags) and hands them to `stripe_sync.operations`; nothing here touches the environment,
so a flag of one command never reaches the next.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from stripe_sync.core.wording import counted

# The dagster command of this environment, for the hints this CLI prints.
_DAGSTER = pathlib.Path(sys.executable).parent / "dagster"


@dataclass(frozen=True)
class _Invocation:
    config_file: pathlib.Path | None


@click.group()
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="The settings file (default ./stripe_sync.yaml, or STRIPE_SYNC_CONFIG).",
)
@click.pass_context
def main(context: click.Context, config_file: pathlib.Path | None) -> None:
    """stripe-sync: move a product catalog into Stripe Products and Prices."""
    context.obj = _Invocation(config_file)


@contextlib.contextmanager
def _one_sentence_errors() -> Iterator[None]:
    """Configuration problems end the command with their sentence, not a traceback."""
    from stripe_sync.core.errors import CatalogError, ConfigError

    try:
        yield
    except (ConfigError, CatalogError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)


def _settings(cwd: pathlib.Path | None = None, **flags: Any):
    """The command's settings: the project file, the environment and `.env` (of `cwd`, by
    default this directory), then its flags (a flag left unset is None and changes nothing).
    Wrong settings end the command here."""
    from stripe_sync.settings.loader import load_settings

    invocation: _Invocation = click.get_current_context().find_object(_Invocation)
    with _one_sentence_errors():
        return load_settings(config_file=invocation.config_file, overrides=flags, cwd=cwd)


def _preflight(settings):
    """Pre-flight: print what it found and return it, or end the command with its one
    sentence."""
    from stripe_sync.operations.preflight import preflight

    with _one_sentence_errors():
        found = preflight(settings, say=_say)
    for line in found.lines():
        click.echo(line)
    return found


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
                default=None,
                help="Archive the Stripe products of rows deleted from the catalog "
                "(setting sync.mirror).",
            ),
        ]
    ):
        command = option(command)
    return command


def _run_options(*, log_level: str | None):
    """The options of commands that run Dagster jobs over the batches (`migrate`, `verify`).
    `log_level` None: the command draws a progress bar, and the runs' logs reach the console
    only at a level asked for."""
    log_level_help = (
        "The runs' log level, on the console and in --log-file."
        if log_level
        else "Also show the runs' logs on the console, at this level (without it they go to "
        "--log-file only, at INFO, and the console shows a progress bar)."
    )

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
                    show_default=log_level is not None,
                    help=log_level_help,
                ),
                click.option(
                    "--log-file",
                    default=None,
                    help="Logs are also appended here (default: logs/ in this directory).",
                ),
                _allow_live_mode,
            ]
        ):
            command = option(command)
        return command

    return decorate


_allow_live_mode = click.option(
    "--allow-live-mode",
    is_flag=True,
    default=None,
    help="Accept a live-mode Stripe key (setting stripe.allow_live_mode).",
)


def _ui_hint(home: pathlib.Path) -> str:
    """A command that serves the runs in the Dagster UI from wherever it is run: it goes to
    this directory, whose settings the code location reads (or the --config file, named in
    the command)."""
    from stripe_sync.operations.ui import WORKSPACE_FILE
    from stripe_sync.settings.loader import CONFIG_FILE_VARIABLE

    invocation: _Invocation = click.get_current_context().find_object(_Invocation)
    config = invocation.config_file if invocation is not None else None
    variables = [f"DAGSTER_HOME={shlex.quote(str(home))}"]
    if config is not None:
        variables.append(f"{CONFIG_FILE_VARIABLE}={shlex.quote(str(config.resolve()))}")
    workspace = shlex.quote(str(home / WORKSPACE_FILE))
    # From this directory: the code location reads stripe_sync.yaml and .env where it starts.
    here = shlex.quote(str(pathlib.Path.cwd()))
    command = f"cd {here} && {' '.join(variables)} {shlex.quote(str(_DAGSTER))} dev -w {workspace}"
    return f"Dagster runs are in {home}: see them with `{command}`."


@main.command()
@_allow_live_mode
def preflight(allow_live_mode: bool | None) -> None:
    """Check the catalog (reachable, table and write-back columns) and the Stripe key (valid,
    test or live mode, account) without writing anything."""
    _preflight(_settings(**{"stripe.allow_live_mode": allow_live_mode}))
    click.echo("preflight: ok")


@main.command()
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Rows per batch for new batches (setting sync.batch_size, default 1000).",
)
@_run_options(log_level=None)
@click.option(
    "--skip-validation",
    is_flag=True,
    default=None,
    help="Skip the business rules (minimum, maximum, free); Stripe's own still apply.",
)
@click.option("--dry-run", is_flag=True, help="Print the plan (as `stripe-sync plan`) and stop.")
@_plan_options
def migrate(
    batch_size: int | None,
    batches_per_run: int,
    log_level: str | None,
    log_file: str | None,
    allow_live_mode: bool | None,
    skip_validation: bool | None,
    dry_run: bool,
    force_resync: bool,
    no_checkpoint: bool,
    mirror: bool | None,
) -> None:
    """Sync the catalog into Stripe: pre-flight, register batches, run them, report.

    Draws one progress bar for the whole migration (plain lines when the output is not a
    terminal). Runs are recorded in the DAGSTER_HOME instance and show in `dagster dev`.
    Exits 0 when every valid product is synced, 1 when any batch failed.
    """
    from stripe_sync.defs.loggers import LogOptions
    from stripe_sync.defs.run_options import RunOptions

    settings = _settings(
        **{"sync.batch_size": batch_size, "stripe.allow_live_mode": allow_live_mode}
    )
    options = RunOptions(
        force_resync=force_resync,
        no_checkpoint=no_checkpoint,
        mirror=mirror,
        skip_validation=skip_validation,
    )
    if dry_run:
        _print_plan(settings, options)
        return
    # Without --log-level the console shows the progress bar, and the logs go to the file.
    logs = LogOptions.given(log_level=log_level, log_file=log_file, console=bool(log_level))
    sys.exit(0 if _migrate(settings, options, logs, batches_per_run) else 1)


def _say(line: str) -> None:
    """A line of the command's own while the progress bar may be drawn: through `sys.stdout`
    as it is now, which puts it above the bar on a terminal (click.echo writes to the stream's
    binary buffer, past rich's redirection, onto the bar's own line)."""
    print(line, flush=True)


def _migrate(settings, options, logs, batches_per_run: int) -> bool:
    """Pre-flight, then the migration under its progress bar, then the report."""
    from stripe_sync.operations.migrate import migrate as run_migration
    from stripe_sync.operations.migrate import open_dagster
    from stripe_sync.progress_display import migration_progress

    started = datetime.now(UTC).isoformat(timespec="seconds")
    with migration_progress() as progress:
        with _one_sentence_errors():
            dagster = open_dagster(settings, progress)
        checked = _preflight(settings)
        with _stop_on_signal() as stop, _one_sentence_errors():
            result = run_migration(
                settings,
                options,
                logs,
                batches_per_run=batches_per_run,
                say=_say,
                stop_requested=stop.is_set,
                progress=progress,
                dagster=dagster,
                catalog_rows=checked.catalog_rows,  # pre-flight counted them: no second count
            )
    _report_migration(settings, result, started)
    return result.succeeded


def _report_migration(settings, result, started: str, *, ui_hint: bool = True) -> None:
    click.echo(result.report_markdown)
    if ui_hint:
        click.echo(_ui_hint(settings.dagster_home))
    if result.may_have_written:
        # A time, not the first run's id: a run that changed nothing takes no backup.
        click.echo(f"To undo this migration: stripe-sync rollback --since {started}")
    if result.failed_batches:
        click.echo(
            f"{counted(len(result.failed_batches), 'batch')} failed: rerun `stripe-sync migrate` "
            "to retry them.",
            err=True,
        )
    if result.stopped_batches:
        click.echo(
            f"Stopped on request: {counted(len(result.stopped_batches), 'batch')} left for the "
            "next run: rerun `stripe-sync migrate` to go on.",
            err=True,
        )


@contextlib.contextmanager
def _stop_on_signal() -> Iterator[threading.Event]:
    """Ctrl+C, SIGTERM or SIGHUP between runs: no new batch starts. During a run Dagster's own
    handler takes them, and the Stripe step defers every one until what Stripe answered is
    recorded. A second signal between runs stops at once: nothing is left to record."""
    stop = threading.Event()

    def request_stop(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    def as_ctrl_c(signum, frame):
        # The terminal closed: whoever takes a Ctrl+C now takes this (Dagster's handler, during
        # a run, takes SIGINT and SIGTERM only).
        signal.raise_signal(signal.SIGINT)

    handlers = {signal.SIGINT: request_stop, signal.SIGTERM: request_stop, signal.SIGHUP: as_ctrl_c}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- verify (stripe-sync verify) ---


@main.command()
@_run_options(log_level="WARN")
def verify(
    batches_per_run: int, log_level: str, log_file: str | None, allow_live_mode: bool | None
) -> None:
    """Check that Stripe holds what the latest sync of every batch made of the catalog: each
    product, its fields and default price; invalid, archived and deleted rows not live.

    Reads Stripe only, 100 products a request. Runs the asset checks of the `verify_batches`
    job in the DAGSTER_HOME instance, so the results show in `dagster dev`; drifted rows are
    reconciled by the next `stripe-sync migrate`. Exits 0 when everything matches (warnings
    allowed), 1 on a mismatch, 2 when the configuration is wrong, 3 when some batches could
    not be verified (Stripe unreachable, a run failed).
    """
    from stripe_sync.defs.loggers import LogOptions
    from stripe_sync.defs.run_options import RunOptions
    from stripe_sync.operations.verify import verify as run_verification

    settings = _settings(**{"stripe.allow_live_mode": allow_live_mode})
    with _one_sentence_errors():
        outcome = run_verification(
            settings,
            RunOptions(),
            LogOptions.given(log_level=log_level, log_file=log_file),
            batches_per_run=batches_per_run,
        )
    click.echo(outcome.markdown())
    click.echo(_ui_hint(settings.dagster_home))
    for failure in outcome.failures:
        click.echo(f"error: {failure}", err=True)
    sys.exit(outcome.exit_code)


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
@_allow_live_mode
def rollback(since: str | None, dry_run: bool, yes: bool, allow_live_mode: bool | None) -> None:
    """Undo migrations from their backups: archive the products they created, restore the
    fields and default prices of those they changed, reset the catalog's write-back columns.

    Shows the plan and asks first (unless --yes). Runs the Dagster job `rollback` in process
    against the DAGSTER_HOME instance, so it shows in `dagster dev`. A second rollback finds
    nothing to do. Exits 0 when done, 1 when a step failed (rerun it), 2 on configuration.
    """
    ask = not (dry_run or yes)
    if ask and not sys.stdin.isatty():
        click.echo(
            "error: rollback asks before it writes and there is no terminal to ask on: pass "
            "--yes to roll back, or --dry-run to see the plan.",
            err=True,
        )
        sys.exit(2)
    settings = _settings(**{"stripe.allow_live_mode": allow_live_mode})
    sys.exit(0 if _rollback(settings, since, dry_run=dry_run, ask=ask) else 1)


def _rollback(settings, since: str | None, *, dry_run: bool, ask: bool) -> bool:
    from stripe_sync.operations.rollback import check_window
    from stripe_sync.operations.rollback import rollback as run_rollback

    with _one_sentence_errors():
        check_window(settings, since)  # an unknown --since stops here
        _preflight(settings)
        if ask:
            planned = run_rollback(settings, since, dry_run=True)
            click.echo(planned.text())
            if not planned.succeeded or planned.steps == 0:
                return planned.succeeded
            click.confirm(f"Apply {counted(planned.steps, 'step')}?", abort=True)
        result = run_rollback(settings, since, dry_run=dry_run)
    click.echo(result.text())
    click.echo(_ui_hint(settings.dagster_home))
    return result.succeeded


@main.command()
@_plan_options
@click.option("--json", "as_json", is_flag=True, help="Every product's action, as JSON.")
@click.option("--sample", default=20, show_default=True, help="Rows whose diff is shown.")
def plan(
    force_resync: bool, no_checkpoint: bool, mirror: bool | None, as_json: bool, sample: int
) -> None:
    """Show what `migrate` would do to every product (create, update which fields, new price,
    archive, unchanged, invalid, retry) with counts and a diff of a sample. Reads the catalog
    and the stored sync state only: no Stripe request, no write anywhere."""
    from stripe_sync.defs.run_options import RunOptions

    options = RunOptions(force_resync=force_resync, no_checkpoint=no_checkpoint, mirror=mirror)
    _print_plan(_settings(), options, as_json=as_json, sample=sample)


def _print_plan(settings, options, *, as_json: bool = False, sample: int = 20) -> None:
    from stripe_sync.core.plan_output import PlanSummary
    from stripe_sync.operations.plan import plan as plan_migration

    with _one_sentence_errors():
        summary = plan_migration(
            settings,
            options,
            PlanSummary(sample=sample, every_row=as_json, mapping=settings.catalog_mapping()),
            say=lambda line: click.echo(line, err=True),  # stdout may be the plan's JSON
        )
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
    from stripe_sync.operations.reset import reset as reset_state

    settings = _settings()
    what = "the stored sync state" + (
        " and the catalog's write-back columns" if catalog_columns else ""
    )
    if not yes and not click.confirm(f"Forget {what}?", default=False):
        click.echo("nothing reset")
        sys.exit(1)
    with _one_sentence_errors():
        result = reset_state(settings, catalog_columns=catalog_columns)
    click.echo(f"forgot the checkpoints of {counted(result.checkpoints_forgotten, 'product')}")
    if catalog_columns:
        rows = counted(result.catalog_rows_emptied, "catalog row")
        click.echo(f"emptied the write-back columns of {rows}")
        if result.adopted_ids_kept:
            adopted = counted(result.adopted_ids_kept, "adopted product")
            click.echo(f"kept the Stripe ids of {adopted}: nothing else would find them")


@main.command("config")
def show_config() -> None:
    """Print the effective settings (defaults, the project file, the environment and .env)
    with where each value came from; secrets masked."""
    click.echo(_settings().table())


@main.command()
@click.option("--products", default=240, show_default=True, help="Products in the sample catalog.")
@click.option(
    "--dir",
    "demo_dir",
    default=".stripe_sync_demo",
    show_default=True,
    type=click.Path(path_type=pathlib.Path),
)
@click.option(
    "--ui",
    is_flag=True,
    help="Then serve the runs in the Dagster UI (dagster dev) with the emulator on its saved "
    "state, until Ctrl+C.",
)
@click.option(
    "--ui-port",
    default=3000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The UI's port (another free one if it is taken).",
)
def demo(products: int, demo_dir: pathlib.Path, ui: bool, ui_port: int) -> None:
    """Run a whole migration locally, no accounts needed: a sample catalog in SQLite, the
    Stripe emulator, the migration, the report; with --ui, then the Dagster UI on it."""
    from stripe_sync.operations.demo import run_demo, show_demo_in_ui
    from stripe_sync.progress_display import migration_progress

    demo_dir = demo_dir.resolve()
    # Not this directory's stripe_sync.yaml and .env: they describe your catalog, not the
    # sample's. The environment and a --config file still count.
    settings = _settings(cwd=demo_dir)
    log_file = demo_dir / "stripe-sync.log"
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with (
        migration_progress() as progress,
        _stop_on_signal() as stop,
        _one_sentence_errors(),
    ):
        run = run_demo(
            settings,
            demo_dir,
            products,
            log_file=str(log_file),
            say=_say,
            stop_requested=stop.is_set,
            progress=progress,
        )
    _report_migration(run.settings, run.migration, started, ui_hint=False)
    click.echo(f"The runs' logs: {log_file}")
    ui_failure = None
    if not ui:
        click.echo("\nTo browse these runs in the Dagster UI, rerun with --ui.")
    elif not (stop.is_set() or run.stopped_on_request):  # stopped: no UI either
        with _stop_on_signal() as stop_ui:
            ui_failure = show_demo_in_ui(
                run,
                ui_port,
                config_file=click.get_current_context().find_object(_Invocation).config_file,
                say=click.echo,
                stop_requested=stop_ui.is_set,
            )
    if ui_failure:
        click.echo(f"error: {ui_failure}", err=True)
    sys.exit(0 if run.migration.succeeded and ui_failure is None else 1)


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
@click.option(
    "--livemode",
    is_flag=True,
    help="A live-mode account: it accepts live keys (sk_live_, rk_live_) and no test keys.",
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
    livemode: bool,
) -> None:
    """Run the local Stripe emulator (a stateful fake of the Stripe API) until SIGINT/SIGTERM."""
    # Imported here so the CLI loads even where the emulator can't.
    from stripe_sync.emulator import EmulatorConfig, serve

    config = EmulatorConfig(
        latency_ms=latency_ms,
        latency_jitter_ms=jitter_ms,
        rate_limit=rate_limit,
        endpoint_rate_limit=endpoint_rate_limit,
        fault_rate=fault_rate,
        seed=seed,
        search_delay_s=search_delay_s,
        livemode=livemode,
    )
    serve(host, port, config, state_file)


def run() -> NoReturn:
    """The `stripe-sync` command: `main`, then the process ends at once, its output and log
    files flushed. The interpreter's own teardown of the modules a migration loaded (Dagster,
    pandas, SQLAlchemy) takes most of a second and does nothing a finished command needs."""
    try:
        main()
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    if not isinstance(code, int):  # as the interpreter does: None is 0, anything else said
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    run()
