"""The change sensor and the failed-batch sensor, ticked on a real instance (a throwaway
DAGSTER_HOME) against a PostgreSQL catalog, with the runs they request executed against
the Stripe emulator."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from psycopg import sql

from stripe_sync.core.errors import ConfigError
from stripe_sync.definitions import build_definitions
from stripe_sync_tests.conftest import stripe_state
from stripe_sync_tests.defs.conftest import batches_of, products

CHANGES, RETRY = "catalog_changes", "failed_batch_retry"
BATCH_0, BATCH_1, BATCH_2 = "00000~sku-00000", "00001~sku-00010", "00002~sku-00020"


def stripe_product(env, cms_id: str) -> dict:
    [product] = [p for p in stripe_state(env.emulator_url)[0] if p["id"] == f"cms_{cms_id}"]
    return product


def touch_on_update(table) -> None:
    """updated_at follows every update, the pipeline's write-back included (Supabase's
    moddatetime trigger does this)."""
    table.connection.execute(
        "create or replace function touch_updated_at() returns trigger language plpgsql as "
        "$$ begin new.updated_at = clock_timestamp(); return new; end $$"
    )
    table.connection.execute(
        sql.SQL(
            "create trigger touch before update on {} for each row execute function touch_updated_at()"
        ).format(sql.Identifier(table.name))
    )


def execute(table, statement: str, *params) -> None:
    table.connection.execute(sql.SQL(statement).format(sql.Identifier(table.name)), params)


@pytest.fixture
def synced_catalog(products_table, pipeline_env, emulator, automation):
    """25 products in 3 batches of 10, migrated, and one tick that saw them all."""
    table = products_table(products(25))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="10")
    assert pipeline_env.migrate().succeeded
    first = automation.tick(CHANGES)
    assert first.run_requests == []
    return table


# --- catalog_changes -----------------------------------------------------------------------


def test_after_a_full_migration_a_tick_requests_nothing_and_keeps_its_place(
    synced_catalog, automation
):
    cursor = json.loads(automation.cursors[CHANGES])
    assert cursor["after"][1] == "sku-00024"
    assert cursor["removal_scan_at"] is not None
    again = automation.tick(CHANGES)
    assert again.run_requests == []
    assert again.skip_message.startswith("0 rows changed")


def test_an_edit_requests_a_run_of_its_batch_only_and_the_run_syncs_it(
    synced_catalog, automation, pipeline_env
):
    touch_on_update(synced_catalog)
    synced_catalog.update("sku-00012", name="Cap")
    [request] = automation.tick(CHANGES).run_requests
    assert batches_of(request) == (BATCH_1, BATCH_1)
    assert automation.run(request).success
    assert stripe_product(pipeline_env, "sku-00012")["name"] == "Cap"
    # The run's write-back touched the row's updated_at: nothing that reaches Stripe changed.
    after_run = automation.tick(CHANGES)
    assert after_run.run_requests == []
    assert after_run.skip_message == "1 row changed, none in a way that reaches Stripe"


def test_a_touch_that_changes_nothing_requests_nothing_and_says_so(
    synced_catalog, automation, capfd
):
    execute(synced_catalog, "update {} set updated_at = now() where id < 'sku-00003'")
    capfd.readouterr()
    tick = automation.tick(CHANGES)
    assert tick.run_requests == []
    assert tick.skip_message == "3 rows changed, none in a way that reaches Stripe"
    assert (
        "3 rows changed since the last tick: 0 to sync, 3 changed nothing that reaches "
        "Stripe (a touched updated_at, or the pipeline's own write-back)"
    ) in capfd.readouterr().err


def test_a_tick_during_a_catalog_outage_is_skipped_and_the_cursor_holds(
    products_table, pipeline_env, emulator, automation, flaky_catalog, fresh_database_url
):
    proxy, through = flaky_catalog
    table = products_table(products(25))
    pipeline_env.set(
        CATALOG_DATABASE_URL=through,
        CATALOG_TABLE=table.name,
        STRIPE_SYNC_THROTTLE_URL=fresh_database_url,
        STRIPE_SYNC_BATCH_SIZE="10",
        STRIPE_SYNC_CATALOG_RETRY_ATTEMPTS="3",
    )
    assert pipeline_env.migrate().succeeded
    assert automation.tick(CHANGES).run_requests == []
    cursor = automation.cursors[CHANGES]
    touch_on_update(table)
    table.update("sku-00012", name="Cap")  # edited while the pipeline can't see the catalog
    proxy.down()

    skipped = automation.tick(CHANGES)

    assert skipped.run_requests == []
    assert skipped.skip_message.startswith("the catalog is unreachable: Cannot reach the catalog")
    assert automation.cursors[CHANGES] == cursor
    proxy.up()
    [request] = automation.tick(CHANGES).run_requests  # nothing was missed
    assert batches_of(request) == (BATCH_1, BATCH_1)


def test_the_same_change_gets_the_same_run_key_and_another_change_another(
    synced_catalog, automation
):
    before = automation.cursors[CHANGES]
    synced_catalog.update("sku-00004", name="Cap")
    [first] = automation.tick(CHANGES).run_requests
    automation.cursors[CHANGES] = before  # the same change seen again (a tick redone)
    [again] = automation.tick(CHANGES).run_requests
    assert again.run_key == first.run_key
    synced_catalog.update("sku-00004", name="Hat")
    automation.cursors[CHANGES] = before
    [other] = automation.tick(CHANGES).run_requests
    assert batches_of(other) == batches_of(first) == (BATCH_0, BATCH_0)
    assert other.run_key != first.run_key


def test_new_rows_register_a_new_batch_and_run_with_their_neighbours_in_one_range(
    synced_catalog, automation, pipeline_env
):
    synced_catalog.insert(products(12, start=25))  # batch 2 would hold 17: a new batch at 30
    tick = automation.tick(CHANGES)
    [added] = tick.dynamic_partitions_requests
    assert list(added.partition_keys) == ["00003~sku-00030"]
    assert automation.instance.get_dynamic_partitions("product_batches")[-1] == "00003~sku-00030"
    [request] = tick.run_requests
    assert batches_of(request) == (BATCH_2, "00003~sku-00030")
    assert automation.run(request).success
    assert len(stripe_state(pipeline_env.emulator_url)[0]) == 37


def test_a_new_id_that_sorts_among_old_ones_joins_the_last_batch_and_runs_only_it(
    synced_catalog, automation, pipeline_env
):
    synced_catalog.insert([{"id": "sku-00015a", "name": "Between", "price": "3.00"}])
    tick = automation.tick(CHANGES)
    assert tick.dynamic_partitions_requests == []
    [request] = tick.run_requests
    assert batches_of(request) == (BATCH_2, BATCH_2)
    assert automation.run(request).success
    assert stripe_product(pipeline_env, "sku-00015a")["name"] == "Between"


def test_an_invalid_edit_is_quarantined_once(synced_catalog, automation):
    touch_on_update(synced_catalog)
    synced_catalog.update("sku-00021", name="   ")
    [request] = automation.tick(CHANGES).run_requests
    assert batches_of(request) == (BATCH_2, BATCH_2)
    assert automation.run(request).success
    row = synced_catalog.rows()["sku-00021"]
    assert (row["sync_status"], row["sync_error"]) == (
        "invalid",
        "name_missing: the product has no name",
    )
    assert automation.tick(CHANGES).run_requests == []


def test_a_deleted_row_is_found_by_the_next_removal_scan_and_archived_in_mirror_mode(
    synced_catalog, automation, pipeline_env
):
    pipeline_env.set(STRIPE_SYNC_MIRROR="true")
    execute(synced_catalog, "delete from {} where id = 'sku-00013'")
    # The last scan was a moment ago: the next is due in 15 minutes.
    assert automation.tick(CHANGES).run_requests == []
    last_scan_16_minutes_ago(automation)
    [request] = automation.tick(CHANGES).run_requests
    assert batches_of(request) == (BATCH_1, BATCH_1)
    assert automation.run(request).success
    assert stripe_product(pipeline_env, "sku-00013")["active"] is False
    last_scan_16_minutes_ago(automation)
    after = automation.tick(CHANGES)
    assert after.run_requests == []
    assert after.skip_message.endswith("; no synced row was deleted")


def last_scan_16_minutes_ago(automation) -> None:
    cursor = json.loads(automation.cursors[CHANGES])
    scanned = datetime.fromisoformat(cursor["removal_scan_at"]) - timedelta(minutes=16)
    automation.cursors[CHANGES] = json.dumps({**cursor, "removal_scan_at": scanned.isoformat()})


# --- failed_batch_retry --------------------------------------------------------------------


@pytest.fixture
def failing_batch_1(synced_catalog, automation, emulator):
    """Stripe refuses the key (as after a revoked key): batch 1, edited, fails."""
    emulator.configure(api_keys=["sk_test_someone_else"])
    synced_catalog.update("sku-00011", name="Cap")
    [request] = automation.tick(CHANGES).run_requests
    assert not automation.run(request).success
    return request


def test_a_failed_batch_waits_for_the_backoff_before_its_first_retry(failing_batch_1, automation):
    tick = automation.tick(RETRY)
    assert tick.run_requests == []
    assert tick.skip_message == "1 failed batch waiting for the next retry"
    assert json.loads(automation.cursors[RETRY])[BATCH_1]["attempts"] == 0


def test_a_failed_batch_is_retried_up_to_the_maximum_then_given_up_on_in_the_log(
    failing_batch_1, automation, pipeline_env, capfd
):
    pipeline_env.set(STRIPE_SYNC_RETRY_BASE_MINUTES="0", STRIPE_SYNC_RETRY_MAX_ATTEMPTS="3")
    keys = []
    for _ in range(3):
        [request] = automation.tick(RETRY).run_requests
        assert batches_of(request) == (BATCH_1, BATCH_1)
        keys.append(request.run_key)
        assert not automation.run(request).success
    assert len(set(keys)) == 3
    capfd.readouterr()
    gave_up = automation.tick(RETRY)
    assert gave_up.run_requests == []
    assert f"gave up on batch {BATCH_1} after 3 attempts" in capfd.readouterr().err
    assert automation.tick(RETRY).run_requests == []
    assert "gave up" not in capfd.readouterr().err  # said once


def test_a_batch_that_succeeds_again_is_forgotten(
    failing_batch_1, automation, pipeline_env, emulator
):
    pipeline_env.set(STRIPE_SYNC_RETRY_BASE_MINUTES="0")
    [retry] = automation.tick(RETRY).run_requests
    emulator.configure(api_keys=None)  # the key works again
    assert automation.run(retry).success
    assert stripe_product(pipeline_env, "sku-00011")["name"] == "Cap"
    tick = automation.tick(RETRY)
    assert tick.run_requests == []
    assert tick.skip_message == "no failed batch to retry"
    assert json.loads(automation.cursors[RETRY]) == {}


# --- status --------------------------------------------------------------------------------


def test_automation_starts_stopped_unless_STRIPE_SYNC_AUTOMATION_says_running(pipeline_env):
    def statuses() -> set[str]:
        defs = build_definitions()
        return {
            *(defs.resolve_sensor_def(name).default_status.value for name in (CHANGES, RETRY)),
            defs.resolve_schedule_def("reconcile_batches").default_status.value,
        }

    assert statuses() == {"STOPPED"}
    pipeline_env.set(STRIPE_SYNC_AUTOMATION="running")
    assert statuses() == {"RUNNING"}
    pipeline_env.set(STRIPE_SYNC_AUTOMATION="yes")
    with pytest.raises(ConfigError, match="STRIPE_SYNC_AUTOMATION must be running or stopped"):
        build_definitions()
