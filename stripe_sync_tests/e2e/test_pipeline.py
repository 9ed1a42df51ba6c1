"""The migration end to end: a PostgreSQL catalog -> the pipeline (a real Dagster instance
in a throwaway DAGSTER_HOME) -> the Stripe emulator over HTTP -> write-back -> report."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import dagster as dg
import stripe
from click.testing import CliRunner

from stripe_sync.cli import main
from stripe_sync.core.identity import MANAGED_BY
from stripe_sync_tests.conftest import (
    LIVE_SECRET_KEY,
    minor_units,
    stripe_state,
    write_requests,
)
from stripe_sync_tests.support.sample_catalog import (
    assert_in_sync,
    expected_currency,
    sample_products,
)


def test_a_thousand_products_arrive_exactly_once_with_exact_prices_and_a_rerun_writes_nothing(
    products_table, pipeline_env, emulator
):
    source = {row["id"]: row for row in sample_products(1_000)}
    assert {expected_currency(row) for row in source.values()} >= {"eur", "usd", "jpy", "bhd"}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="250")

    first = pipeline_env.migrate(batches_per_run=2)

    assert first.succeeded, first.report_markdown
    assert len(first.new_batches) == 4 and len(first.run_ids) == 2
    log = emulator.requests()
    assert Counter((e["method"], e["path"]) for e in write_requests(log)) == {
        ("POST", "/v1/products"): 1_000
    }
    assert {e["method"] for e in log} <= {"POST", "GET"}
    assert all(e["status"] == 200 for e in log)
    assert first.report["counts"] == {
        "created": 1_000,
        "adopted": 0,
        "updated": 0,
        "unchanged": 0,
        "archived": 0,
        "orphaned": 0,
        "invalid": 0,
        "held": 0,
        "failed": 0,
    }
    assert first.report["stripe_requests"] == 1_000
    products, prices = stripe_state(emulator.base_url)
    assert len(products) == 1_000 and len(prices) == 1_000
    # the amounts the brief names, spelled out
    by_id = {p["id"]: prices[p["default_price"]] for p in products}
    examples = {(row["currency"], str(row["price"])): f"cms_{row['id']}" for row in source.values()}
    assert by_id[examples[("eur", "12.50")]]["unit_amount"] == 1250
    assert by_id[examples[("eur", "0.51")]]["unit_amount"] == 51
    assert by_id[examples[("jpy", "1500")]]["unit_amount"] == 1500
    assert by_id[examples[("bhd", "1.234")]]["unit_amount"] == 1234
    assert by_id[examples[("bhd", "1234.567")]]["unit_amount"] == 1234567
    assert_in_sync(table.rows(), source, products, prices)

    before = len(emulator.requests())
    second = pipeline_env.migrate(batches_per_run=2)

    assert second.succeeded and second.new_batches == []
    assert write_requests(emulator.requests()[before:]) == []
    assert second.report["counts"]["unchanged"] == 1_000
    assert second.report["products"] == 1_000 and second.report["stripe_requests"] == 0
    assert "| 0 | 0 | 1000 | 0 | 0 | 0 | 0 |" in second.report_markdown
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_invalid_rows_are_marked_invalid_with_a_reason_and_never_reach_stripe(
    products_table, pipeline_env, emulator
):
    valid = sample_products(6)
    invalid = [
        {"id": "no-name", "name": None, "price": Decimal("5.00"), "currency": "eur"},
        {"id": "blank-name", "name": "   ", "price": Decimal("5.00"), "currency": "eur"},
        {"id": "no-price", "name": "Priceless", "price": None, "currency": "eur"},
        {"id": "bad-currency", "name": "Doubloons", "price": Decimal("5.00"), "currency": "xxx"},
        {"id": "too-precise", "name": "Sub-cent", "price": Decimal("1.234"), "currency": "eur"},
        {"id": "fractional-yen", "name": "Half yen", "price": Decimal("10.5"), "currency": "jpy"},
    ]
    table = products_table(valid + invalid)
    pipeline_env.use_catalog(table)

    result = pipeline_env.migrate()

    rows = table.rows()
    for row in invalid:
        written = rows[row["id"]]
        assert written["sync_status"] == "invalid", row["id"]
        assert written["sync_error"], row["id"]
        assert written["stripe_product_id"] is None and written["stripe_price_id"] is None
    assert "name" in rows["no-name"]["sync_error"] and "price" in rows["no-price"]["sync_error"]
    assert "xxx" in rows["bad-currency"]["sync_error"]
    log = emulator.requests()
    assert not [e for e in log if any(row["id"] in e["path"] for row in invalid)]
    assert len(write_requests(log)) == len(valid)
    products, prices = stripe_state(emulator.base_url)
    assert {p["metadata"]["cms_id"] for p in products} == {row["id"] for row in valid}
    assert_in_sync(rows, {row["id"]: row for row in valid}, products, prices)
    assert result.report["counts"]["invalid"] == len(invalid)
    assert {r["cms_id"] for r in result.report["invalid"]} == {row["id"] for row in invalid}
    named = {r["cms_id"]: r["name"] for r in result.report["invalid"]}
    assert (named["no-price"], named["no-name"]) == ("Priceless", "")
    assert "| no-price | Priceless | " in result.report_markdown
    with dg.DagsterInstance.get() as instance:
        validated = instance.get_latest_materialization_event(dg.AssetKey("validated_products"))
    quarantined = validated.asset_materialization.metadata["quarantined"].value
    assert "| no-price | Priceless | price_missing" in quarantined
    # invalid rows stay out on the next run too, and cost nothing
    before = len(log)
    again = pipeline_env.migrate()
    assert write_requests(emulator.requests()[before:]) == []
    assert again.report["counts"]["invalid"] == len(invalid)


def test_a_renamed_product_costs_exactly_one_update_request(products_table, pipeline_env, emulator):
    source = {row["id"]: row for row in sample_products(8)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.migrate()
    hash_before = table.rows()["sku-00003"]["sync_hash"]

    table.update("sku-00003", name="Product 3, renamed")
    source["sku-00003"]["name"] = "Product 3, renamed"
    before = len(emulator.requests())
    result = pipeline_env.migrate()

    writes = write_requests(emulator.requests()[before:])
    assert [(e["method"], e["path"]) for e in writes] == [("POST", "/v1/products/cms_sku-00003")]
    assert result.succeeded
    assert result.report["counts"] == {
        "created": 0,
        "adopted": 0,
        "updated": 1,
        "unchanged": 7,
        "archived": 0,
        "orphaned": 0,
        "invalid": 0,
        "held": 0,
        "failed": 0,
    }
    rows = table.rows()
    assert rows["sku-00003"]["sync_hash"] != hash_before
    assert_in_sync(rows, source, *stripe_state(emulator.base_url))


def test_a_changed_price_becomes_a_new_default_price_and_the_old_one_is_archived(
    products_table, pipeline_env, emulator
):
    source = {row["id"]: row for row in sample_products(8)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.migrate()
    old_price_id = table.rows()["sku-00006"]["stripe_price_id"]
    assert source["sku-00006"]["currency"] == "bhd"

    table.update("sku-00006", price=Decimal("2.345"))
    source["sku-00006"]["price"] = Decimal("2.345")
    before = len(emulator.requests())
    result = pipeline_env.migrate()

    assert result.succeeded
    assert result.report["counts"]["updated"] == 1 and result.report["counts"]["unchanged"] == 7
    products, prices = stripe_state(emulator.base_url)
    product = next(p for p in products if p["id"] == "cms_sku-00006")
    new_price = prices[product["default_price"]]
    assert new_price["id"] != old_price_id
    assert (new_price["currency"], new_price["unit_amount"], new_price["active"]) == (
        "bhd",
        2345,
        True,
    )
    assert prices[old_price_id]["active"] is False
    assert table.rows()["sku-00006"]["stripe_price_id"] == new_price["id"]
    writes = write_requests(emulator.requests()[before:])
    assert not [e for e in writes if e["path"] == "/v1/products"]  # nothing created again
    assert all(
        "sku-00006" in e["path"] or e["path"] in ("/v1/prices", f"/v1/prices/{old_price_id}")
        for e in writes
    )
    assert len(prices) == 9  # the eight first prices and the new one
    assert_in_sync(table.rows(), source, products, prices)


def test_in_live_mode_half_the_products_take_two_requests_and_verify_count_and_roll_back_alike(
    products_table, pipeline_env, emulator
):
    source = {row["id"]: row for row in sample_products(200)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.use_live_mode(emulator)
    # A run killed between the two requests of one product left it without its default
    # price, description and images.
    halfway = source["sku-00001"]
    currency = expected_currency(halfway)
    amount = minor_units(halfway["price"], currency)
    client = stripe.StripeClient(LIVE_SECRET_KEY, base_addresses={"api": emulator.base_url})
    client.v1.prices.create(
        params={
            "product_data": {"id": "cms_sku-00001", "name": halfway["name"]},
            "currency": currency,
            "unit_amount": amount,
            "lookup_key": f"{MANAGED_BY}:cms_sku-00001:{currency}:{amount}",
        }
    )
    [found] = stripe_state(emulator.base_url)[0]
    before = len(emulator.requests())

    migration = pipeline_env.migrate()

    assert migration.succeeded, migration.report_markdown
    writes = Counter(e["endpoint"] for e in write_requests(emulator.requests()[before:]))
    # 200 creates spread evenly over the two routes; finishing the halfway product costs
    # one refused create (by the route it met) and a refused price (found by lookup key).
    assert 100 <= writes["POST /v1/products"] <= 101, writes
    assert 100 <= writes["POST /v1/prices"] <= 101, writes
    assert migration.report["counts"]["created"] == 200
    products, prices = stripe_state(emulator.base_url)
    assert len(prices) == 200
    assert_in_sync(table.rows(), source, products, prices)
    by_id = {p["id"]: p for p in products}
    for cms_id, row in source.items():
        product = by_id[f"cms_{cms_id}"]
        assert (product["description"], product["images"]) == (
            row["description"],
            row["images"] or [],
        )
        assert product["metadata"]["sync_hash"] == table.rows()[cms_id]["sync_hash"]

    verified = CliRunner().invoke(main, ["verify"])
    assert verified.exit_code == 0, verified.output

    rolled_back = CliRunner().invoke(main, ["rollback", "--yes"])
    assert rolled_back.exit_code == 0, rolled_back.output
    products, _ = stripe_state(emulator.base_url)
    # What the migration made is archived; the halfway product, made before it by a run
    # that left no backup, is as the migration found it.
    after = {p["id"]: p for p in products}
    assert _unstamped(after.pop("cms_sku-00001")) == _unstamped(found)
    assert len(after) == 199 and not any(p["active"] for p in after.values())


def _unstamped(product: dict) -> dict:
    return {name: value for name, value in product.items() if name != "updated"}
