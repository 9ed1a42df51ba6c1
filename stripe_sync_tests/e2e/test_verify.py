"""Verification end to end: a PostgreSQL catalog migrated into the Stripe emulator, then
Stripe edited by hand (as in the Dashboard), then `stripe-sync verify` and the asset checks
it runs through Dagster in the test's DAGSTER_HOME."""

from __future__ import annotations

import math
from decimal import Decimal

import dagster as dg
import stripe
from click.testing import CliRunner
from dagster._core.storage.tags import PARTITION_NAME_TAG  # a one-batch run, as the UI starts it
from psycopg import sql

from stripe_sync.cli import main
from stripe_sync.definitions import build_definitions
from stripe_sync_tests.conftest import (
    PRICES_CHECK,
    PRODUCTS_CHECK,
    TEST_SECRET_KEY,
    free_port,
    latest_results,
)


def catalog_rows(count: int) -> list[dict]:
    """Valid EUR products `sku-000`, `sku-001`, ...: `Product <n>` at <n + 10>.50."""
    return [
        {
            "id": f"sku-{n:03d}",
            "name": f"Product {n}",
            "description": None if n % 3 == 0 else f"The {n}th product.",
            "price": Decimal(f"{n + 10}.50"),
            "currency": "eur",
            "images": None if n % 2 else [f"https://img.example.com/{n}.png"],
            "active": n % 5 != 4,
        }
        for n in range(count)
    ]


def stripe_client(base_url: str) -> stripe.StripeClient:
    """Stripe as someone in the Dashboard uses it: not through the pipeline."""
    return stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": base_url})


def verify(*options: str):
    return CliRunner().invoke(main, ["verify", *options])


def table_rows(output: str) -> set[tuple[str, ...]]:
    """(catalog id, field, expected, actual, severity) of each row `verify` printed."""
    rows = set()
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 8 and cells[0] not in ("batch", "---"):
            _batch, severity, cms_id, _product, field, expected, actual, _note = cells
            rows.add((cms_id, field, expected, actual, severity))
    return rows


def batch_keys() -> list[str]:
    with dg.DagsterInstance.get() as instance:
        return instance.get_dynamic_partitions("product_batches")


def test_a_migration_verifies_every_batch_and_verify_reads_each_product_once_by_id(
    products_table, pipeline_env, emulator
):
    table = products_table(catalog_rows(250))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="150")  # batches of 150 and 100 rows

    migrated = pipeline_env.migrate()

    assert migrated.succeeded, migrated.report_markdown
    keys = batch_keys()
    assert len(keys) == 2
    for check in (PRODUCTS_CHECK, PRICES_CHECK):
        results = latest_results(check)
        assert set(results) == set(keys)  # one result per batch of the 10-batch run
        assert all(r.passed for r in results.values()), [r.description for r in results.values()]
    assert sum(latest_results(PRODUCTS_CHECK)[k].metadata["products"].value for k in keys) == 250

    before = len(emulator.requests())
    result = verify()

    assert result.exit_code == 0, result.output
    assert "verify: 250 products in 2 batches: 0 mismatches, 0 warnings" in result.stdout
    reads = emulator.requests()[before:]
    assert {(e["method"], e["path"]) for e in reads} == {("GET", "/v1/products")}
    assert len(reads) == math.ceil(150 / 100) + math.ceil(100 / 100)
    assert not [e for e in emulator.requests() if "search" in e["path"]]
    # The batches' reads share a page (ids 100-199); each request is reported once.
    reported = latest_results(PRODUCTS_CHECK)
    assert sum(reported[k].metadata["stripe_requests"].value for k in keys) == len(reads)


