"""A Supabase project answers at most its "Max rows" a read (1,000 by default, lower where a
project sets it): registration, the batches' reads, the change sensor's removal scan and
mirror mode still see every row of a 5,000-row catalog with uuid ids, and nothing is
archived. Default topology: the catalog and the state in the one Supabase project."""

from __future__ import annotations

import uuid
from decimal import Decimal

from stripe_sync_tests.conftest import WRITE_BACK_MIGRATION, stripe_state, write_requests
from stripe_sync_tests.support.postgrest import grant_like_supabase, run_postgrest, service_role_key

ROWS = 5_000


def test_every_row_is_seen_and_none_archived_through_supabases_row_cap(
    request, products_table, catalog_connection, fresh_database_url, jwt_secret, pipeline_env,
    emulator, automation
):  # fmt: skip
    request.getfixturevalue("apply_state_migration")
    rows = [
        {"id": str(uuid.uuid4()), "name": f"Product {n}", "price": Decimal("4.20")}
        for n in range(ROWS)
    ]
    products_table(rows, name="products", id_type="uuid")
    catalog_connection.execute(WRITE_BACK_MIGRATION.read_text())
    grant_like_supabase(catalog_connection, "products")
    pipeline_env.set(
        SUPABASE_SERVICE_ROLE_KEY=service_role_key(jwt_secret),
        STRIPE_SYNC_MIRROR="true",
        # Not the default: an account whose limits Stripe raised, so that 5,000 creates take
        # seconds (the emulator has no limit of its own here).
        STRIPE_SYNC_THROTTLE_GLOBAL_RATE="2000",
        STRIPE_SYNC_THROTTLE_ENDPOINT_RATE="2000",
        STRIPE_SYNC_MAX_IN_FLIGHT="16",
    )
    with run_postgrest(fresh_database_url, jwt_secret) as supabase_url:  # Supabase's 1,000
        pipeline_env.set(SUPABASE_URL=supabase_url)
        first = pipeline_env.migrate()
    assert first.succeeded, first.report_markdown
    assert len(first.new_batches) == ROWS // 1_000
    assert first.report["counts"]["created"] == ROWS

    for max_rows in (1_000, 250):  # the same project, its "Max rows" lowered
        with run_postgrest(fresh_database_url, jwt_secret, max_rows=max_rows) as supabase_url:
            pipeline_env.set(SUPABASE_URL=supabase_url)
            automation.cursors.pop("catalog_changes", None)  # a first tick: its scan is due
            scan = automation.tick("catalog_changes")
            assert scan.run_requests == [], (max_rows, scan.skip_reason)
            mark = len(emulator.requests())

            again = pipeline_env.migrate()

        assert again.succeeded, again.report_markdown
        assert again.new_batches == []
        assert again.report["counts"]["unchanged"] == ROWS
        assert again.report["counts"]["archived"] == 0
        assert write_requests(emulator.requests()[mark:]) == []
    products, _prices = stripe_state(emulator.base_url)
    assert len(products) == ROWS and all(product["active"] for product in products)
