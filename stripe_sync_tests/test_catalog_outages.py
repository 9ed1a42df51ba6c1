"""The catalog side of reliability: a flaky catalog costs retries, never a duplicate or a lost
result, and an outage longer than the retry deadline loses none of Stripe's work.

PostgreSQL is reached through a TCP proxy that cuts connections at a seeded rhythm and fails
over (refuses new connections for a moment); Supabase's look-alike answers a seeded share of
503s and 429s and stalls some requests past the client's timeout. The throttle's store stays
outside the proxy: these tests are about the catalog and the state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter

import dagster as dg
import pytest

from stripe_sync.defs.outcomes import DETAIL_TAG
from stripe_sync_tests.conftest import (
    WRITE_BACK_MIGRATION,
    stop_process_group,
    stripe_state,
    stripe_sync_script,
    write_requests,
)
from stripe_sync_tests.postgrest import grant_like_supabase, service_role_key
from stripe_sync_tests.test_pipeline import assert_in_sync, sample_products

PATIENT = {  # a retry policy that outlasts the proxy's failovers, quick in a test
    "STRIPE_SYNC_CATALOG_RETRY_ATTEMPTS": "30",
    "STRIPE_SYNC_CATALOG_RETRY_DEADLINE_S": "30",
    "STRIPE_SYNC_CATALOG_RETRY_BASE_DELAY_S": "0.05",
    "STRIPE_SYNC_CATALOG_RETRY_MAX_DELAY_S": "0.5",
}


def creates(log: list[dict]) -> list[dict]:
    return [e for e in log if (e["method"], e["path"]) == ("POST", "/v1/products")]


def product_reads(log: list[dict]) -> list[dict]:
    return [e for e in log if e["method"] == "GET" and e["path"].startswith("/v1/products")]


@pytest.fixture
def proxied(products_table, pipeline_env, flaky_catalog, fresh_database_url):
    """`make(count)`: a catalog table of `count` products, the pipeline reaching it (and its
    state) through the flaky proxy; returns (source rows, table, proxy)."""
    proxy, through = flaky_catalog

    def make(count: int):
        source = {row["id"]: row for row in sample_products(count)}
        table = products_table(list(source.values()))
        pipeline_env.set(
            CATALOG_DATABASE_URL=through,
            CATALOG_TABLE=table.name,
            STRIPE_SYNC_THROTTLE_URL=fresh_database_url,  # the budget, outside the proxy
            STRIPE_SYNC_BATCH_SIZE="50",
            **PATIENT,
        )
        return source, table, proxy

    return make


def when_creates_arrive(emulator, count: int, then) -> threading.Thread:
    """Call `then()` as soon as the emulator has received `count` product creates."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(creates(emulator.requests())) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def failing_over(proxy, *, every_s: float, for_s: float) -> threading.Event:
    """Fail the database over every `every_s` for `for_s`, until the event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            proxy.failover(for_s)

    threading.Thread(target=loop, daemon=True).start()
    return stop


def catalog_retries(run_ids: list[str]) -> int:
    """The catalog retries the batch steps of these runs report in their metadata."""
    with dg.DagsterInstance.get() as instance:
        return sum(
            record.asset_materialization.metadata["catalog_retries"].value
            for asset in ("supabase_products", "stripe_products", "stripe_prices")
            for record in instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            if record.run_id in run_ids
        )


def test_a_flaky_postgres_costs_retries_never_a_duplicate_or_a_lost_row(
    proxied, pipeline_env, emulator
):
    source, table, proxy = proxied(300)
    proxy.cut_rhythm(seed=7, lifetime_s=(0.02, 0.3))
    failovers = failing_over(proxy, every_s=2.0, for_s=0.7)
    # The database is used in bursts (reads, then the record after the writes): one failover
    # is sure to meet the record, whatever the periodic ones meet.
    when_creates_arrive(emulator, 300, lambda: proxy.failover(1.0))

    result = pipeline_env.migrate()

    failovers.set()
    log = emulator.requests()
    assert result.succeeded, result.report_markdown
    assert proxy.cuts > 0 and proxy.refused > 0
    assert catalog_retries(result.run_ids) > 0
    assert len(creates(log)) == 300 and all(e["status"] == 200 for e in creates(log))
    assert len(product_reads(log)) <= 2 * 6 + 300 // 100 + 10  # backups, verification, extra
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_a_flaky_supabase_costs_retries_never_a_duplicate_or_a_lost_row(
    request, products_table, catalog_connection, pipeline_env, emulator, gateway_faults
):
    request.getfixturevalue("apply_state_migration")
    source = {row["id"]: row for row in sample_products(300)}
    table = products_table(list(source.values()), name="products")
    catalog_connection.execute(WRITE_BACK_MIGRATION.read_text())
    grant_like_supabase(catalog_connection, "products")
    pipeline_env.set(
        SUPABASE_URL=request.getfixturevalue("supabase_url"),
        SUPABASE_SERVICE_ROLE_KEY=service_role_key(request.getfixturevalue("jwt_secret")),
        STRIPE_SYNC_BATCH_SIZE="50",
        STRIPE_SYNC_CATALOG_TIMEOUT_S="1",
        **PATIENT,
    )
    gateway_faults.configure(
        seed=11, share_503=0.1, share_429=0.05, share_stall=0.03, stall_s=1.5, retry_after_s=1
    )

    result = pipeline_env.migrate()

    faults = dict(gateway_faults.counts)
    gateway_faults.off()
    log = emulator.requests()
    assert result.succeeded, result.report_markdown
    assert set(faults) == {"503", "429", "stall"}
    assert catalog_retries(result.run_ids) > 0
    assert len(creates(log)) == 300 and all(e["status"] == 200 for e in creates(log))
    assert len(product_reads(log)) <= 2 * 6 + 300 // 100 + 10
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_an_outage_past_the_deadline_after_the_stripe_writes_loses_nothing(
    proxied, pipeline_env, emulator
):
    source, table, proxy = proxied(40)
    pipeline_env.set(STRIPE_SYNC_CATALOG_RETRY_DEADLINE_S="2")
    emulator.configure(latency_ms=200)
    watcher = when_creates_arrive(emulator, 40, proxy.down)

    first = pipeline_env.migrate()

    watcher.join()
    assert not first.succeeded
    with dg.DagsterInstance.get() as instance:
        detail = instance.get_run_by_id(first.run_ids[0]).tags[DETAIL_TAG]
    assert detail.startswith("The catalog was unreachable (")
    assert "kept in this run and written back by the next run" in detail
    proxy.up()
    before = len(emulator.requests())

    second = pipeline_env.migrate()

    assert second.succeeded, second.report_markdown
    assert write_requests(emulator.requests()[before:]) == []  # 0 Stripe writes for them
    assert len(creates(emulator.requests())) == 40
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_a_kill_during_an_outage_converges_with_no_duplicate(proxied, pipeline_env, emulator):
    source, table, proxy = proxied(40)
    emulator.configure(latency_ms=200)
    watcher = when_creates_arrive(emulator, 40, proxy.down)
    migration = subprocess.Popen(
        [stripe_sync_script(), "migrate"],
        env=pipeline_env.cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    watcher.join()
    time.sleep(1.0)  # inside the catalog's retries
    os.killpg(migration.pid, signal.SIGKILL)
    stop_process_group(migration)
    proxy.up()

    again = pipeline_env.migrate()

    assert again.succeeded, again.report_markdown
    products, prices = stripe_state(emulator.base_url)
    assert Counter(p["id"] for p in products).most_common(1)[0][1] == 1  # no duplicate
    assert_in_sync(table.rows(), source, products, prices)
