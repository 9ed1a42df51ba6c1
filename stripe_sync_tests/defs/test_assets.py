"""The assets on a real instance (a throwaway DAGSTER_HOME), against a PostgreSQL catalog and
the Stripe emulator."""

from __future__ import annotations

import dagster as dg
import pytest

from stripe_sync_tests.defs.conftest import products

TIMINGS = ("run_seconds", "products_per_s", "stripe_requests_per_product")


def latest_report(instance: dg.DagsterInstance) -> dict[str, dg.MetadataValue]:
    [record] = instance.fetch_materializations(dg.AssetKey("migration_report"), limit=1).records
    return record.asset_materialization.metadata


def seconds_ran(instance: dg.DagsterInstance, run_ids: list[str]) -> float:
    runs = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
    assert len(runs) == len(run_ids)
    return sum(run.end_time - run.start_time for run in runs)


def test_each_report_carries_its_runs_time_products_per_second_and_requests_per_product_as_numbers(
    products_table, pipeline_env, emulator
):
    pipeline_env.use_catalog(products_table(products(12)))
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="4")

    first = pipeline_env.migrate(batches_per_run=1)  # three runs, one after the other
    with dg.DagsterInstance.get() as instance:
        created = latest_report(instance)
        created_ran = seconds_ran(instance, first.run_ids)
    again = pipeline_env.migrate(batches_per_run=1)
    with dg.DagsterInstance.get() as instance:
        unchanged = latest_report(instance)
        unchanged_ran = seconds_ran(instance, again.run_ids)

    assert first.succeeded and again.succeeded and len(first.run_ids) == 3
    for report in (created, unchanged):
        assert all(isinstance(report[name], dg.FloatMetadataValue) for name in TIMINGS)
    assert created["run_seconds"].value == pytest.approx(created_ran, abs=0.005)
    assert created["products_per_s"].value == pytest.approx(12 / created_ran, abs=0.005)
    assert created["stripe_requests_per_product"].value == 1.0
    # The second report covers the second migration's runs only, not the time between.
    assert unchanged["run_seconds"].value == pytest.approx(unchanged_ran, abs=0.005)
    assert unchanged["products_per_s"].value == pytest.approx(12 / unchanged_ran, abs=0.005)
    assert unchanged["stripe_requests_per_product"].value == 0.0
