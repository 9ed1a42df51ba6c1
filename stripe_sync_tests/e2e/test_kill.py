"""A migration killed with SIGKILL midway, then run again, ends as if it had never been
interrupted: no duplicate products or prices, every row written back, every price exact.

`stripe-sync migrate` runs as a subprocess (the console script of this environment)
against a PostgreSQL catalog and the emulator in the test process, slowed to ~30 ms a
request so the kill lands in the middle of the Stripe writes. Eight seeded trials, five at
test-mode limits and three at live-mode limits, where half the creates take two requests.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter

import pytest

from stripe_sync_tests.conftest import kill_when, minor_units, stripe_state, stripe_sync_script
from stripe_sync_tests.support.sample_catalog import expected_currency, sample_products

PRODUCTS = 60
BATCH_SIZE = 10
BATCHES_PER_RUN = 2  # three runs of 20 products
RUN_STARTS = [0, 20, 40, PRODUCTS]  # product creates Stripe has seen when each run starts
CREATES = {("POST", "/v1/products"), ("POST", "/v1/prices")}


def created_products(log: list[dict]) -> int:
    """Products created, by either route: `POST /v1/products`, or in live mode also a price
    with its product (`POST /v1/prices`; a first migration makes no other price)."""
    return sum(1 for e in log if (e["method"], e["path"]) in CREATES)


def migrate_command(batches_per_run: int) -> list[str]:
    return [
        stripe_sync_script(),
        "migrate",
        f"--batch-size={BATCH_SIZE}",
        f"--batches-per-run={batches_per_run}",
    ]


def kill_point(seed: int) -> tuple[int, int]:
    """(runs finished before the kill, product creates after which to kill): seeds take
    turns at the first run (nothing written back yet), the second and the third (earlier
    runs written back); the seed moves the kill inside its run, away from its edges."""
    run = (seed - 1) % (len(RUN_STARTS) - 1)
    start, end = RUN_STARTS[run], RUN_STARTS[run + 1]
    margin = (end - start) // 5
    return run, random.Random(seed).randint(start + margin, end - margin)


# Test mode: one request a product. Live mode: half the products in two requests (a price
# with its product, then the product's update), so a kill may land between the two.
TRIALS = [("test", seed) for seed in (1, 2, 3, 4, 5)] + [("live", seed) for seed in (6, 7, 8)]


@pytest.mark.parametrize(("mode", "seed"), TRIALS)
def test_a_migration_killed_midway_completes_on_the_next_run_without_duplicates(
    mode, seed, products_table, pipeline_env, emulator, tmp_path
):
    if mode == "live":
        pipeline_env.use_live_mode(emulator)
    runs_done, kill_after = kill_point(seed)
    source = {row["id"]: row for row in sample_products(PRODUCTS)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    emulator.configure(latency_ms=30, latency_jitter_ms=10, seed=seed)

    started = time.monotonic()
    killed = kill_when(
        migrate_command(BATCHES_PER_RUN),
        pipeline_env.cli_env(),
        tmp_path / "killed.out",
        landed=lambda: created_products(emulator.requests()) >= kill_after,
    )
    killed_after_s = time.monotonic() - started
    assert killed.returncode == -signal.SIGKILL
    left_by_kill = stripe_state(emulator.base_url)[0]
    made_before_kill = {p["id"] for p in left_by_kill}
    halfway = sum(1 for p in left_by_kill if p["default_price"] is None)
    written_before_kill = {r["id"] for r in table.rows().values() if r["stripe_product_id"]}
    assert 0 < len(made_before_kill) < PRODUCTS, "the kill must land midway"
    assert len(written_before_kill) >= runs_done * BATCHES_PER_RUN * BATCH_SIZE, (
        "finished runs were written back"
    )
    assert made_before_kill - {f"cms_{i}" for i in written_before_kill}, (
        "some products were never written back"
    )

    # The next run, in this process (as `stripe-sync migrate` runs it, without paying for a
    # second interpreter start): it finds the killed run, and what it left in Stripe.
    emulator.configure(latency_ms=0, latency_jitter_ms=0)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE=str(BATCH_SIZE))
    rerun_started = time.monotonic()
    rerun = pipeline_env.migrate(batches_per_run=10)
    rerun_s = time.monotonic() - rerun_started

    assert rerun.succeeded, rerun.report_markdown
    assert any("was killed before it finished" in line for line in pipeline_env.say_lines)
    assert rerun.report["counts"]["failed"] == 0 and rerun.report["products"] == PRODUCTS
    products, prices = stripe_state(emulator.base_url)
    counts = Counter(p["id"] for p in products)
    assert len(products) == len(counts) == PRODUCTS, [pid for pid, n in counts.items() if n > 1]
    assert set(counts) == {f"cms_{cms_id}" for cms_id in source}
    assert len(prices) == PRODUCTS, "a price was created twice"
    by_id = {p["id"]: p for p in products}
    rows = table.rows()
    for cms_id, row in source.items():
        written, product = rows[cms_id], by_id[f"cms_{cms_id}"]
        assert written["sync_status"] == "synced", (cms_id, written["sync_error"])
        assert (written["stripe_product_id"], written["stripe_price_id"]) == (
            product["id"],
            product["default_price"],
        )
        assert written["sync_hash"] and written["synced_at"] is not None
        price = prices[product["default_price"]]
        currency = expected_currency(row)
        assert (price["currency"], price["unit_amount"]) == (
            currency,
            minor_units(row["price"], currency),
        )
    print(
        f"{mode} mode, seed {seed}: killed after {kill_after} creates ({killed_after_s:.1f} s); {len(made_before_kill)} products in Stripe ({halfway} halfway), "
        f"{len(written_before_kill)} written back; the rerun completed in {rerun_s:.1f} s: "
        f"{rerun.report['counts']}"
    )
