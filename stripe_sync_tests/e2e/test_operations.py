"""Operating the sync day to day (PostgreSQL catalog, the emulator, a real Dagster instance):
plan before writing, incremental sync, forced and checkpoint-free runs, archive and
mirror, crash between price steps, backups, reset."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import stripe
from click.testing import CliRunner

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.cli import main
from stripe_sync_tests.conftest import TEST_SECRET_KEY, minor_units, stripe_state, write_requests
from stripe_sync_tests.support.sample_catalog import (
    assert_in_sync,
    expected_currency,
    sample_products,
)


def catalog(products_table, pipeline_env, count=8):
    source = {row["id"]: row for row in sample_products(count)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    return source, table


def cli(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def stripe_client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": emulator.base_url})


def writes_by_endpoint(log: list[dict]) -> Counter:
    return Counter(entry["endpoint"] for entry in write_requests(log))


def test_plan_shows_every_change_and_writes_nothing_anywhere(
    products_table, pipeline_env, emulator, tmp_path
):
    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    table.update("sku-00001", name="Renamed")
    table.update("sku-00002", price=Decimal("99.00"))
    table.update("sku-00003", active=False)
    table.insert([{"id": "sku-new", "name": "New", "price": Decimal(5), "currency": "eur"}])
    table.insert([{"id": "sku-bad", "name": "Bad", "price": None, "currency": "eur"}])
    rows_before = table.rows()
    requests_before = len(emulator.requests())

    text = cli("plan")
    as_json = cli("plan", "--json")
    dry = cli("migrate", "--dry-run")

    assert text.exit_code == 0 and as_json.exit_code == 0 and dry.exit_code == 0, text.output
    assert len(emulator.requests()) == requests_before  # not even a read
    assert table.rows() == rows_before
    plan = json.loads(as_json.output)
    assert plan["counts"] | {} == {
        **dict.fromkeys(plan["counts"], 0),
        "create": 1,
        "update": 1,
        "new_price": 1,
        "archive": 1,
        "unchanged": 5,
        "invalid": 1,
    }
    by_id = {row["cms_id"]: row for row in plan["actions"]}
    assert by_id["sku-00001"]["diff"] == ["name: 'Product 1' -> 'Renamed'"]
    assert by_id["sku-00002"]["fields"] == ["price"]
    assert by_id["sku-bad"]["change"] == "invalid"
    assert (
        "- **sku-00001**: update" in text.output and "name: 'Product 1' -> 'Renamed'" in text.output
    )
    assert text.output == dry.output
    # then migrate does exactly what the plan said
    result = pipeline_env.migrate()
    writes = writes_by_endpoint(emulator.requests()[requests_before:])
    assert writes == {
        "POST /v1/products": 1,  # the new row
        "POST /v1/products/{id}": 3,  # the rename, the archive, the new default price
        "POST /v1/prices": 1,
        "POST /v1/prices/{id}": 1,  # the old price archived
    }
    assert result.report["counts"]["created"] == 1 and result.report["counts"]["updated"] == 3


def test_unchanged_rows_cost_no_stripe_write_and_one_read_per_hundred_for_verification(
    products_table, pipeline_env, emulator
):
    catalog(products_table, pipeline_env, count=30)
    pipeline_env.migrate()
    before = len(emulator.requests())

    result = pipeline_env.migrate()

    log = emulator.requests()[before:]
    assert write_requests(log) == []
    assert result.report["stripe_requests"] == 0
    assert len(log) <= 1  # at most the verification's one list of 30 ids


def test_a_forced_resync_resends_every_product_without_a_duplicate(
    products_table, pipeline_env, emulator
):
    source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    before = len(emulator.requests())

    result = pipeline_env.migrate(force_resync=True)

    assert result.succeeded
    log = emulator.requests()[before:]
    assert writes_by_endpoint(log) == {"POST /v1/products/{id}": 8}
    assert Counter(e["endpoint"] for e in log if e["method"] == "GET")["GET /v1/products/{id}"] == 8
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_without_checkpoints_every_product_is_read_and_only_drift_is_written(
    products_table, pipeline_env, emulator
):
    source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    stripe_client(emulator).v1.products.update("cms_sku-00004", {"name": "Edited by hand"})
    before = len(emulator.requests())

    result = pipeline_env.migrate(no_checkpoint=True)

    assert result.succeeded
    log = emulator.requests()[before:]
    assert [e["path"] for e in write_requests(log)] == ["/v1/products/cms_sku-00004"]
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_reset_forgets_the_sync_state_so_the_next_run_reexamines_every_product(
    products_table, pipeline_env, emulator
):
    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    rows_before = table.rows()

    reset = cli("reset", "--yes")

    assert reset.exit_code == 0 and "forgot the checkpoints of 8 products" in reset.output
    assert table.rows() == rows_before  # the catalog's columns untouched
    before = len(emulator.requests())
    result = pipeline_env.migrate()
    log = emulator.requests()[before:]
    assert write_requests(log) == []
    assert Counter(e["endpoint"] for e in log)["GET /v1/products/{id}"] == 8
    assert result.report["counts"]["unchanged"] == 8


def test_reset_with_the_catalog_columns_empties_them_and_the_next_run_finds_every_product(
    products_table, pipeline_env, emulator
):
    source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()

    reset = cli("reset", "--yes", "--catalog-columns")

    assert (
        reset.exit_code == 0 and "emptied the write-back columns of 8 catalog rows" in reset.output
    )
    assert {row["stripe_product_id"] for row in table.rows().values()} == {None}
    result = pipeline_env.migrate()
    assert result.succeeded
    products, prices = stripe_state(emulator.base_url)
    assert len(products) == 8 and len(prices) == 8  # found again, never duplicated
    assert_in_sync(table.rows(), source, products, prices)


def test_deactivating_a_row_archives_its_product_and_reactivating_restores_it(
    products_table, pipeline_env, emulator
):
    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    client = stripe_client(emulator)

    table.update("sku-00001", active=False)
    pipeline_env.migrate()
    assert client.v1.products.retrieve("cms_sku-00001").active is False

    table.update("sku-00001", active=True)
    before = len(emulator.requests())
    pipeline_env.migrate()
    assert client.v1.products.retrieve("cms_sku-00001").active is True
    assert [e["path"] for e in write_requests(emulator.requests()[before:])] == [
        "/v1/products/cms_sku-00001"
    ]


def test_a_deleted_row_is_reported_and_archived_only_in_mirror_mode(
    products_table, pipeline_env, emulator
):
    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    client = stripe_client(emulator)
    table.connection.execute(f"delete from {table.name} where id = 'sku-00002'")

    kept = pipeline_env.migrate()

    assert kept.report["counts"]["orphaned"] == 1
    assert kept.report["removed"][0]["cms_id"] == "sku-00002"
    assert "still live" in kept.report_markdown
    assert client.v1.products.retrieve("cms_sku-00002").active is True

    pipeline_env.set(STRIPE_SYNC_MIRROR="true")
    before = len(emulator.requests())
    mirrored = pipeline_env.migrate()

    assert mirrored.report["counts"]["archived"] == 1
    assert client.v1.products.retrieve("cms_sku-00002").active is False
    assert [e["path"] for e in write_requests(emulator.requests()[before:])] == [
        "/v1/products/cms_sku-00002"
    ]
    again = pipeline_env.migrate()  # archived once, then left alone
    assert again.report["counts"]["archived"] == 0 and again.report["stripe_requests"] == 0


def test_a_crash_between_creating_a_price_and_making_it_the_default_converges_without_a_second_price(
    products_table, pipeline_env, emulator
):
    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    old_price = table.rows()["sku-00001"]["stripe_price_id"]
    currency = stripe_client(emulator).v1.prices.retrieve(old_price).currency
    table.update("sku-00001", price=Decimal("77.00"))
    # What the crashed run left: the new price, made with the pipeline's lookup key, not
    # yet the default; the catalog still says the old price.
    lookup_key = f"stripe_sync:cms_sku-00001:{currency}:7700"
    stray = stripe_client(emulator).v1.prices.create(
        {
            "product": "cms_sku-00001",
            "currency": currency,
            "unit_amount": 7700,
            "lookup_key": lookup_key,
        }
    )

    result = pipeline_env.migrate()

    assert result.succeeded
    products, prices = stripe_state(emulator.base_url)
    of_product = [p for p in prices.values() if p["product"] == "cms_sku-00001"]
    assert sorted((p["unit_amount"], p["active"]) for p in of_product) == [
        (prices[old_price]["unit_amount"], False),
        (7700, True),
    ]
    product = next(p for p in products if p["id"] == "cms_sku-00001")
    assert product["default_price"] == stray.id
    assert table.rows()["sku-00001"]["stripe_price_id"] == stray.id


def test_a_batch_is_backed_up_before_it_writes_and_its_materialization_points_at_the_backup(
    products_table, pipeline_env, emulator
):
    import dagster as dg

    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    rows_before = table.rows()
    table.update("sku-00001", name="Renamed")

    pipeline_env.migrate()

    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("stripe_products"))
    [named] = event.asset_materialization.metadata["backups"].value
    assert named.startswith(f"backup of run {event.run_id}, batch 00000~sku-00000 (table ")
    source = open_catalog(
        database_url=table.database_url, supabase_url=None, supabase_key=None, table=table.name
    )
    [backup] = [b for b in open_state(source).backups() if b.run_id == event.run_id]
    source.close()
    assert backup.actions == {"sku-00001": "update"}
    [row] = backup.catalog_rows
    assert row["id"] == "sku-00001" and row["sync_hash"] == rows_before["sku-00001"]["sync_hash"]
    product = backup.stripe_products["cms_sku-00001"]
    assert product["name"] == "Product 1"
    assert product["default_price"]["id"] == rows_before["sku-00001"]["stripe_price_id"]


def test_ten_new_prices_ten_renames_five_deactivations_and_five_deletions_plan_apply_verify_and_roll_back(
    products_table, pipeline_env, emulator
):
    source = {row["id"]: row for row in sample_products(60)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="20", STRIPE_SYNC_MIRROR="true")
    assert pipeline_env.migrate().succeeded
    stripe_before = stripe_state(emulator.base_url)
    columns_before = write_back_columns(table.rows())
    active = [cms_id for cms_id, row in source.items() if row["active"] is not False]
    repriced, renamed, deactivated, deleted = (
        active[0:10],
        active[10:20],
        active[20:25],
        active[25:30],
    )
    for cms_id in repriced:
        table.update(cms_id, price=source[cms_id]["price"] + 1)
    for cms_id in renamed:
        table.update(cms_id, name=f"{source[cms_id]['name']} (renamed)")
    for cms_id in deactivated:
        table.update(cms_id, active=False)
    table.connection.execute(f"delete from {table.name} where id = any(%s)", [deleted])

    plan = json.loads(cli("plan", "--json").output)

    assert {change: n for change, n in plan["counts"].items() if n} == {
        "new_price": 10,
        "update": 10,
        "archive": 5,
        "remove": 5,
        "unchanged": 30,
    }
    assert {row["cms_id"] for row in plan["actions"] if row["change"] == "remove"} == set(deleted)

    before = len(emulator.requests())
    migrated = pipeline_env.migrate()

    assert migrated.succeeded
    assert writes_by_endpoint(emulator.requests()[before:]) == {
        "POST /v1/prices": 10,  # the new prices
        "POST /v1/products/{id}": 10 + 10 + 5 + 5,  # new defaults, renames, archives
        "POST /v1/prices/{id}": 10,  # the old prices archived
    }
    products, prices = stripe_state(emulator.base_url)
    by_id = {product["id"]: product for product in products}
    assert all(not by_id[f"cms_{cms_id}"]["active"] for cms_id in deactivated + deleted)
    assert all(by_id[f"cms_{cms_id}"]["name"].endswith("(renamed)") for cms_id in renamed)
    for cms_id in repriced:
        default_price = prices[by_id[f"cms_{cms_id}"]["default_price"]]
        expected = minor_units(source[cms_id]["price"] + 1, expected_currency(source[cms_id]))
        assert default_price["unit_amount"] == expected

    verified = cli("verify")
    assert verified.exit_code == 0, verified.output

    rolled_back = cli("rollback", "--since", migrated.run_ids[0], "--yes")

    assert rolled_back.exit_code == 0, rolled_back.output
    products_after, prices_after = stripe_state(emulator.base_url)
    assert comparable(products_after) == comparable(stripe_before[0])
    assert {pid: p["active"] for pid, p in prices_after.items() if pid in stripe_before[1]} == {
        pid: p["active"] for pid, p in stripe_before[1].items()
    }
    made_by_migration = set(prices_after) - set(stripe_before[1])
    assert len(made_by_migration) == 10
    assert not any(prices_after[pid]["active"] for pid in made_by_migration)
    still_in_catalog = {cms_id: columns_before[cms_id] for cms_id in table.rows()}
    assert write_back_columns(table.rows()) == still_in_catalog


def write_back_columns(rows: dict[str, dict]) -> dict[str, dict]:
    from stripe_sync.core.contract import WRITE_BACK_COLUMNS

    return {cms_id: {c: row[c] for c in WRITE_BACK_COLUMNS} for cms_id, row in rows.items()}


def comparable(products: list[dict]) -> dict[str, dict]:
    """What a rollback restores of each product (not `updated`, which every write moves)."""
    fields = ("name", "description", "images", "metadata", "active", "default_price")
    return {product["id"]: {f: product[f] for f in fields} for product in products}


def test_a_dry_run_in_dagster_observes_the_plan_and_writes_nothing_not_even_a_read(
    products_table, pipeline_env, emulator
):
    import dagster as dg

    from stripe_sync.definitions import build_definitions
    from stripe_sync.operations.instance import run_batches

    _source, table = catalog(products_table, pipeline_env)
    pipeline_env.migrate()
    table.update("sku-00001", name="Renamed")
    rows_before, requests_before = table.rows(), len(emulator.requests())
    defs = build_definitions()

    with dg.DagsterInstance.get() as instance:
        [batch] = instance.get_dynamic_partitions("product_batches")
        synced = instance.get_latest_materialization_event(dg.AssetKey("stripe_products"))
        result = run_batches(
            defs.resolve_job_def("migrate_batches"),
            instance,
            [batch],
            {"ops": {"stripe_products": {"config": {"dry_run": True}}}},
        )
        latest = instance.get_latest_materialization_event(dg.AssetKey("stripe_products"))

    assert result.success
    assert len(emulator.requests()) == requests_before  # no write, no verification read
    assert table.rows() == rows_before
    assert latest.run_id == synced.run_id  # the last sync is still the latest
    [observation] = [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observation.metadata["update"].value == 1
    assert "name: 'Product 1' -> 'Renamed'" in observation.metadata["plan"].value
    assert not result.asset_materializations_for_node("stripe_prices")