def test_drift_in_stripe_is_reported_with_the_values_and_the_next_migration_repairs_it(
    products_table, pipeline_env, emulator
):
    table = products_table(catalog_rows(6))
    pipeline_env.use_catalog(table)
    assert pipeline_env.migrate().succeeded
    dashboard = stripe_client(emulator.base_url)
    dashboard.v1.products.update("cms_sku-001", {"name": "Renamed in the Dashboard"})
    cheaper = dashboard.v1.prices.create(
        {"product": "cms_sku-002", "currency": "eur", "unit_amount": 999}
    )
    dashboard.v1.products.update("cms_sku-002", {"default_price": cheaper.id})
    dashboard.v1.products.update("cms_sku-003", {"active": False})

    drifted = verify()

    assert drifted.exit_code == 1, drifted.output
    assert table_rows(drifted.stdout) == {
        ("sku-001", "name", "Product 1", "Renamed in the Dashboard", "error"),
        ("sku-002", "default_price", "12.50 EUR", "9.99 EUR", "error"),
        ("sku-003", "active", "true", "false", "error"),
    }
    assert "verify: 6 products in 1 batch: 3 mismatches, 0 warnings" in drifted.stdout
    [batch] = batch_keys()
    products_result = latest_results(PRODUCTS_CHECK)[batch]
    assert not products_result.passed
    assert products_result.severity == dg.AssetCheckSeverity.ERROR
    assert products_result.metadata["mismatches"].value == 2
    assert [r.data["field"] for r in products_result.metadata["mismatch_table"].records] == [
        "name",
        "active",
    ]
    assert not latest_results(PRICES_CHECK)[batch].passed

    repaired = pipeline_env.migrate()

    assert repaired.succeeded, repaired.report_markdown
    assert latest_results(PRODUCTS_CHECK)[batch].passed  # the migration's own check agrees
    again = verify()
    assert again.exit_code == 0, again.output
    assert table_rows(again.stdout) == set()
    product = dashboard.v1.products.retrieve("cms_sku-002", {"expand": ["default_price"]})
    assert (product.default_price.unit_amount, product.default_price.currency) == (1250, "eur")
    assert dashboard.v1.products.retrieve("cms_sku-001").name == "Product 1"
    assert dashboard.v1.products.retrieve("cms_sku-003").active is True


def test_the_same_drift_twice_is_repaired_twice(products_table, pipeline_env, emulator):
    table = products_table(catalog_rows(2))
    pipeline_env.use_catalog(table)
    assert pipeline_env.migrate().succeeded
    dashboard = stripe_client(emulator.base_url)

    for attempt in range(2):
        dashboard.v1.products.update("cms_sku-001", {"name": "Renamed in the Dashboard"})
        assert verify().exit_code == 1, attempt
        assert pipeline_env.migrate().succeeded, attempt
        assert dashboard.v1.products.retrieve("cms_sku-001").name == "Product 1", attempt
        assert verify().exit_code == 0, attempt


def test_an_invalid_row_synced_before_is_a_warning_and_one_never_synced_must_not_be_live(
    products_table, pipeline_env, emulator
):
    rows = catalog_rows(4)
    rows[3]["price"] = None  # invalid from the start: never synced
    table = products_table(rows)
    pipeline_env.use_catalog(table)
    assert pipeline_env.migrate().succeeded
    table.update("sku-001", name="")  # invalid now: its last valid version stays in Stripe
    assert pipeline_env.migrate().succeeded

    stale = verify()

    assert stale.exit_code == 0, stale.output
    assert table_rows(stale.stdout) == {
        ("sku-001", "catalog row", "valid", "name_missing: the product has no name", "warning")
    }
    [batch] = batch_keys()
    warned = latest_results(PRODUCTS_CHECK)[batch]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN

    stripe_client(emulator.base_url).v1.products.create({"id": "cms_sku-003", "name": "By hand"})
    migrated = pipeline_env.migrate()  # its checks find it, yet they don't stop the migration

    assert migrated.succeeded, migrated.report_markdown
    assert latest_results(PRODUCTS_CHECK)[batch].severity == dg.AssetCheckSeverity.ERROR
    live = verify()
    assert live.exit_code == 1, live.output
    assert ("sku-003", "active", "false", "true", "error") in table_rows(live.stdout)


