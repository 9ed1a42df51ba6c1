"""The migration benchmark: the whole pipeline against the emulator at Stripe's limits, and
the catalog side at a million rows. Prints one table.

    python benchmarks/migration.py [--products 2000] [--scale-rows 1000000]
                                   [--command-products 400] [--live-products 600]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                                   [--prices-products 300] [--scenarios 1,2,3,4,5,6,7,8]

Scenarios 1 to 5 run the migration in this process (`run_migration`, as `stripe-sync
migrate` does after its pre-flight) against an emulator with 150 ms +/- 50 ms latency and
Stripe's test-mode limits (25 requests/s global and per endpoint); the shared throttle is
set to exactly that limit, STRIPE_SYNC_THROTTLE_FRACTION=1.0:

1. Initial migration of N new products.
2. No-op resync of the same catalog.
3. Resync with 1% of the rows changed (half renamed, half repriced).
4. A catalog of a million rows in PostgreSQL, no Stripe: batch registration, `stripe-sync
   plan` (time and peak RSS, in its own process), one batch's write-back, and how many
   runs a backfill of every batch makes.
5. Dagster's overhead: seconds per partition of the no-op resync, the time Stripe reads
   were in flight excluded.

Scenarios 6 and 7 run the whole `stripe-sync migrate` command as a new user would (its own
process, default settings: the throttle uses 0.8 of the limits) against an emulator with
300 ms latency, and print where its time goes: process start, pre-flight, registration,
each step and check of the run, the report, exit; the write window (first to last Stripe
write, from the emulator's request log) against the whole command:

6. Test-mode limits (25/s global and per endpoint): `--command-products` new products, then
   a no-op rerun.
7. Live-mode limits (100/s global, 25/s per endpoint; the emulator in live mode, a live key
   with STRIPE_ALLOW_LIVE_MODE=true): `--live-products` new products; 429s and an exact
   check of Stripe's state (every product once, with one active price, its default).

8. Several prices per product (in process, scenarios 1-5's emulator settings):
   `--prices-products` new products with 3 prices each from a prices table (one-time EUR,
   the default, monthly EUR, yearly USD): requests per price.

Every scenario's catalog has N/10 rows a batch: one run of 10 partitions, as migrate and
backfills do. It makes databases (`--database-name`, default `stripe_sync_bench`, and the
same name with `_test` and `_live` for scenarios 6 and 7; dropped first) on the server of
--database-url.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from emulator_throughput import free_port, start_emulator
from psycopg import sql

LATENCY_MS, JITTER_MS = 150, 50
COMMAND_LATENCY_MS = 300.0
STRIPE_TEST_LIMIT = 25.0  # requests/s, global and per endpoint (STRIPE_FACTS.md)
STRIPE_LIVE_LIMIT = 100.0  # requests/s, global; 25/s per endpoint as in test mode
BENCH_DATABASE = "stripe_sync_bench"
SECRET_KEY = "sk_test_stripe_sync_benchmark"
LIVE_SECRET_KEY = "sk_live_stripe_sync_benchmark"
TABLE_DDL = """
    create table {table} (
        id text primary key, name text, description text, price numeric, currency text,
        images text[], active boolean, updated_at timestamptz not null default now(),
        stripe_product_id text, stripe_price_id text, sync_status text, sync_error text,
        synced_at timestamptz, sync_hash text
    )
