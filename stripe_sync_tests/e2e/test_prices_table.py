"""Several prices per product from a prices table (recurring, several currencies, sizes),
on PostgreSQL, SQLite and the Supabase look-alike: exact Stripe state, exactly the requests
a change needs, reruns free."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import dagster as dg
import pytest
import stripe
from click.testing import CliRunner

from stripe_sync.cli import main
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.definitions import build_definitions
from stripe_sync.defs.jobs import register_batches
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.emulator.knobs import FAULT_KINDS
from stripe_sync.operations.plan import plan
from stripe_sync.settings.loader import load_settings
from stripe_sync_tests.conftest import (
    BATCH_ASSETS,
    PRICES_CHECK,
    TEST_SECRET_KEY,
    kill_when,
    latest_results,
    stripe_state,
    stripe_sync_script,
    write_requests,
)
from stripe_sync_tests.e2e.test_resilience import migrate_until_done
from stripe_sync_tests.support.own_schemas import MANY_PLANS, MANY_PLANS_COUNT, PLANS, SIZES

# Per product: the default price's row id, and every active price by row id as
# (currency, unit_amount, interval, interval_count, nickname).
PLANS_FIRST = {
    "cms_basic": (
        "basic-m-eur",
        {
            "basic-m-eur": ("eur", 900, "month", 1, "Monthly"),
            "basic-m-usd": ("usd", 1000, "month", 1, None),
            "basic-y-eur": ("eur", 9000, "year", 1, "Yearly"),
            "basic-y-usd": ("usd", 10000, "year", 1, None),
        },
    ),
    "cms_team": (
        "team-q-eur",
        {
            "team-m-eur": ("eur", 2900, "month", 1, None),
            "team-q-eur": ("eur", 7500, "month", 3, "Quarterly"),
        },
    ),
}
# A new amount, a new currency, a price removed and the default switched, all on `basic`.
PLANS_EDITS = (
    "update {t}_prices set amount_cents = 990 where price_key = 'basic-m-eur'",
    """insert into {t}_prices (price_key, plan_slug, amount_cents, currency, billing_interval)
       values ('basic-m-gbp', 'basic', 800, 'gbp', 'month')""",
    "delete from {t}_prices where price_key = 'basic-y-usd'",
    "update {t}_prices set is_default = (price_key = 'basic-y-eur') where plan_slug = 'basic'",
)
PLANS_SECOND = {
    "cms_basic": (
        "basic-y-eur",
        {
            "basic-m-eur": ("eur", 990, "month", 1, "Monthly"),
            "basic-m-gbp": ("gbp", 800, "month", 1, None),
            "basic-m-usd": ("usd", 1000, "month", 1, None),
            "basic-y-eur": ("eur", 9000, "year", 1, "Yearly"),
        },
    ),
    "cms_team": PLANS_FIRST["cms_team"],
}
# Requests of the second sync: the changed product's prices read, two made, the default
# switched, two archived (the old amount, the removed row); then verification reads each
# product's prices (one request a product; its product reads aside).
PLANS_SECOND_REQUESTS = {
    "GET /v1/prices": 1 + 2,
    "POST /v1/prices": 2,
    "POST /v1/products/{id}": 1,
    "POST /v1/prices/{id}": 2,
}

SIZES_FIRST = {
    "cms_1": (
        "11",
        {"11": ("eur", 1500, None, 1, None), "12": ("eur", 1500, None, 1, None),
         "13": ("eur", 1750, None, 1, None)},
    ),
    "cms_2": ("21", {"21": ("eur", 4500, None, 1, None), "22": ("eur", 4900, None, 1, None)}),
    "cms_10": ("101", {"101": ("eur", 1200, None, 1, None)}),
}  # fmt: skip
SIZES_EDITS = (
    "delete from {t}_sizes where id = 12",
    "update {t}_sizes set price = 52.00 where id = 22",
)
SIZES_SECOND = {
    **SIZES_FIRST,
    "cms_1": ("11", {"11": ("eur", 1500, None, 1, None), "13": ("eur", 1750, None, 1, None)}),
    "cms_2": ("21", {"21": ("eur", 4500, None, 1, None), "22": ("eur", 5200, None, 1, None)}),
}

BACKENDS = ("postgres", "sqlite", "supabase")


def stripe_prices_by_product(base_url: str) -> dict[str, tuple[str, dict[str, tuple]]]:
    """What Stripe holds, as the expectations above spell it; fails on a duplicate product or
    two active prices of one row."""
    products, prices = stripe_state(base_url)
    assert len({p["id"] for p in products}) == len(products), "a duplicate product"
    held = {}
    for product in products:
        active = [p for p in prices.values() if p["product"] == product["id"] and p["active"]]
        keys = Counter(p["metadata"]["cms_price_id"] for p in active)
        assert max(keys.values()) == 1, f"{product['id']}: two active prices of one row"
        default = prices[product["default_price"]]
        held[product["id"]] = (
            default["metadata"]["cms_price_id"],
            {
                p["metadata"]["cms_price_id"]: (
                    p["currency"],
                    p["unit_amount"],
                    (p["recurring"] or {}).get("interval"),
                    (p["recurring"] or {}).get("interval_count", 1),
                    p["nickname"],
                )
                for p in active
            },
        )
    return held


def by_endpoint(log: list[dict]) -> Counter:
    return Counter(entry["endpoint"] for entry in log if entry["endpoint"] != "GET /v1/account")


@pytest.mark.parametrize("backend", BACKENDS)
def test_plans_with_monthly_and_yearly_prices_in_two_currencies_sync_exactly(
    backend, schema_cms, pipeline_env, emulator
):
    cms = schema_cms(backend, PLANS)

    first = pipeline_env.migrate()
    assert first.succeeded, first.report_markdown
    # One request a product, one a further price, one a default's nickname.
    assert by_endpoint(write_requests(emulator.requests())) == {
        "POST /v1/products": 2,
        "POST /v1/prices": 4,
        "POST /v1/prices/{id}": 2,
    }
    assert stripe_prices_by_product(emulator.base_url) == PLANS_FIRST
    assert first.report["prices"] == {"created": 6, "archived": 0, "unchanged": 0}
    assert all(result.passed for result in latest_results(PRICES_CHECK).values())

    cms.execute(*PLANS_EDITS)
    seen = len(emulator.requests())
    second = pipeline_env.migrate()
    assert second.succeeded, second.report_markdown
    changes = [e for e in emulator.requests()[seen:] if e["endpoint"] != "GET /v1/products"]
    assert by_endpoint(changes) == PLANS_SECOND_REQUESTS
    assert stripe_prices_by_product(emulator.base_url) == PLANS_SECOND
    assert second.report["prices"] == {"created": 2, "archived": 2, "unchanged": 4}
    assert all(result.passed for result in latest_results(PRICES_CHECK).values())

    seen = len(emulator.requests())
    rerun = pipeline_env.migrate()
    assert rerun.succeeded
    assert write_requests(emulator.requests()[seen:]) == []


def test_a_stop_between_the_products_and_the_prices_steps_leaves_no_create_to_send_again(
    schema_cms, pipeline_env, emulator
):
    schema_cms("postgres", PLANS)
    with dg.DagsterInstance.get() as instance:
        [batch] = register_batches(instance, load_settings(), batch_size=1_000)
        # The run ends after its products step, as a stop between the two steps leaves it.
        job = build_definitions().resolve_job_def("migrate_batches")
        products_only = job.get_subset(
            asset_selection={dg.AssetKey(asset) for asset in BATCH_ASSETS[:3]},
            asset_check_selection=set(),
        )
        products_step = products_only.execute_in_process(instance=instance, partition_key=batch)
    assert products_step.success
    assert by_endpoint(write_requests(emulator.requests()))["POST /v1/products"] == 2
    seen = len(emulator.requests())

    rerun = pipeline_env.migrate()

    assert rerun.succeeded, rerun.report_markdown
    assert "POST /v1/products" not in by_endpoint(emulator.requests()[seen:])
    assert stripe_prices_by_product(emulator.base_url) == PLANS_FIRST


def test_verification_reports_a_price_archived_by_hand_and_the_next_sync_restores_it(
    schema_cms, pipeline_env, emulator
):
    schema_cms("postgres", PLANS)
    assert pipeline_env.migrate().succeeded
    client = stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": emulator.base_url})
    yearly = next(
        price
        for price in client.v1.prices.list({"product": "cms_basic", "limit": 100}).data
        if price.metadata["cms_price_id"] == "basic-y-usd"
    )
    client.v1.prices.update(yearly.id, {"active": False})

    verified = CliRunner().invoke(main, ["verify"])

    assert verified.exit_code == 1, verified.output
    assert "price basic-y-usd" in verified.stdout
    assert not any(result.passed for result in latest_results(PRICES_CHECK).values())
    assert pipeline_env.migrate().succeeded
    assert stripe_prices_by_product(emulator.base_url) == PLANS_FIRST


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_shop_with_sizes_syncs_each_size_as_a_price_and_follows_its_edits(
    backend, schema_cms, pipeline_env, emulator
):
    cms = schema_cms(backend, SIZES)

    assert pipeline_env.migrate().succeeded
    assert stripe_prices_by_product(emulator.base_url) == SIZES_FIRST

    cms.execute(*SIZES_EDITS)
    assert pipeline_env.migrate().succeeded
    assert stripe_prices_by_product(emulator.base_url) == SIZES_SECOND

    seen = len(emulator.requests())
    assert pipeline_env.migrate().succeeded
    assert write_requests(emulator.requests()[seen:]) == []


# --- crashes and faults -----------------------------------------------------------------


def assert_many_plans_exact(base_url: str) -> None:
    """Every plan once, with exactly its three prices (none made twice, none archived), the
    one-time one its default."""
    products, prices = stripe_state(base_url)
    assert sorted(p["id"] for p in products) == [
        f"cms_plan-{n:03d}" for n in range(1, MANY_PLANS_COUNT + 1)
    ]
    by_product = Counter(price["product"] for price in prices.values())
    assert set(by_product.values()) == {3}, "a price made twice, or missing"
    assert all(price["active"] for price in prices.values())
    for product in products:
        default = prices[product["default_price"]]
        assert default["metadata"]["cms_price_id"] == product["id"].removeprefix("cms_") + "-a-once"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_migration_of_several_prices_killed_midway_converges_without_a_duplicate_price(
    seed, schema_cms, pipeline_env, emulator, tmp_path
):
    schema_cms("postgres", MANY_PLANS)
    emulator.configure(latency_ms=30, latency_jitter_ms=10, seed=seed)
    writes = 3 * MANY_PLANS_COUNT  # a product with its default, then two further prices
    kill_after = random.Random(seed).randint(writes // 5, 4 * writes // 5)

    kill_when(
        [stripe_sync_script(), "migrate", "--batch-size=5", "--batches-per-run=2"],
        pipeline_env.cli_env(),
        tmp_path / "killed.out",
        landed=lambda: len(write_requests(emulator.requests())) >= kill_after,
    )
    made = stripe_state(emulator.base_url)[1]
    assert 0 < len(made) < writes, "the kill must land midway"

    emulator.configure(latency_ms=0, latency_jitter_ms=0)
    rerun = pipeline_env.migrate()

    assert rerun.succeeded, rerun.report_markdown
    assert_many_plans_exact(emulator.base_url)
    assert all(result.passed for result in latest_results(PRICES_CHECK).values())


def test_with_a_fifth_of_requests_faulted_several_prices_converge_without_a_duplicate_price(
    schema_cms, pipeline_env, emulator
):
    schema_cms("postgres", MANY_PLANS)
    pipeline_env.set(
        STRIPE_SYNC_BATCH_SIZE="10",
        STRIPE_TIMEOUT_S="1",  # the 3 s stalls time out
        STRIPE_MAX_ATTEMPTS="10",
        STRIPE_DEADLINE_S="60",
    )
    emulator.configure(
        fault_rate=0.2, fault_kinds=list(FAULT_KINDS), stall_seconds=3, burst_length=3, seed=18
    )

    results = migrate_until_done(pipeline_env, runs=3)

    faults = Counter(e["fault"] for e in emulator.requests() if e["fault"])
    assert sum(faults.values()) > 0
    emulator.configure(fault_rate=0.0)
    assert_many_plans_exact(emulator.base_url)
    assert results[-1].report["counts"]["failed"] == 0


def test_rollback_brings_every_price_back_as_active_as_it_was_and_a_second_finds_nothing(
    schema_cms, pipeline_env, emulator
):
    cms = schema_cms("postgres", PLANS)
    assert pipeline_env.migrate().succeeded
    second_run_started = datetime.now(UTC).isoformat()
    cms.execute(*PLANS_EDITS)
    assert pipeline_env.migrate().succeeded
    assert stripe_prices_by_product(emulator.base_url) == PLANS_SECOND

    rolled_back = CliRunner().invoke(main, ["rollback", "--yes", "--since", second_run_started])

    assert rolled_back.exit_code == 0, rolled_back.output
    assert stripe_prices_by_product(emulator.base_url) == PLANS_FIRST, rolled_back.output
    seen = len(emulator.requests())
    again = CliRunner().invoke(main, ["rollback", "--yes", "--since", second_run_started])
    assert "Nothing to roll back." in again.output
    assert write_requests(emulator.requests()[seen:]) == []


def test_the_plan_shows_each_products_prices(schema_cms, pipeline_env, emulator):
    schema_cms("postgres", PLANS)
    settings = load_settings()

    summary = plan(settings, RunOptions(), PlanSummary(every_row=True))
    markdown = summary.to_markdown()

    assert summary.changes["create"] == 2
    assert (
        "prices: [\"basic-m-eur: 9.00 EUR every 1 month 'Monthly'\", 'basic-m-usd: 10.00 USD "
        "every 1 month', \"basic-y-eur: 90.00 EUR every 1 year 'Yearly'\", 'basic-y-usd: "
        "100.00 USD every 1 year']" in markdown
    )
    assert emulator.requests() == []
