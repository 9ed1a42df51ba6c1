"""The migration benchmark: the whole pipeline against the emulator at Stripe's limits, and
the catalog side at a million rows. Prints one table.

    python benchmarks/migration.py [--products 2000] [--scale-rows 1000000]
                                   [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Scenarios (the emulator runs as its own process, with 150 ms +/- 50 ms latency and
Stripe's test-mode limits: 25 requests/s global and per endpoint; the shared throttle is
set to exactly that limit, STRIPE_SYNC_THROTTLE_FRACTION=1.0):

1. Initial migration of N new products (`run_migration`, as `stripe-sync migrate`).
2. No-op resync of the same catalog.
3. Resync with 1% of the rows changed (half renamed, half repriced).
4. A catalog of a million rows in PostgreSQL, no Stripe: batch registration, `stripe-sync
   plan` (time and peak RSS, in its own process), one batch's write-back, and how many
   runs a backfill of every batch makes.
5. Dagster's overhead: seconds per partition of the no-op resync, whose only Stripe work
   is the verification's reads.

It makes a database (`--database-name`, default `stripe_sync_bench`, dropped first) on the
server of --database-url.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from emulator_throughput import free_port, start_emulator
from psycopg import sql

LATENCY_MS, JITTER_MS = 150, 50
STRIPE_TEST_LIMIT = 25.0  # requests/s, global and per endpoint (STRIPE_FACTS.md)
BENCH_DATABASE = "stripe_sync_bench"
SECRET_KEY = "sk_test_stripe_sync_benchmark"
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
    parser.add_argument("--database-name", default=BENCH_DATABASE, help="made (dropped first)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "STRIPE_SYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    database_url = fresh_database(args.database_url, args.database_name)
    work = Path(tempfile.mkdtemp(prefix="stripe_sync_bench_"))
    port = free_port()
    emulator = start_emulator(
        port,
        *("--latency-ms", str(LATENCY_MS), "--jitter-ms", str(JITTER_MS)),
        *("--rate-limit", str(STRIPE_TEST_LIMIT)),
        *("--endpoint-rate-limit", str(STRIPE_TEST_LIMIT)),
    )
    try:
        figures = Figures()
        with psycopg.connect(database_url, autocommit=True) as connection:
            # 10 batches of N/10 rows: one run of 10 partitions, as migrate and backfills do.
            set_environment(
                work,
                database_url,
                f"http://127.0.0.1:{port}",
                table="products",
                batch_size=max(1, args.products // 10),
            )
            stripe_scenarios(figures, connection, args.products, f"http://127.0.0.1:{port}")
            scale_scenario(figures, connection, database_url, work, args.scale_rows)
        figures.print(args)
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
            f"emulator latency {LATENCY_MS} ms +/- {JITTER_MS} ms, limit "
            f"{STRIPE_TEST_LIMIT:.0f}/s; {args.products} products, {args.scale_rows:,} rows at scale"
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
    from stripe_sync.operations.migrate import migrate as run_migration
    from stripe_sync.operations.options import RunOptions
    from stripe_sync.settings import load_settings

    started = time.monotonic()
    result = run_migration(
        load_settings(),
        RunOptions(log_level="WARN", log_file=str(work_log)),
        say=lambda _: None,
    )
    assert result.succeeded, result.report_markdown
    return result, time.monotonic() - started


def stripe_scenarios(
    figures: Figures, connection: psycopg.Connection, products: int, api_base: str
) -> None:
    from stripe_sync.testing import EmulatorControl

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
    reading = sum(e["ended_at"] - e["started_at"] for e in log)  # the checks read one by one
    figures.add(
        "5. Dagster overhead",
        "no-op resync: seconds per partition, Stripe reads excluded",
        f"{(seconds - reading) / batches:.2f} ({batches} partitions in "
        f"{len(result.run_ids)} run(s) and the report run; reads {reading:.1f} s)",
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
        f"{len(renamed)} + 3 x {len(repriced)} writes; reads: backups and verification, 1 per 100 products a batch",
    )


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

    from stripe_sync.catalog.sql import SqlCatalog
    from stripe_sync.core.checkpoints import Checkpoint
    from stripe_sync.core.contract import WriteBack
    from stripe_sync.defs.assets import BATCHES_PER_RUN
    from stripe_sync.defs.jobs import register_batches
    from stripe_sync.defs.resources import CatalogResource
    from stripe_sync.state import open_state

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
        keys = register_batches(
            instance,
            CatalogResource(database_url=database_url, table="products_scale"),
            1000,
        )
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


if __name__ == "__main__":
    main()
