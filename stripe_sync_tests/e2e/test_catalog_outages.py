"""The catalog side of reliability: a flaky database costs retries, never a duplicate or a
lost result, and an outage longer than the retry deadline loses none of Stripe's work.

PostgreSQL is reached through a TCP proxy that cuts connections at a seeded rhythm and fails
over (refuses new connections for a moment); Supabase's look-alike answers a seeded share of
503s and 429s and stalls some requests past the client's timeout.

The default set-up is what a new user gets: one PostgreSQL for the catalog, the state and the
throttle's store, all three behind the proxy, with the default retry settings. Other tests
split the pieces (the throttle's store outside the proxy, or in Redis behind a proxy of its
own) and use a quicker retry policy, to show each piece retries on its own.
"""

from __future__ import annotations

import logging
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
from stripe_sync_tests.support.postgrest import grant_like_supabase, service_role_key
from stripe_sync_tests.support.sample_catalog import assert_in_sync, sample_products

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


def assert_each_product_made_once_and_exact(
    result, emulator, table, source: dict[str, dict], *, clean_reads: int | None = None
) -> None:
    """The migration succeeded, every product was created once (no create repeated), Stripe
    and the catalog are exact, and the outage cost at most N/100 + 10 product reads more than
    a clean run's (`clean_reads`; default one batch's verification, N/100 pages)."""
    log = emulator.requests()
    count = len(source)
    clean_reads = count // 100 if clean_reads is None else clean_reads
    assert result.succeeded, result.report_markdown
    assert len(creates(log)) == count and all(e["status"] == 200 for e in creates(log))
    assert len(product_reads(log)) <= clean_reads + count // 100 + 10
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def noise(records: list[logging.LogRecord]) -> list[str]:
    """Warnings and errors of the database drivers and the pool: an outage the pipeline rides
    out must not print any."""
    return [
        record.getMessage()
        for record in records
        if record.levelno >= logging.WARNING
        and record.name.split(".")[0] in ("psycopg", "sqlalchemy", "redis")
    ]


@pytest.fixture
def default_set_up(products_table, pipeline_env, flaky_catalog):
    """`make(count)`: a catalog table of `count` products, and the pipeline with its default
    settings reaching it through the flaky proxy: catalog, state and throttle in that one
    database. Returns (source rows, table, proxy)."""
    proxy, through = flaky_catalog

    def make(count: int):
        source = {row["id"]: row for row in sample_products(count)}
        table = products_table(list(source.values()))
        pipeline_env.set(CATALOG_DATABASE_URL=through, CATALOG_TABLE=table.name)
        return source, table, proxy

    return make


@pytest.fixture
def proxied(products_table, pipeline_env, flaky_catalog, fresh_database_url):
    """`make(count)`: a catalog table of `count` products, the pipeline reaching it (and its
    state) through the flaky proxy, the throttle's store outside it, a patient retry policy
    and batches of 50; returns (source rows, table, proxy)."""
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


def cuts_and_failovers(proxy, emulator, count: int) -> threading.Event:
    """Connections cut after 20 to 300 ms, a failover of 0.7 s every 2 s, and one of 1 s as
    the last of `count` creates arrives: the database is used in bursts (reads, then the
    record after the writes), and this one is sure to meet the record, whatever the periodic
    ones meet."""
    proxy.cut_rhythm(seed=7, lifetime_s=(0.02, 0.3))
    when_creates_arrive(emulator, count, lambda: proxy.failover(1.0))
    return failing_over(proxy, every_s=2.0, for_s=0.7)


# (products, rhythm): the failovers of the issue with its 300 products; the harsher rhythm of
# cuts and failovers with half as many, enough to meet both many times.
RHYTHMS = {
    "failovers of 1.5 s every 4 s": (
        300,
        lambda proxy, emulator, count: failing_over(proxy, every_s=4.0, for_s=1.5),
    ),
    "cuts and failovers": (
        150,
        lambda proxy, emulator, count: cuts_and_failovers(proxy, emulator, count),
    ),
}


