"""`BatchSync` runs a batch's Stripe steps with no Dagster at all: a real catalog in
PostgreSQL with the state in the same database, and the Stripe emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.core.contract import catalog_frame
from stripe_sync.core.ledger import PRODUCTS, outcomes_of_run
from stripe_sync.core.planner import PlanOptions
from stripe_sync.core.retry import RetryPolicy
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.sync import BatchSync
from stripe_sync.core.validation import ValidationRules, validate_batch
from stripe_sync_tests.conftest import TEST_SECRET_KEY, stripe_state, write_requests
from stripe_sync_tests.support.tables import every_row

BATCH = "batch-0001"
ROWS = [
    {"id": f"p{i}", "name": f"Product {i}", "price": Decimal("9.90") + i, "currency": "eur"}
    for i in range(5)
]


@pytest.fixture
def sync_of(products_table, emulator):
    """`sync_of(run_id) -> (BatchSync, validated frame)` over a 5-row catalog table."""
    table = products_table(ROWS)
    opened = []

    def make(run_id: str, secret_key: str = TEST_SECRET_KEY):
        catalog = open_catalog(
            database_url=table.database_url, supabase_url=None, supabase_key=None, table=table.name
        )
        state = open_state(catalog)
        api = StripeApi(
            secret_key, api_base=emulator.base_url, retry=RetryPolicy(attempts=1, deadline_s=5)
        )
        opened.extend([catalog, api])
        raw = catalog_frame([{"batch": BATCH, **row} for row in every_row(catalog)])
        make.state = state
        return BatchSync(api, state, run_id, max_in_flight=4), validate_batch(
            raw, ValidationRules()
        )

    make.table = table
    yield make
    for thing in opened:
        thing.close()


def test_a_batch_syncs_writes_back_records_and_ledgers_without_dagster(sync_of, emulator):
    sync, validated = sync_of("run-1")

    result = sync.sync_products(validated, [BATCH], PlanOptions())

    assert result.stopped is None and not result.failed
    assert result.summary()["created"] == 5
    assert result.summary()["stripe_requests"] == 5  # one request per new product
    products, _prices = stripe_state(emulator.base_url)
    assert sorted(p["metadata"]["cms_id"] for p in products) == [r["id"] for r in ROWS]
    rows = sync_of.table.rows()
    assert {row["sync_status"] for row in rows.values()} == {"synced"}
    assert {row["stripe_product_id"] for row in rows.values()} == {p["id"] for p in products}
    assert set(sync_of.state.checkpoints(BATCH)) == {r["id"] for r in ROWS}
    assert outcomes_of_run(sync_of.state, PRODUCTS, BATCH, "run-1")["requests"] == 5
    assert result.backups  # taken before the writes


def test_a_second_sync_of_unchanged_rows_sends_nothing_to_stripe(sync_of, emulator):
    first, validated = sync_of("run-1")
    first.sync_products(validated, [BATCH], PlanOptions())
    before = len(emulator.requests())

    second, validated = sync_of("run-2")
    result = second.sync_products(validated, [BATCH], PlanOptions())

    assert result.summary()["unchanged"] == 5
    assert write_requests(emulator.requests()[before:]) == []


def test_a_refused_key_stops_the_step_before_any_write(sync_of, emulator):
    emulator.configure(api_keys=[TEST_SECRET_KEY])
    sync, validated = sync_of("run-1", secret_key="sk_test_revoked_by_the_account_owner")

    result = sync.sync_products(validated, [BATCH], PlanOptions())

    assert result.stopped is not None and result.stopped.fatal
    assert "refused the key" in str(result.stopped)
    assert write_requests(emulator.requests()) == []
    assert {row["sync_status"] for row in sync_of.table.rows().values()} == {None}
