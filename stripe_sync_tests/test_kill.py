"""A migration killed with SIGKILL midway, then run again, ends as if it had never been
interrupted: no duplicate products or prices, every row written back, every price exact.

`stripe-sync migrate` runs as a subprocess (the console script of this environment)
against a PostgreSQL catalog and the emulator in the test process, slowed to ~30 ms a
request so the kill lands in the middle of the Stripe writes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter

import pytest

from stripe_sync_tests.conftest import minor_units, stripe_state, stripe_sync_script
from stripe_sync_tests.test_pipeline import expected_currency, sample_products

PRODUCTS = 300
BATCH_SIZE = 50


def created_products(log: list[dict]) -> int:
    return sum(1 for e in log if (e["method"], e["path"]) == ("POST", "/v1/products"))


def migrate_command(batches_per_run: int) -> list[str]:
    return [
        stripe_sync_script(),
        "migrate",
        f"--batch-size={BATCH_SIZE}",
        f"--batches-per-run={batches_per_run}",
    ]


# Where to kill, in product creates Stripe has seen: in the first run (nothing written back
# yet), in the second and in the third (earlier runs written back), each moved by its seed.
KILL_POINTS = {1: 70, 2: 150, 3: 230}


@pytest.mark.parametrize("seed", sorted(KILL_POINTS))
def test_a_migration_killed_midway_completes_on_the_next_run_without_duplicates(
    seed, products_table, pipeline_env, emulator, tmp_path
):
    kill_after = KILL_POINTS[seed] + random.Random(seed).randint(-15, 15)
    runs_done = kill_after // (2 * BATCH_SIZE)  # runs of two batches finished before the kill
    source = {row["id"]: row for row in sample_products(PRODUCTS)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    emulator.configure(latency_ms=30, latency_jitter_ms=10, seed=seed)

    with open(tmp_path / "killed.out", "wb") as out:
        killed = subprocess.Popen(
            migrate_command(2),
            env=pipeline_env.cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while created_products(emulator.requests()) < kill_after:
                assert killed.poll() is None, (tmp_path / "killed.out").read_text()
                assert time.monotonic() < deadline, "the migration never got going"
                time.sleep(0.01)
            os.killpg(killed.pid, signal.SIGKILL)
        finally:
            if killed.poll() is None:
                os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    made_before_kill = {p["id"] for p in stripe_state(emulator.base_url)[0]}
    written_before_kill = {r["id"] for r in table.rows().values() if r["stripe_product_id"]}
    assert 0 < len(made_before_kill) < PRODUCTS, "the kill must land midway"
    assert len(written_before_kill) >= runs_done * 2 * BATCH_SIZE, "finished runs were written back"
    assert made_before_kill - {f"cms_{i}" for i in written_before_kill}, (
        "some products were never written back"
    )

    emulator.configure(latency_ms=0, latency_jitter_ms=0)
    rerun = subprocess.run(
        migrate_command(10),
        env=pipeline_env.cli_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Traceback" not in rerun.stderr
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
        f"seed {seed}: killed after {kill_after} creates; {len(made_before_kill)} products in Stripe, "
        f"{len(written_before_kill)} written back; rerun output:\n{rerun.stdout}"
    )