def started_migrate(pipeline_env, *, output: int) -> subprocess.Popen:
    """`stripe-sync migrate` in a session of its own, both its streams to `output`."""
    return subprocess.Popen(
        [stripe_sync_script(), "migrate"],
        env=pipeline_env.cli_env(),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def catalog_retries(run_ids: list[str]) -> int:
    """The database retries the batch steps of these runs report in their metadata."""
    with dg.DagsterInstance.get() as instance:
        return sum(
            record.asset_materialization.metadata["catalog_retries"].value
            for asset in ("supabase_products", "stripe_products", "stripe_prices")
            for record in instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            if record.run_id in run_ids
        )


@pytest.mark.parametrize("rhythm", list(RHYTHMS), ids=list(RHYTHMS))
def test_the_default_set_up_rides_out_a_flaky_database_in_one_run(
    rhythm, default_set_up, pipeline_env, emulator, caplog
):
    count, flaky = RHYTHMS[rhythm]
    source, table, proxy = default_set_up(count)
    flaking = flaky(proxy, emulator, count)

    result = pipeline_env.migrate()

    flaking.set()
    assert_each_product_made_once_and_exact(result, emulator, table, source)
    assert proxy.cuts > 0 and proxy.refused > 0
    assert catalog_retries(result.run_ids) > 0
    assert "Databases (catalog, state, throttle): " in result.report_markdown
    assert noise(caplog.records) == []


def test_a_redis_throttle_store_behind_its_own_cutting_proxy_is_waited_for_too(
    default_set_up, pipeline_env, emulator, flaky_redis, caplog
):
    source, table, proxy = default_set_up(300)
    redis_proxy, redis_through = flaky_redis
    pipeline_env.set(STRIPE_SYNC_THROTTLE_URL=redis_through)
    redis_proxy.cut_rhythm(seed=3, lifetime_s=(0.05, 0.5))
    flaking = [
        failing_over(proxy, every_s=4.0, for_s=1.5),
        failing_over(redis_proxy, every_s=3.0, for_s=1.0),
    ]

    result = pipeline_env.migrate()

    for stop in flaking:
        stop.set()
    assert_each_product_made_once_and_exact(result, emulator, table, source)
    assert redis_proxy.cuts > 0 and redis_proxy.refused > 0
    assert noise(caplog.records) == []


def test_a_migrate_started_during_a_failover_waits_says_so_once_and_succeeds(
    default_set_up, pipeline_env, emulator
):
    source, table, proxy = default_set_up(20)
    proxy.down()
    migration = started_migrate(pipeline_env, output=subprocess.PIPE)
    try:
        lines = []
        while not any("Waiting up to" in line for line in lines):  # pre-flight waits
            line = migration.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        time.sleep(1.0)
        proxy.up()
        lines += migration.stdout.readlines()
        migration.wait(timeout=120)
    finally:
        stop_process_group(migration)

    output = "".join(lines)
    assert migration.returncode == 0, output
    [waiting] = [line for line in lines if "Waiting up to" in line]
    assert waiting.startswith("Cannot reach the catalog database at 127.0.0.1:"), waiting
    assert waiting.endswith("Waiting up to 120 s for it.\n"), waiting
    assert "Traceback" not in output and "error ignored" not in output, output
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_a_flaky_postgres_with_the_throttle_elsewhere_costs_retries_never_a_duplicate(
    proxied, pipeline_env, emulator
):
    source, table, proxy = proxied(300)
    flaking = cuts_and_failovers(proxy, emulator, 300)

    result = pipeline_env.migrate()

    flaking.set()
    # A clean run's reads: 6 batches' backups and verifications.
    assert_each_product_made_once_and_exact(result, emulator, table, source, clean_reads=2 * 6)
    assert proxy.cuts > 0 and proxy.refused > 0
    assert catalog_retries(result.run_ids) > 0


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
    assert_each_product_made_once_and_exact(result, emulator, table, source, clean_reads=2 * 6)
    assert set(faults) == {"503", "429", "stall"}
    assert catalog_retries(result.run_ids) > 0


# (set-up, products, the creates after which the database goes away, Stripe's latency)
OUTAGES = {
    # The one database, mid-batch: the throttle can book nothing more either.
    "mid-batch, the one database": ("default_set_up", 100, 30, 100),
    # After every create, the throttle's store elsewhere: only the write-back is left.
    "after every create, the throttle elsewhere": ("proxied", 40, 40, 200),
}


@pytest.mark.parametrize("outage", list(OUTAGES), ids=list(OUTAGES))
def test_an_outage_past_the_deadline_loses_none_of_stripes_work(
    outage, request, pipeline_env, emulator
):
    set_up, count, down_after, latency_ms = OUTAGES[outage]
    source, table, proxy = request.getfixturevalue(set_up)(count)
    # A short deadline: the default waits two minutes (the tests above show it riding out).
    pipeline_env.set(STRIPE_SYNC_CATALOG_RETRY_DEADLINE_S="2")
    emulator.configure(latency_ms=latency_ms)
    watcher = when_creates_arrive(emulator, down_after, proxy.down)

    first = pipeline_env.migrate()

    watcher.join()
    made = len(creates(emulator.requests()))
    assert not first.succeeded and down_after <= made <= count  # nothing sent unbooked
    with dg.DagsterInstance.get() as instance:
        detail = instance.get_run_by_id(first.run_ids[0]).tags[DETAIL_TAG]
    assert detail.startswith("The catalog was unreachable (Cannot reach the "), detail
    assert "kept in this run and written back by the next run" in detail
    proxy.up()
    before = len(emulator.requests())

    second = pipeline_env.migrate()

    later = emulator.requests()[before:]
    # No Stripe request for what the first run made: only the creates it never sent.
    assert write_requests(later) == creates(later) and len(creates(later)) == count - made
    assert_each_product_made_once_and_exact(second, emulator, table, source)


def test_a_kill_during_an_outage_converges_with_no_duplicate(proxied, pipeline_env, emulator):
    source, table, proxy = proxied(40)
    emulator.configure(latency_ms=200)
    watcher = when_creates_arrive(emulator, 40, proxy.down)
    migration = started_migrate(pipeline_env, output=subprocess.DEVNULL)
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
