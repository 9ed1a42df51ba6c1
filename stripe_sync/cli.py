"""The ``stripe-sync`` command line."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Iterator

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
@click.option(
    "--batches-per-run",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Batches in one Dagster run.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARN", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option(
    "--log-file",
    default="logs/stripe-sync.log",
    show_default=True,
    help="Logs are also appended here.",
)
@click.option("--allow-live-mode", is_flag=True, help="Accept a live-mode Stripe key.")
@click.option(
    "--skip-validation",
    is_flag=True,
    help="Skip the business rules (minimum, maximum, free); Stripe's own still apply.",
)
def migrate(
    batch_size: int | None,
    batches_per_run: int,
    log_level: str,
    log_file: str,
    allow_live_mode: bool,
    skip_validation: bool,
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
    sys.exit(0 if _migrate(batches_per_run, log_level, log_file) else 1)


def _migrate(batches_per_run: int, log_level: str, log_file: str) -> bool:
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
    with _one_sentence_errors():
        defs = _checked_definitions()
        result = run_migration(
            defs,
            _instance(home),
            batches_per_run=batches_per_run,
            log_level=log_level,
            log_file=log_file,
            say=click.echo,
            stop_requested=stop.is_set,
        )
    click.echo(result.report_markdown)
    click.echo(f"Dagster runs are in {home}: see them with `DAGSTER_HOME={home} {_DAGSTER} dev`.")
    if not result.succeeded:
        click.echo(
            f"{len(result.failed_batches)} batches failed: rerun `stripe-sync migrate` to retry them.",
            err=True,
        )
    return result.succeeded


# --- verify (stripe-sync verify) ---

# --- rollback (stripe-sync rollback) ---

# --- plan and reset (stripe-sync plan, stripe-sync reset) ---


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
