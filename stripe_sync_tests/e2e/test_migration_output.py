"""What `stripe-sync migrate` prints is the migration's own: the report of its own runs, or a
sentence saying they recorded none (and then no rollback hint, as nothing was written), and a
stop said as a stop, not as failed batches."""

from __future__ import annotations

import signal

from click.testing import CliRunner

from stripe_sync.cli import main
from stripe_sync_tests.conftest import stripe_sync_script
from stripe_sync_tests.support.interrupts import Interrupt, interrupt
from stripe_sync_tests.support.sample_catalog import sample_products


def test_a_migration_whose_runs_recorded_nothing_prints_neither_an_older_report_nor_a_rollback_hint(
    products_table, pipeline_env, emulator
):
    table = products_table(sample_products(20))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="10", STRIPE_MAX_ATTEMPTS="1")
    assert pipeline_env.migrate().succeeded  # the earlier migration: 20 created
    table.update("sku-00003", name="Renamed")
    # The backup's read before the rename fails: the run fails before any Stripe write.
    emulator.configure(fault_rate=1.0, fault_kinds=["500"], fault_endpoints=["GET /v1/products"])

    failed = CliRunner().invoke(main, ["migrate"], catch_exceptions=False)

    assert failed.exit_code == 1, failed.output
    assert "FAILED" in failed.output
    assert "No report: no run of this migration recorded any result." in failed.output
    assert "# Migration report" not in failed.output
    assert "rollback" not in failed.output


def test_the_rollback_hint_follows_a_migration_that_wrote_and_not_a_rerun_that_changed_nothing(
    products_table, pipeline_env, emulator
):
    pipeline_env.use_catalog(products_table(sample_products(5)))

    first = CliRunner().invoke(main, ["migrate"], catch_exceptions=False)
    rerun = CliRunner().invoke(main, ["migrate"], catch_exceptions=False)

    assert first.exit_code == rerun.exit_code == 0, first.output + rerun.output
    assert "To undo this migration: stripe-sync rollback --since " in first.output
    assert "| 0 | 0 | 5 |" in rerun.output  # created, updated, unchanged
    assert "To undo" not in rerun.output


def test_a_stopped_migration_says_it_was_stopped_and_counts_no_failed_batch(
    products_table, pipeline_env, emulator, tmp_path
):
    pipeline_env.use_catalog(products_table(sample_products(40)))
    emulator.configure(latency_ms=40)

    stopped = interrupt(
        [stripe_sync_script(), "migrate"],
        pipeline_env.cli_env(),
        tmp_path / "console.out",
        Interrupt((signal.SIGINT,), after_requests=10, delay_s=0.0, gap_s=0.0),
        requests_made=lambda: len(emulator.requests()),
    )

    assert stopped.returncode == 1, stopped.output
    assert "batches 1-1 of 1: stopped (run " in stopped.output
    assert "Stopped on request: 1 batch left for the next run" in stopped.output
    assert "FAILED" not in stopped.output and "failed:" not in stopped.output
    bar_at_the_end = [line for line in stopped.output.splitlines() if line.startswith("migration:")]
    assert " 0 failed," in bar_at_the_end[-1], stopped.output
    assert "created" in stopped.output  # its own report: what it made before the stop