def test_deleted_rows_are_a_warning_with_mirror_off_and_archived_again_with_mirror_on(
    products_table, pipeline_env, emulator
):
    table = products_table(catalog_rows(4))
    pipeline_env.use_catalog(table)
    assert pipeline_env.migrate().succeeded
    table.connection.execute(
        sql.SQL("delete from {} where id = 'sku-002'").format(sql.Identifier(table.name))
    )
    assert pipeline_env.migrate().succeeded  # mirror off: the product stays live

    kept = verify()

    assert kept.exit_code == 0, kept.output
    assert table_rows(kept.stdout) == {("sku-002", "catalog row", "present", "deleted", "warning")}

    pipeline_env.set(STRIPE_SYNC_MIRROR="true")
    assert pipeline_env.migrate().succeeded  # archives it
    assert verify().exit_code == 0
    dashboard = stripe_client(emulator.base_url)
    dashboard.v1.products.update("cms_sku-002", {"active": True})  # unarchived by hand

    revived = verify()

    assert revived.exit_code == 1, revived.output
    assert table_rows(revived.stdout) == {("sku-002", "active", "false", "true", "error")}
    assert pipeline_env.migrate().succeeded
    assert dashboard.v1.products.retrieve("cms_sku-002").active is False
    assert verify().exit_code == 0


def test_a_run_of_one_batch_verifies_that_batch_only(products_table, pipeline_env, emulator):
    table = products_table(catalog_rows(5))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="3")
    assert pipeline_env.migrate().succeeded
    first, second = batch_keys()
    stripe_client(emulator.base_url).v1.products.update("cms_sku-004", {"name": "Drifted"})
    defs = build_definitions()

    with dg.DagsterInstance.get() as instance:
        checked = defs.resolve_job_def("verify_batches").execute_in_process(
            instance=instance, tags={PARTITION_NAME_TAG: second}
        )
        migrated = defs.resolve_job_def("migrate_batches").execute_in_process(
            instance=instance, partition_key=first
        )

    evaluations = {(e.check_name, e.partition): e for e in checked.get_asset_check_evaluations()}
    assert set(evaluations) == {(PRODUCTS_CHECK.name, second), (PRICES_CHECK.name, second)}
    assert not evaluations[(PRODUCTS_CHECK.name, second)].passed
    assert evaluations[(PRICES_CHECK.name, second)].passed
    verified_by_migration = {
        (e.check_name, e.partition)
        for e in migrated.get_asset_check_evaluations()
        if e.asset_check_key in (PRODUCTS_CHECK, PRICES_CHECK)
    }
    assert verified_by_migration == {(PRODUCTS_CHECK.name, first), (PRICES_CHECK.name, first)}
    assert latest_results(PRODUCTS_CHECK)[first].passed


def test_verify_needs_a_key_and_batches_and_says_so_in_one_sentence(
    products_table, pipeline_env, emulator
):
    pipeline_env.use_catalog(products_table(catalog_rows(2)))

    nothing_yet = verify()

    assert nothing_yet.exit_code == 2, nothing_yet.output
    assert "holds no batches: run `stripe-sync migrate` first" in nothing_yet.stderr

    pipeline_env.unset("STRIPE_SECRET_KEY")
    no_key = verify()

    assert no_key.exit_code == 2, no_key.output
    assert no_key.stderr.startswith("error: STRIPE_SECRET_KEY is not set")
    assert emulator.requests() == []


def test_verify_with_stripe_unreachable_says_so_and_exits_apart_from_a_mismatch(
    products_table, pipeline_env, emulator
):
    pipeline_env.use_catalog(products_table(catalog_rows(2)))
    assert pipeline_env.migrate().succeeded
    pipeline_env.set(STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}", STRIPE_MAX_ATTEMPTS="1")

    unreachable = verify()

    assert unreachable.exit_code == 3, unreachable.output
    assert "Stripe could not be reached" in unreachable.output
    assert "mismatch" not in unreachable.stdout
