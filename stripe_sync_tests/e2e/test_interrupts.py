"""A migration interrupted at any moment, by one Ctrl+C, two close together or a SIGTERM sent
to its whole process group (as a terminal or a supervisor sends them), records every product
Stripe made, prints no traceback, and the next run creates nothing twice.

`stripe-sync migrate` runs as a subprocess with the default settings and topology (one
PostgreSQL for the catalog, the state and the throttle) against the emulator in the test
process, slowed to ~40 ms a request. Each case draws its moment from a seeded RNG, in its
quarter of the command's Stripe requests (pre-flight's, the backup's, the creates'), then up to
0.3 s more.
"""

from __future__ import annotations

import pytest

from stripe_sync_tests.conftest import stripe_state, stripe_sync_script
from stripe_sync_tests.support.interrupts import SIGNAL_PATTERNS, Interrupt, interrupt
from stripe_sync_tests.support.sample_catalog import sample_products

ROWS = 40
REQUESTS = ROWS + 2  # the account (pre-flight), the backup's read, one create a product
MOMENTS = 4  # moments per signal pattern, one in each quarter of the requests


def product_creates(log: list[dict]) -> int:
    return sum(1 for e in log if (e["method"], e["path"]) == ("POST", "/v1/products"))


@pytest.mark.parametrize("moment", range(MOMENTS))
@pytest.mark.parametrize("pattern", SIGNAL_PATTERNS)
def test_an_interrupted_migration_records_every_product_stripe_made_and_the_rerun_creates_none_twice(
    pattern, moment, products_table, pipeline_env, emulator, tmp_path
):
    when = Interrupt.drawn(SIGNAL_PATTERNS[pattern], moment, MOMENTS, REQUESTS)
    table = products_table(sample_products(ROWS))
    pipeline_env.use_catalog(table)
    emulator.configure(latency_ms=40, latency_jitter_ms=10, seed=moment)

    stopped = interrupt(
        [stripe_sync_script(), "migrate"],
        pipeline_env.cli_env(),
        tmp_path / "console.out",
        when,
        requests_made=lambda: len(emulator.requests()),
    )

    assert stopped.returncode >= 0, f"died of signal {-stopped.returncode}\n{stopped.output}"
    assert "Traceback" not in stopped.output, stopped.output
    made = {p["id"]: p for p in stripe_state(emulator.base_url)[0]}
    written = {r["id"]: r["stripe_product_id"] for r in table.rows().values()}
    unrecorded = {pid for pid, p in made.items() if written[p["metadata"]["cms_id"]] != pid}
    assert unrecorded == set(), f"{when.describe()}: made in Stripe, not recorded"

    emulator.configure(latency_ms=0, latency_jitter_ms=0)
    requests_before = len(emulator.requests())
    rerun = pipeline_env.migrate()

    assert rerun.succeeded, rerun.report_markdown
    assert product_creates(emulator.requests()[requests_before:]) == ROWS - len(made)
    products = stripe_state(emulator.base_url)[0]
    assert sorted(p["metadata"]["cms_id"] for p in products) == sorted(table.rows())
    print(
        f"{when.describe()}: {'stopped' if stopped.signalled else 'had ended'} with exit "
        f"{stopped.returncode}, {len(made)} products made; the rerun made the other "
        f"{ROWS - len(made)}"
    )
