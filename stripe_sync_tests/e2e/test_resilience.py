"""Whatever fails and whenever, a migration creates nothing twice, loses no write-back and
leaves no Stripe object the catalog doesn't know about (issue 5, "Failure semantics" and
"Done when").

Everything is real: a PostgreSQL catalog, the Stripe emulator over HTTP (its knobs inject
the faults), a Dagster instance in a throwaway DAGSTER_HOME, the pipeline's own retry
policy and its shared throttle (a SQLite file in DAGSTER_HOME). Runs are in process
(`pipeline_env.migrate()`) or `stripe-sync migrate` subprocesses where a signal, a second
process or the CLI's output is the point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from psycopg import sql

from stripe_sync.emulator.knobs import FAULT_KINDS
from stripe_sync_tests.conftest import TEST_SECRET_KEY, stripe_state, stripe_sync_script
from stripe_sync_tests.support.sample_catalog import assert_in_sync, sample_products

# The pipeline's resilience knobs, at their defaults unless a test says otherwise (so the
# developer's own environment can't change what a test means).
RESILIENCE_DEFAULTS = {
    "STRIPE_TIMEOUT_S": "30",
    "STRIPE_MAX_ATTEMPTS": "6",
    "STRIPE_DEADLINE_S": "300",
    "STRIPE_SYNC_THROTTLE_FRACTION": "0.8",
    "STRIPE_SYNC_MAX_IN_FLIGHT": "0",
}


@pytest.fixture(autouse=True)
def _default_knobs(pipeline_env):
    pipeline_env.unset("STRIPE_SYNC_THROTTLE_URL")  # the SQLite file in DAGSTER_HOME
    pipeline_env.set(**RESILIENCE_DEFAULTS)


# ---------------------------------------------------------------- helpers


def catalog(count: int) -> dict[str, dict]:
    return {row["id"]: row for row in sample_products(count)}


def calm(emulator) -> None:
    """No more faults, limits, latency or key restrictions (to read Stripe's state)."""
    emulator.configure(
        fault_rate=0.0, rate_limit=None, api_keys=None, latency_ms=0, latency_jitter_ms=0
    )


def creates(log: list[dict]) -> list[dict]:
    return [e for e in log if (e["method"], e["path"]) == ("POST", "/v1/products")]


def not_written_back(table, emulator) -> set[str]:
    """Stripe products whose catalog row doesn't carry their id."""
    products, _ = stripe_state(emulator.base_url)
    written = {r["stripe_product_id"] for r in table.rows().values() if r["stripe_product_id"]}
    return {p["id"] for p in products} - written


def assert_exactly_once(table, source: dict[str, dict], emulator) -> tuple[list, dict]:
    """One product and one price per valid row, amounts exact, every row written back."""
    calm(emulator)
    products, prices = stripe_state(emulator.base_url)
    assert_in_sync(table.rows(), source, products, prices)
    per_product = Counter(price["product"] for price in prices.values())
    assert [pid for pid, n in per_product.items() if n > 1] == [], "a price was created twice"
    assert len(prices) == len(source)
    return products, prices


def migrate_until_done(pipeline_env, *, runs: int = 3, **kwargs) -> list:
    """Run the migration in process until it succeeds, at most `runs` times."""
    results = []
    for _ in range(runs):
        results.append(pipeline_env.migrate(**kwargs))
        if results[-1].succeeded:
            return results
    pytest.fail(
        f"still failing after {runs} runs: {results[-1].failed_batches}\n"
        + results[-1].report_markdown
    )


def migrate_command(*options: str) -> list[str]:
    return [stripe_sync_script(), "migrate", *options]


def run_cli(pipeline_env, *options: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        migrate_command(*options),
        env=pipeline_env.cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(condition, *, timeout: float, what: str, poll: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


# ---------------------------------------------------------------- 1. injected faults


@pytest.mark.parametrize("mode", ["test", "live"])
def test_with_a_fifth_of_requests_faulted_the_migration_converges_with_every_product_exactly_once(
    mode, products_table, pipeline_env, emulator
):
    """In live mode half the creates take the two-request route (a price with its product,
    then the product's update): a fault between the two must converge as well."""
    if mode == "live":
        pipeline_env.use_live_mode(emulator)
    source = catalog(150)
    invalid = [
        {"id": "zz-no-price", "name": "Priceless", "price": None, "currency": "eur"},
        {"id": "zz-bad-currency", "name": "Doubloons", "price": Decimal("5.00"), "currency": "xxx"},
    ]
    table = products_table([*source.values(), *invalid])
    pipeline_env.use_catalog(table)
    pipeline_env.set(
        STRIPE_SYNC_BATCH_SIZE="50",
        STRIPE_TIMEOUT_S="1",  # the 3 s stalls time out
        STRIPE_MAX_ATTEMPTS="10",
        STRIPE_DEADLINE_S="60",
    )
    emulator.configure(
        fault_rate=0.2,
        fault_kinds=list(FAULT_KINDS),
        stall_seconds=3,
        burst_length=3,
        seed=20,
    )
    started = time.monotonic()

    results = migrate_until_done(pipeline_env, runs=3)

    elapsed = time.monotonic() - started
    log = emulator.requests()
    faults = Counter(e["fault"] for e in log if e["fault"])
    assert set(faults) == set(FAULT_KINDS), f"every kind of fault struck: {dict(faults)}"
    assert sum(faults.values()) >= 0.1 * len(log)
    products, _ = assert_exactly_once(table, source, emulator)
    assert len(products) == 150
    rows = table.rows()
    for row in invalid:
        assert rows[row["id"]]["sync_status"] == "invalid"
        assert rows[row["id"]]["stripe_product_id"] is None
    final = results[-1].report
    assert final["counts"]["failed"] == 0 and final["counts"]["invalid"] == 2
    writes = Counter(e["endpoint"] for e in log if e["method"] == "POST" and e["status"] == 200)
    assert (writes["POST /v1/prices"] > 0) == (mode == "live"), writes
    print(
        f"\n{mode} mode: {len(log)} requests, {sum(faults.values())} faulted {dict(faults)}; "
        f"writes that succeeded for 150 products: {dict(writes)}; "
        f"{len(results)} run(s), {elapsed:.1f} s; statuses "
        f"{dict(Counter(e['status'] for e in log))}"
    )


# ---------------------------------------------------------------- 3. two runs at once


def test_two_migrations_of_the_same_batches_at_once_create_nothing_twice(
    products_table, pipeline_env, emulator, tmp_path
):
    source = catalog(100)
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    emulator.configure(latency_ms=20, latency_jitter_ms=10, seed=3)
    options = ("--batch-size=25", "--batches-per-run=4")

    outputs = [tmp_path / "first.out", tmp_path / "second.out"]
    runs = [
        subprocess.Popen(
            migrate_command(*options),
            env=pipeline_env.cli_env(),
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for out in outputs
    ]
    try:
        codes = [run.wait(timeout=120) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
    texts = [out.read_text() for out in outputs]

    assert all(code in (0, 1) for code in codes), texts
    assert all("Traceback" not in text for text in texts), texts
    third = None
    if codes != [0, 0]:  # one of them failed a batch: the next run completes it
        third = run_cli(pipeline_env, *options)
        assert third.returncode == 0, third.stdout + third.stderr
    log = emulator.requests()
    assert_exactly_once(table, source, emulator)
    answered = Counter((e["status"], e["replayed"]) for e in creates(log))
    originals = [e for e in creates(log) if e["status"] == 200 and not e["replayed"]]
    repeats = [e for e in creates(log) if e["replayed"] or e["status"] != 200]
    assert len(originals) == 100 and repeats, "both runs sent the batch's creates"
    assert min(e["started_at"] for e in repeats) < max(e["ended_at"] for e in originals), (
        "the two runs overlapped"
    )
    print(
        f"\nexit codes {codes}{' + third run 0' if third else ''}; "
        f"{len(creates(log))} product creates for 100 products, by (status, replayed): "
        f"{dict(answered)}"
    )


# ---------------------------------------------------------------- 4. write-back fails


def test_a_write_back_that_fails_after_stripe_succeeded_is_completed_by_the_next_run(
    products_table, pipeline_env, emulator
):
    source = catalog(60)
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="20")
    # The catalog database "goes down" for the second batch's write-back: one of its rows
    # refuses the update, so that batch's one write-back transaction rolls back.
    function, trigger = (sql.Identifier(f"{table.name}_{s}") for s in ("down", "down_trigger"))
    table.connection.execute(
        sql.SQL(
            "create function {}() returns trigger language plpgsql as $$ begin "
            "raise exception 'catalog database went away'; end $$"
        ).format(function)
    )
    table.connection.execute(
        sql.SQL(
            "create trigger {} before update on {} for each row "
            "when (old.id = 'sku-00030') execute function {}()"
        ).format(trigger, sql.Identifier(table.name), function)
    )
    try:
        first = pipeline_env.migrate(batches_per_run=1)
    finally:
        table.connection.execute(
            sql.SQL("drop trigger {} on {}").format(trigger, sql.Identifier(table.name))
        )
        table.connection.execute(sql.SQL("drop function {}()").format(function))

    assert len(first.run_ids) == 3, "the other batches still ran"
    assert len(first.failed_batches) == 1 and first.failed_batches[0].startswith("00001~")
    rows = table.rows()
    unwritten = {cms_id for cms_id, row in rows.items() if row["stripe_product_id"] is None}
    assert unwritten == {f"sku-{n:05d}" for n in range(20, 40)}, "only that batch rolled back"
    calm(emulator)
    products_before, prices_before = stripe_state(emulator.base_url)
    assert len(products_before) == 60, "Stripe had succeeded for every batch"
    assert not_written_back(table, emulator) == {f"cms_{cms_id}" for cms_id in unwritten}
    before = len(emulator.requests())

    second = pipeline_env.migrate(batches_per_run=1)

    assert second.succeeded, second.report_markdown
    products, prices = assert_exactly_once(table, source, emulator)
    assert {p["id"] for p in products} == {p["id"] for p in products_before}
    assert set(prices) == set(prices_before), "no new Stripe object"
    rerun = emulator.requests()[before:]
    assert all(e["replayed"] or e["status"] != 200 for e in creates(rerun)), (
        "a create on the rerun made a new product"
    )
    assert not_written_back(table, emulator) == set()
    counts = second.report["counts"]
    assert counts["failed"] == 0 and second.report["products"] == 60
    assert counts["created"] + counts["unchanged"] + counts["updated"] == 60


# ---------------------------------------------------------------- 5. the key is revoked


def test_a_key_revoked_midway_stops_the_run_at_once_with_a_clear_message_and_loses_nothing(
    products_table, pipeline_env, emulator
):
    source = catalog(120)
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_MAX_IN_FLIGHT="4")
    emulator.configure(latency_ms=20, latency_jitter_ms=5, seed=5)
    revoked = threading.Event()

    def revoke_after_30_creates() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(creates(emulator.requests())) >= 30:
                emulator.configure(api_keys=["sk_test_someone_else_entirely"])
                revoked.set()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=revoke_after_30_creates, daemon=True)
    watcher.start()
    started = time.monotonic()
    run = run_cli(pipeline_env, "--batch-size=20", "--batches-per-run=2")
    elapsed = time.monotonic() - started
    watcher.join()

    assert revoked.is_set()
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "Traceback" not in run.stderr, run.stderr
    assert TEST_SECRET_KEY not in output, "the key must never be printed"
    assert "Invalid API Key" in output and "STRIPE_SECRET_KEY" in output, output
    log = emulator.requests()
    refused = [e for e in log if e["status"] == 401]
    assert 1 <= len(refused) <= 4, f"{len(refused)} requests after the key was refused"
    made = len(stripe_state(emulator.base_url, _allowed_key(emulator))[0])
    assert 30 <= made < 120
    assert not_written_back_with(table, emulator) == set(), "created but never written back"

    calm(emulator)
    rerun = run_cli(pipeline_env, "--batch-size=20", "--batches-per-run=2")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_exactly_once(table, source, emulator)
    print(
        f"\nkey revoked after 30 creates: run ended in {elapsed:.1f} s with {len(refused)} "
        f"refused requests, {made} products made and written back; rerun completed"
    )


def _allowed_key(emulator) -> str:
    return emulator.config()["api_keys"][0]


def not_written_back_with(table, emulator) -> set[str]:
    """not_written_back while the pipeline's key is refused: read with the allowed key."""
    products, _ = stripe_state(emulator.base_url, _allowed_key(emulator))
    written = {r["stripe_product_id"] for r in table.rows().values() if r["stripe_product_id"]}
    return {p["id"] for p in products} - written


# ---------------------------------------------------------------- 6. SIGTERM


def test_sigterm_midway_exits_within_seconds_writing_back_what_finished(
    products_table, pipeline_env, emulator, tmp_path
):
    source = catalog(100)
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_MAX_IN_FLIGHT="4")
    emulator.configure(latency_ms=50, latency_jitter_ms=10, seed=6)
    out, err = tmp_path / "stopped.out", tmp_path / "stopped.err"

    with out.open("wb") as stdout, err.open("wb") as stderr:
        stopped = subprocess.Popen(
            migrate_command("--batch-size=50", "--batches-per-run=1"),
            env=pipeline_env.cli_env(),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            wait_for(
                lambda: len(creates(emulator.requests())) >= 25 or stopped.poll() is not None,
                timeout=60,
                what="25 product creates",
            )
            assert stopped.poll() is None, out.read_text() + err.read_text()
            signalled = time.monotonic()
            stopped.send_signal(signal.SIGTERM)
            code = stopped.wait(timeout=30)
            took = time.monotonic() - signalled
        finally:
            if stopped.poll() is None:
                os.killpg(stopped.pid, signal.SIGKILL)
                stopped.wait()

    stderr_text = err.read_text()
    assert code >= 0, f"died of signal {-code}"
    assert took < 5, f"took {took:.1f} s to stop"
    assert "Traceback" not in stderr_text, stderr_text
    made = {p["id"] for p in stripe_state(emulator.base_url)[0]}
    assert 25 <= len(made) < 100, "stopped midway"
    orphans = not_written_back(table, emulator)
    assert len(orphans) <= 4, f"{len(orphans)} products in Stripe without their write-back"

    rerun = run_cli(pipeline_env, "--batch-size=50", "--batches-per-run=1")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_exactly_once(table, source, emulator)
    print(
        f"\nSIGTERM after 25 creates: exit {code} in {took:.2f} s, {len(made)} products in "
        f"Stripe, {len(orphans)} not written back; rerun completed"
    )


# ---------------------------------------------------------------- 7. a 429 storm


def test_a_429_storm_slows_the_shared_throttle_and_the_migration_still_converges(
    products_table, pipeline_env, emulator
):
    source = catalog(40)
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(
        STRIPE_SYNC_BATCH_SIZE="20",
        STRIPE_SYNC_THROTTLE_FRACTION="1.0",  # 25/s in test mode: five times the limit
        STRIPE_MAX_ATTEMPTS="10",
    )
    emulator.configure(rate_limit=5, latency_ms=10)
    started = time.monotonic()

    results = migrate_until_done(pipeline_env, runs=3)

    elapsed = time.monotonic() - started
    log = emulator.requests()
    refused = sum(1 for e in log if e["status"] == 429)
    accepted = [e["started_at"] for e in log if e["status"] != 429]
    busiest = max(sum(1 for t in accepted if s <= t < s + 1) for s in accepted)
    assert refused > 0, "the storm happened"
    assert busiest <= 5
    # A client that kept sending 25/s at a 5/s limit would see four in five refused; the
    # adaptive throttle (halved per 429, floor 10%) keeps it to the first seconds' overshoot
    # and a small sawtooth after (18-38% measured with 40 products).
    assert refused < 0.6 * len(log), f"{refused} of {len(log)} refused: the throttle didn't adapt"
    assert_exactly_once(table, source, emulator)
    print(
        f"\n{len(log)} requests, {refused} answered 429 ({refused / len(log):.0%}); "
        f"{len(results)} run(s) in {elapsed:.1f} s ({len(log) / elapsed:.1f} requests/s sent)"
    )