"""
INSERT_ROWS = """
    insert into {table} (id, name, description, price, currency, active)
    select 'p' || lpad(n::text, 7, '0'), 'Product ' || n, 'The product number ' || n,
           1 + (n %% 997) / 100.0, 'eur', true
    from generate_series(1, %s) as n
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--scale-rows", type=int, default=1_000_000)
    parser.add_argument("--command-products", type=int, default=400, help="scenario 6")
    parser.add_argument("--live-products", type=int, default=600, help="scenario 7")
    parser.add_argument("--prices-products", type=int, default=300, help="scenario 8")
    parser.add_argument(
        "--command-latency-ms", type=float, default=COMMAND_LATENCY_MS, help="scenarios 6, 7"
    )
    parser.add_argument(
        "--scenarios",
        default="1,2,3,4,5,6,7,8",
        help="which to run; 1, 2, 3 and 5 run together (each builds on the one before)",
    )
    parser.add_argument("--database-name", default=BENCH_DATABASE, help="made (dropped first)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "STRIPE_SYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    chosen = set(args.scenarios.split(","))
    # The commands of scenarios 6 and 7 get an environment of their own, not this process's.
    environment = dict(os.environ)
    work = Path(tempfile.mkdtemp(prefix="stripe_sync_bench_"))
    figures = Figures()
    if chosen & {"1", "2", "3", "4", "5"}:
        in_process_scenarios(figures, args, chosen, work)
    if "8" in chosen:
        prices_scenario(figures, args, work)
    if "6" in chosen:
        command_scenario(figures, args, environment, work, live=False)
    if "7" in chosen:
        command_scenario(figures, args, environment, work, live=True)
    figures.print(args)


def in_process_scenarios(
    figures: Figures, args: argparse.Namespace, chosen: set[str], work: Path
) -> None:
    database_url = fresh_database(args.database_url, args.database_name)
    port = free_port()
    emulator = start_emulator(
        port,
        *("--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS)),
        *("--rate-limit", str(STRIPE_TEST_LIMIT)),
        *("--endpoint-rate-limit", str(STRIPE_TEST_LIMIT)),
    )
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            # 10 batches of N/10 rows: one run of 10 partitions, as migrate and backfills do.
            set_environment(
                work,
                database_url,
                f"http://127.0.0.1:{port}",
                table="products",
                batch_size=max(1, args.products // 10),
            )
            if chosen & {"1", "2", "3", "5"}:
                stripe_scenarios(figures, connection, args.products, f"http://127.0.0.1:{port}")
            if "4" in chosen:
                scale_scenario(figures, connection, database_url, work, args.scale_rows)
    finally:
        emulator.terminate()
        emulator.wait()


class Figures:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, scenario: str, figure: str, value: str) -> None:
        self.rows.append((scenario, figure, value))
        print(f"  {scenario}: {figure} = {value}", flush=True)

    def print(self, args: argparse.Namespace) -> None:
        print()
        print(
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}; "
            f"scenarios 1-5: emulator latency {LATENCY_MS} ms +/- {JITTER_MS} ms, limit "
            f"{STRIPE_TEST_LIMIT:.0f}/s, {args.products} products, {args.scale_rows:,} rows at "
            f"scale; scenarios 6, 7: latency {args.command_latency_ms:.0f} ms, "
            f"{args.command_products} and {args.live_products} products"
        )
        print()
        print("| scenario | figure | value |")
        print("| --- | --- | ---: |")
        for scenario, figure, value in self.rows:
            print(f"| {scenario} | {figure} | {value} |")


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    head, _, _ = admin_url.rpartition("/")
    return f"{head}/{name}"


def set_environment(
    work: Path, database_url: str, api_base: str, *, table: str, batch_size: int
) -> None:
    home = work / f"dagster_home_{table}"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ.update(
        DAGSTER_HOME=str(home),
        CATALOG_DATABASE_URL=database_url,
        CATALOG_TABLE=table,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_API_BASE=api_base,
        STRIPE_SYNC_THROTTLE_FRACTION="1.0",
        STRIPE_SYNC_BATCH_SIZE=str(batch_size),
        STRIPE_SYNC_REPORTS_DIR=str(work / "reports"),
    )


def make_table(connection: psycopg.Connection, table: str, rows: int) -> None:
    connection.execute(sql.SQL(TABLE_DDL).format(table=sql.Identifier(table)))
    connection.execute(sql.SQL(INSERT_ROWS).format(table=sql.Identifier(table)), [rows])
    connection.execute(sql.SQL("analyze {}").format(sql.Identifier(table)))


def migrate(work_log: Path):
    from stripe_sync.defs.loggers import LogOptions
    from stripe_sync.defs.run_options import RunOptions
    from stripe_sync.operations.migrate import migrate as run_migration
    from stripe_sync.settings.loader import load_settings

    started = time.monotonic()
    result = run_migration(
        load_settings(),
        RunOptions(),
        LogOptions(log_level="WARN", log_file=str(work_log)),
        say=lambda _: None,
    )
    assert result.succeeded, result.report_markdown
    return result, time.monotonic() - started


def stripe_scenarios(
    figures: Figures, connection: psycopg.Connection, products: int, api_base: str
) -> None:
    from stripe_sync.emulator import EmulatorControl

    control = EmulatorControl(api_base)
    log_file = Path(os.environ["DAGSTER_HOME"]) / "bench.log"
    make_table(connection, "products", products)

    print("1. initial migration", flush=True)
    result, seconds = migrate(log_file)
    log = control.requests()
    creates = [e for e in log if e["endpoint"] == "POST /v1/products"]
    starts = sorted(e["started_at"] for e in creates)
    sustained = (len(starts) - 1) / (starts[-1] - starts[0])
    # Not the sync's: one account read per migration, and verification's list reads.
    sync_requests = [e for e in log if e["endpoint"] not in ("GET /v1/account", "GET /v1/products")]
    name = f"1. initial, {products} new"
    figures.add(name, "wall time", f"{seconds:.1f} s")
    figures.add(name, "products/s (wall)", f"{products / seconds:.2f}")
    figures.add(
        name,
        "sustained rate (creates)",
        f"{sustained:.2f}/s = {sustained / STRIPE_TEST_LIMIT:.1%} of 25/s",
    )
    figures.add(name, "sync requests per product", f"{len(sync_requests) / products:.2f}")
    figures.add(
        name, "all requests per product (with verification reads)", f"{len(log) / products:.3f}"
    )
    figures.add(name, "requests", _by_endpoint(log))
    limited = Counter(e["endpoint"] for e in log if e["status"] == 429)
    figures.add(name, "429s", ", ".join(f"{n} on {k}" for k, n in limited.items()) or "0")
    figures.add(
        name, "write-back and state statements per batch", write_backs_per_batch(result.run_ids)
    )

    print("2. no-op resync", flush=True)
    before = len(log)
    result, seconds = migrate(log_file)
    log = control.requests()[before:]
    writes = [e for e in log if e["method"] == "POST"]
    batches = result.report["batches"]
    figures.add("2. no-op resync", "wall time", f"{seconds:.1f} s")
    figures.add(
        "2. no-op resync",
        "Stripe writes / reads",
        f"{len(writes)} / {len(log) - len(writes)} (N/100 = {math.ceil(products / 100)})",
    )
    reading = in_flight(log)  # the verification's reads, several at once
    figures.add(
        "5. Dagster overhead",
        "no-op resync: seconds per partition, Stripe reads excluded",
        f"{(seconds - reading) / batches:.2f} ({batches} partitions in "
        f"{len(result.run_ids)} run(s) and the report; reads in flight {reading:.1f} s)",
    )

    print("3. 1% changed", flush=True)
    changed = max(2, products // 100)
    ids = [f"p{n:07d}" for n in range(1, products + 1, products // changed)][:changed]
    renamed, repriced = ids[: changed // 2], ids[changed // 2 :]
    connection.execute(
        "update products set name = name || ' (renamed)', updated_at = now() where id = any(%s)",
        [renamed],
    )
    connection.execute(
        "update products set price = price + 1, updated_at = now() where id = any(%s)", [repriced]
    )
    before = len(control.requests())
    result, seconds = migrate(log_file)
    log = control.requests()[before:]
    figures.add("3. 1% changed", "wall time", f"{seconds:.1f} s")
    figures.add(
        "3. 1% changed", "rows changed", f"{len(renamed)} renamed, {len(repriced)} repriced"
    )
    figures.add("3. 1% changed", "Stripe requests", f"{len(log)}: {_by_endpoint(log)}")
    figures.add(
        "3. 1% changed",
        "expected",
        f"{len(renamed)} + 3 x {len(repriced)} writes; reads: backups (1 per 100 changed products a run) and verification (1 per 100 products a run)",
    )


def in_flight(log: list[dict]) -> float:
    """Seconds during which at least one of these requests was in flight."""
    seconds, until = 0.0, 0.0
    for entry in sorted(log, key=lambda e: e["started_at"]):
        start = max(entry["started_at"], until)
        if entry["ended_at"] > start:
            seconds += entry["ended_at"] - start
        until = max(until, entry["ended_at"])
    return seconds


def _by_endpoint(log: list[dict]) -> str:
    counts = Counter(
        e["endpoint"] + ("" if e["status"] == 200 else f" ({e['status']})") for e in log
    )
    return ", ".join(f"{n} {endpoint}" for endpoint, n in sorted(counts.items()))


def write_backs_per_batch(run_ids: list[str]) -> str:
    import dagster as dg

    statements, batches = 0, 0
    with dg.DagsterInstance.get() as instance:
        for asset in ("stripe_products", "stripe_prices"):
            seen = set()
            for record in instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records:
                if record.run_id in run_ids and record.run_id not in seen:
                    seen.add(record.run_id)
                    statements += record.asset_materialization.metadata[
                        "catalog_write_back_requests"
                    ].value
            if asset == "stripe_products":
                batches = sum(1 for _ in instance.get_dynamic_partitions("product_batches"))
    return f"{statements / batches:.2f} ({statements} statements, {batches} batches)"


def scale_scenario(
    figures: Figures, connection: psycopg.Connection, database_url: str, work: Path, rows: int
) -> None:
    import dagster as dg

    from stripe_sync.backends import open_state
    from stripe_sync.backends.sql.catalog import SqlCatalog
    from stripe_sync.core.checkpoints import Checkpoint
    from stripe_sync.core.contract import WriteBack
    from stripe_sync.defs.assets import BATCHES_PER_RUN
    from stripe_sync.defs.jobs import register_batches
    from stripe_sync.settings.loader import load_settings

    name = f"4. {rows:,} rows"
    print(name, flush=True)
    started = time.monotonic()
    make_table(connection, "products_scale", rows)
    figures.add(name, "catalog fill (generate_series)", f"{time.monotonic() - started:.1f} s")
    set_environment(
        work, database_url, os.environ["STRIPE_API_BASE"], table="products_scale", batch_size=1000
    )

    with dg.DagsterInstance.get() as instance:
        started = time.monotonic()
        keys = register_batches(instance, load_settings(), 1000)
        figures.add(
            name, "batch registration", f"{time.monotonic() - started:.1f} s ({len(keys)} batches)"
        )

    started = time.monotonic()
    plan = subprocess.run(
        [str(Path(sys.executable).with_name("stripe-sync")), "plan"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    seconds = time.monotonic() - started
    # The largest RSS of the children waited for: only the plan (the emulator still runs).
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    first_line = plan.stdout.splitlines()[0]
    figures.add(
        name, "plan (`stripe-sync plan`, start-up included)", f"{seconds:.1f} s: {first_line}"
    )
    figures.add(name, "plan: peak RSS", f"{peak_mib:.0f} MiB")

    catalog = SqlCatalog(database_url, "products_scale")
    state = open_state(catalog)
    batch = [
        WriteBack(
            f"p{n:07d}", f"cms_p{n:07d}", "price_x", "synced", None, datetime.now(UTC), "v1:x"
        )
        for n in range(1, 1001)
    ]
    checkpoints = {
        keys[0]: {row.id: Checkpoint(row.stripe_product_id, "price_x", "v1:x") for row in batch}
    }
    started = time.monotonic()
    statements = state.record(
        batch, checkpoints, batch_of=dict.fromkeys((row.id for row in batch), keys[0])
    )
    figures.add(
        name,
        "write-back and state of one 1,000-row batch",
        f"{statements} statements in one transaction, {time.monotonic() - started:.2f} s",
    )
    catalog.close()
    figures.add(
        name,
        "runs to backfill every batch",
        f"{math.ceil(len(keys) / BATCHES_PER_RUN)} ({BATCHES_PER_RUN} batches a run)",
    )


# --- scenario 8: several prices per product ------------------------------------------

PRICE_ROWS = """
    insert into product_prices (price_key, product_id, amount_cents, currency, billing_interval)
    select products.id || '-' || price.kind, products.id, price.amount, price.currency,
           price.billing_interval
    from products,
         (values ('once', 1250, 'eur', null), ('monthly', 990, 'eur', 'month'),
                 ('yearly', 10900, 'usd', 'year')) as price(kind, amount, currency, billing_interval)
"""


def prices_scenario(figures: Figures, args: argparse.Namespace, work: Path) -> None:
    """An initial migration of `--prices-products` products with 3 prices each (one-time EUR,
    the default; monthly EUR; yearly USD) from a prices table, in process, at test-mode
    limits."""
    name = f"8. {args.prices_products} new with 3 prices each"
    print(name, flush=True)
    database_url = fresh_database(args.database_url, f"{args.database_name}_prices")
    port = free_port()
    emulator = start_emulator(
        port,
        *("--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS)),
        *("--rate-limit", str(STRIPE_TEST_LIMIT)),
        *("--endpoint-rate-limit", str(STRIPE_TEST_LIMIT)),
    )
    try:
        with psycopg.connect(database_url, autocommit=True) as connection:
            make_table(connection, "products", args.prices_products)
            connection.execute(
                "create table product_prices (price_key text primary key, product_id text, "
                "amount_cents integer, currency text, billing_interval text)"
            )
            connection.execute(PRICE_ROWS)
        api_base = f"http://127.0.0.1:{port}"
        set_environment(
            work,
            database_url,
            api_base,
            table="products",
            batch_size=max(1, args.prices_products // 10),
        )
        os.environ.update(
            STRIPE_SYNC_PRICES_TABLE="product_prices",
            STRIPE_SYNC_PRICES_COLUMNS=json.dumps(
                {"id": "price_key", "amount": "amount_cents", "interval": "billing_interval"}
            ),
            STRIPE_SYNC_PRICES_PRICE_UNIT="minor",
            STRIPE_SYNC_CATALOG_COLUMNS=json.dumps({"price": None, "currency": None}),
        )
        from stripe_sync.emulator import EmulatorControl

        result, seconds = migrate(Path(os.environ["DAGSTER_HOME"]) / "bench.log")
        log = EmulatorControl(api_base).requests()
        prices = 3 * args.prices_products
        # Not the sync's: the account read, verification's product and price reads.
        sync = [e for e in log if e["method"] == "POST"]
        figures.add(name, "wall time", f"{seconds:.1f} s")
        figures.add(name, "sync requests per price", f"{len(sync) / prices:.2f}")
        figures.add(
            name, "all requests per price (with verification reads)", f"{len(log) / prices:.2f}"
        )
        figures.add(name, "requests", _by_endpoint(log))
        figures.add(name, "report: prices", json.dumps(result.report["prices"]))
    finally:
        for variable in (
            "STRIPE_SYNC_PRICES_TABLE",
            "STRIPE_SYNC_PRICES_COLUMNS",
            "STRIPE_SYNC_PRICES_PRICE_UNIT",
            "STRIPE_SYNC_CATALOG_COLUMNS",
        ):
            os.environ.pop(variable, None)
        emulator.terminate()
        emulator.wait()


# --- scenarios 6 and 7: the whole command --------------------------------------------


def command_scenario(
    figures: Figures, args: argparse.Namespace, environment: dict, work: Path, *, live: bool
) -> None:
    """`stripe-sync migrate` as its own process over new products (and, in test mode, again
    with nothing to do): where its time goes, and how fast it writes."""
    from stripe_sync.emulator import EmulatorControl

    products = args.live_products if live else args.command_products
    name = f"7. live mode, {products} new" if live else f"6. test mode, {products} new"
    print(name, flush=True)
    database_url = fresh_database(
        args.database_url, f"{args.database_name}_{'live' if live else 'test'}"
    )
    with psycopg.connect(database_url, autocommit=True) as connection:
        make_table(connection, "products", products)
    home = work / f"dagster_home_{'live' if live else 'test'}"
    home.mkdir()
    port = free_port()
    emulator = start_emulator(
        port,
        *("--latency-ms", str(args.command_latency_ms)),
        *("--rate-limit", str(STRIPE_LIVE_LIMIT if live else STRIPE_TEST_LIMIT)),
        *("--endpoint-rate-limit", str(STRIPE_TEST_LIMIT)),
        *(["--livemode"] if live else []),
    )
    api_base = f"http://127.0.0.1:{port}"
    control = EmulatorControl(api_base)
    # Default settings: only where the catalog, Stripe and the files are.
    env = {
        key: value
        for key, value in environment.items()
        if not key.startswith(("STRIPE_", "CATALOG_", "SUPABASE_", "DAGSTER_"))
    }
    env.update(
        DAGSTER_HOME=str(home),
        CATALOG_DATABASE_URL=database_url,
        STRIPE_SECRET_KEY=LIVE_SECRET_KEY if live else SECRET_KEY,
        STRIPE_API_BASE=api_base,
        STRIPE_SYNC_BATCH_SIZE=str(max(1, products // 10)),
        STRIPE_SYNC_REPORTS_DIR=str(home / "reports"),
        PYTHONUNBUFFERED="1",  # each line as it is printed: the breakdown reads their times
        **({"STRIPE_ALLOW_LIVE_MODE": "true"} if live else {}),
    )
    try:
        run = run_command(home, env, control)
        report_command(figures, name, run, products)
        if live:
            figures.add(name, "429s", str(sum(e["status"] == 429 for e in run.requests)))
            figures.add(name, "Stripe state", stripe_state(api_base, LIVE_SECRET_KEY, products))
        else:
            noop = run_command(home, env, control)
            report_command(figures, f"6. test mode, no-op rerun of {products}", noop, products)
    finally:
        emulator.terminate()
        emulator.wait()


@dataclass
class CommandRun:
    """One `stripe-sync migrate`: its times (seconds since it was started), its Stripe
    requests, and where its time went."""

    seconds: float
    requests: list[dict]
    phases: list[tuple[str, float]]  # (what, seconds), in order; they add up to `seconds`
    window: tuple[float, float] | None  # first write's start, last write's end


def run_command(home: Path, env: dict, control) -> CommandRun:
    before = len(control.requests())
    started = time.time()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("stripe-sync")), "migrate", "--log-level", "WARN"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [(time.time() - started, line.rstrip("\n")) for line in process.stdout]
    code = process.wait()
    seconds = time.time() - started
    assert code == 0, "\n".join(line for _, line in lines)
    requests = [
        {**e, "started_at": e["started_at"] - started, "ended_at": e["ended_at"] - started}
        for e in control.requests()[before:]
    ]
    writes = [e for e in requests if e["method"] == "POST"]
    window = (
        (min(e["started_at"] for e in writes), max(e["ended_at"] for e in writes))
        if writes
        else None
    )
    marks = [
        (
            "start: interpreter, imports, Dagster instance, pre-flight's catalog checks",
            min(e["started_at"] for e in requests),
        ),
        (
            "pre-flight: Stripe key and account",
            next(t for t, line in lines if line.startswith("stripe: ")),
        ),
        (
            "registration: abandoned runs, batches",
            next(t for t, line in lines if " batches (" in line),
        ),
        *run_marks(home, started, window),
        ("exit: printing, teardown", seconds),
    ]
    phases, previous = [], 0.0
    for what, until in marks:
        phases.append((what, until - previous))
        previous = until
    return CommandRun(seconds, requests, phases, window)


def run_marks(
    home: Path, started: float, window: tuple[float, float] | None
) -> list[tuple[str, float]]:
    """When each part of the command's runs ended and its report was made (seconds since
    `started`), from the Dagster instance's event log."""
    import dagster as dg

    ends = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    marks = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(
            filters=dg.RunsFilter(
                job_name="migrate_batches", created_after=datetime.fromtimestamp(started, UTC)
            )
        )
        runs = [record.dagster_run for record in records]
        for run in reversed(runs):  # oldest first
            events = [e for e in instance.all_logs(run.run_id) if e.is_dagster_event]
            first_step = min(
                e.timestamp
                for e in events
                if e.dagster_event.event_type is dg.DagsterEventType.STEP_START
            )
            marks.append(("run: created (planned events), started", first_step - started))
            for event in events:
                if event.dagster_event.event_type not in ends:
                    continue
                at, step = event.timestamp - started, event.step_key
                if step == "stripe_products" and window is not None:
                    marks.append(("stripe_products: plan, backup reads", window[0]))
                    marks.append(("stripe_products: WRITE WINDOW", window[1]))
                    marks.append(("stripe_products: write-back, state, ledger", at))
                else:
                    marks.append((STEP_NAMES.get(step, step), at))
            marks.append(("run: end", events[-1].timestamp - started))
        [report] = instance.fetch_materializations(dg.AssetKey("migration_report"), limit=1).records
        marks.append(("report", report.timestamp - started))
    return marks


STEP_NAMES = {
    "batch_quality": "batch_quality (check)",
    "stripe_matches_catalog": "stripe_matches_catalog (verification check)",
}


def report_command(figures: Figures, name: str, run: CommandRun, products: int) -> None:
    for what, seconds in run.phases:
        figures.add(name, f"time: {what}", f"{seconds:.2f} s")
    figures.add(name, "whole command", f"{run.seconds:.2f} s")
    writes = [e for e in run.requests if e["method"] == "POST"]
    if run.window is None:
        reads = len(run.requests) - len(writes)
        figures.add(
            name, "Stripe writes / reads (pre-flight's included)", f"{len(writes)} / {reads}"
        )
        return
    window = run.window[1] - run.window[0]
    figures.add(
        name,
        "write window / whole command",
        f"{window:.2f} s / {run.seconds:.2f} s: the command takes {run.seconds - window:.2f} s "
        "more than its writes",
    )
    figures.add(
        name,
        "products/s: write window / whole command",
        f"{products / window:.1f} / {products / run.seconds:.1f}",
    )
    per_product = Counter(e["endpoint"] for e in run.requests)
    figures.add(
        name,
        "requests per product, by endpoint",
        ", ".join(f"{n / products:.2f} {endpoint}" for endpoint, n in sorted(per_product.items())),
    )


def stripe_state(api_base: str, key: str, products: int) -> str:
    """Whether Stripe holds exactly the catalog: every product once, with one active price,
    which is its default; no other product or price."""
    listed = {kind: list_all(api_base, key, kind) for kind in ("products", "prices")}
    expected = {f"cms_p{n:07d}" for n in range(1, products + 1)}
    found = Counter(product["id"] for product in listed["products"])
    active = Counter(price["product"] for price in listed["prices"] if price["active"])
    defaults = {price["id"] for price in listed["prices"] if price["active"]}
    wrong = [
        product_id for product_id in expected if found[product_id] != 1 or active[product_id] != 1
    ] + [
        product["id"]
        for product in listed["products"]
        if product["id"] not in expected or product["default_price"] not in defaults
    ]
    verdict = "exact" if not wrong and len(listed["prices"]) == products else "NOT exact"
    return (
        f"{verdict}: {len(listed['products'])} products, {len(listed['prices'])} prices "
        f"({sum(active.values())} active) for {products} catalog rows"
        + (f"; e.g. {sorted(set(wrong))[:3]}" if wrong else "")
    )


def list_all(api_base: str, key: str, kind: str) -> list[dict]:
    """Every object of a kind, 100 a request (after the runs: their request log is read)."""
    found, after = [], None
    while True:
        query = urllib.parse.urlencode(
            {"limit": 100, **({"starting_after": after} if after else {})}
        )
        request = urllib.request.Request(
            f"{api_base}/v1/{kind}?{query}",
            headers={"Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.loads(response.read())
        found += page["data"]
        if not page["has_more"]:
            return found
        after = page["data"][-1]["id"]


if __name__ == "__main__":
    main()
