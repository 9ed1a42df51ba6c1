"""The reconcile schedule, ticked on a real instance against a PostgreSQL catalog, with its
runs executed against the Stripe emulator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from psycopg import sql

from stripe_sync.core.errors import ConfigError
from stripe_sync.definitions import build_definitions
from stripe_sync_tests.conftest import stripe_state, write_requests
from stripe_sync_tests.defs.conftest import batches_of, products

TICK = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
NEXT_TICK = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def cron() -> str:
    return build_definitions().resolve_schedule_def("reconcile_batches").cron_schedule


def test_the_schedule_is_hourly_unless_STRIPE_SYNC_RECONCILE_CRON_says_otherwise(pipeline_env):
    assert cron() == "0 * * * *"
    pipeline_env.set(STRIPE_SYNC_RECONCILE_CRON="*/15 6-22 * * 1-5")
    assert cron() == "*/15 6-22 * * 1-5"
    pipeline_env.set(STRIPE_SYNC_RECONCILE_CRON="hourly")
    with pytest.raises(ConfigError) as error:
        build_definitions()
    assert str(error.value) == (
        "STRIPE_SYNC_RECONCILE_CRON must be a cron expression such as '0 * * * *' (hourly), "
        "not 'hourly'."
    )


def test_a_tick_registers_the_batches_and_runs_all_ten_to_a_run_with_a_key_per_tick(
    products_table, pipeline_env, automation
):
    pipeline_env.use_catalog(products_table(products(23)))
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="2")
    requests = automation.schedule_tick(TICK).run_requests
    keys = automation.instance.get_dynamic_partitions("product_batches")
    assert len(keys) == 12  # 23 rows, 2 a batch (the last holds 3)
    assert [batches_of(r) for r in requests] == [(keys[0], keys[9]), (keys[10], keys[11])]
    assert len({r.run_key for r in requests}) == 2
    again = automation.schedule_tick(TICK).run_requests
    assert [r.run_key for r in again] == [r.run_key for r in requests]
    later = automation.schedule_tick(NEXT_TICK).run_requests
    assert {r.run_key for r in later}.isdisjoint(r.run_key for r in requests)


def test_an_empty_catalog_skips_the_tick(products_table, pipeline_env, automation):
    pipeline_env.use_catalog(products_table())
    tick = automation.schedule_tick(TICK)
    assert tick.run_requests == []
    assert tick.skip_message == "no batches: the catalog is empty"


def test_reconciling_writes_only_what_changed_even_a_change_the_sensor_cannot_see(
    products_table, pipeline_env, emulator, automation
):
    table = products_table(products(25))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="10")
    assert pipeline_env.migrate().succeeded
    assert automation.tick("catalog_changes").run_requests == []
    # An edit that leaves updated_at alone: invisible to the change sensor.
    table.connection.execute(
        sql.SQL("update {} set name = 'Cap' where id = 'sku-00017'").format(
            sql.Identifier(table.name)
        )
    )
    assert automation.tick("catalog_changes").run_requests == []
    seen = len(emulator.requests())
    [request] = automation.schedule_tick(TICK).run_requests  # 3 batches: one run
    assert automation.run(request).success
    writes = write_requests(emulator.requests()[seen:])
    assert [w["path"] for w in writes] == ["/v1/products/cms_sku-00017"]
    names = {p["id"]: p["name"] for p in stripe_state(pipeline_env.emulator_url)[0]}
    assert names["cms_sku-00017"] == "Cap"
