"""Catalogs shaped as real CMSs shape them, synced through a field mapping on PostgreSQL,
SQLite and the Supabase look-alike: exact Stripe state after every edit, the CMS's tables
never written, reruns free."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import pytest
import yaml

from stripe_sync.core.errors import CatalogError, ConfigError
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.operations.plan import plan
from stripe_sync.operations.preflight import preflight
from stripe_sync.settings.loader import load_settings
from stripe_sync_tests.conftest import stripe_state, write_requests
from stripe_sync_tests.support.own_schemas import (
    OWN_SCHEMAS,
    SHOP_EXPORT,
    STOREFRONT_VIEW,
    SUPABASE_STARTER,
    Cms,
    Step,
)


@pytest.fixture
def cms(schema_cms) -> Callable[..., Cms]:
    """`make(backend, schema, use_query=False)`: `schema_cms` in mirror mode."""
    return functools.partial(schema_cms, mirror=True)


CASES = [
    *(
        (backend, schema, False)
        for backend in ("postgres", "sqlite", "supabase")
        for schema in OWN_SCHEMAS
    ),
    ("postgres", STOREFRONT_VIEW, True),
    ("sqlite", STOREFRONT_VIEW, True),
]


@pytest.mark.parametrize(
    ("backend", "schema", "use_query"),
    CASES,
    ids=[f"{b}-{s.name}{'-query' if q else ''}" for b, s, q in CASES],
)
def test_an_own_schema_syncs_exactly_through_its_mapping_untouched_and_reruns_free(
    backend, schema, use_query, cms, pipeline_env, emulator
):
    catalog = cms(backend, schema, use_query=use_query)

    for number, step in enumerate(schema.steps, 1):
        catalog.execute(*step.edits)
        before = catalog.snapshot()
        result = pipeline_env.migrate()
        assert result.succeeded, (number, result.report_markdown)
        assert catalog.snapshot() == before, f"step {number} wrote to the CMS"
        assert_stripe_holds(emulator.base_url, step)
    seen = len(emulator.requests())
    rerun = pipeline_env.migrate()

    assert rerun.succeeded
    assert write_requests(emulator.requests()[seen:]) == []
    assert rerun.report["counts"]["unchanged"] == len(schema.steps[-1].products)


def assert_stripe_holds(base_url: str, step: Step) -> None:
    """Exactly the step's products (one each), each with exactly one active price, its
    default; the archived ones inactive."""
    products, prices = stripe_state(base_url)
    by_id = {product["id"]: product for product in products}
    assert len(by_id) == len(products), "a duplicate product"
    assert set(by_id) == set(step.products) | set(step.archived)
    for product_id in step.archived:
        assert by_id[product_id]["active"] is False, product_id
    for product_id, expected in step.products.items():
        product = by_id[product_id]
        default = prices[product["default_price"]]
        assert (
            product["name"],
            product["description"],
            product["active"],
            default["currency"],
            default["unit_amount"],
        ) == (
            expected.name,
            expected.description,
            expected.active,
            expected.currency,
            expected.unit_amount,
        ), product_id
        assert {k: product["metadata"].get(k) for k in expected.metadata} == expected.metadata
        live = [p["id"] for p in prices.values() if p["product"] == product_id and p["active"]]
        assert live == [default["id"]], f"{product_id}: old prices not archived"


def test_plan_shows_the_mapping_and_each_rows_mapped_values(cms, pipeline_env, emulator):
    cms("postgres", SHOP_EXPORT)
    settings = load_settings()

    summary = plan(settings, RunOptions(), PlanSummary(mapping=settings.catalog.mapping()))
    markdown = summary.to_markdown()

    assert summary.changes["create"] == 4 and summary.changes["invalid"] == 0
    assert "- price <- price_cents (minor units)" in markdown
    assert "- skip: rows where status in (draft)" in markdown
    assert "  - name <- title: 'Wool hat'" in markdown
    assert "  - price <- price_cents: '12.50 EUR'" in markdown
    assert [request for request in emulator.requests()] == []


UNKNOWN_NAME_COLUMN = {"columns": {**SHOP_EXPORT.catalog["columns"], "name": "headline"}}
MISFITS = {
    "unknown column": (
        "postgres",
        UNKNOWN_NAME_COLUMN,
        "lacks the columns headline (catalog.columns.name)",
    ),
    "unknown column on supabase": (
        "supabase",
        UNKNOWN_NAME_COLUMN,
        "lacks the columns headline (catalog.columns.name)",
    ),
    "where that does not parse": (
        "postgres",
        {"where": "kind = = 'physical'"},
        "catalog.where does not work on table",
    ),
    "where that does not parse in sqlite": (
        "sqlite",
        {"where": "kind = = 'x'"},
        "catalog.where does not work on table",
    ),
    "where comparing values of different types": (
        "postgres",
        {"where": "price_cents = 'x'::varchar"},
        "integer = character varying: no function or operator takes these types",
    ),
    "postgrest filter postgrest refuses": (
        "supabase",
        {"where": "kind=zz.physical"},
        "catalog.where does not work on table",
    ),
    "where that is no postgrest filter": (
        "supabase",
        {"where": "kind = 'physical'"},
        "catalog.where must be PostgREST filters",
    ),
    "unknown skip column": (
        "postgres",
        {"skip": {"column": "state", "values": ["draft"]}},
        "lacks the columns state (catalog.skip)",
    ),
    "unknown skip column on supabase": (
        "supabase",
        {"skip": {"column": "state", "values": ["draft"]}},
        "lacks the columns state (catalog.skip)",
    ),
    "price unit": (
        "postgres",
        {"price_unit": "cents"},
        "catalog.price_unit in stripe_sync.yaml must be major or minor",
    ),
}


@pytest.mark.parametrize(("backend", "changed", "message"), MISFITS.values(), ids=MISFITS.keys())
def test_a_mapping_that_does_not_fit_the_table_fails_preflight_naming_key_and_column(
    backend, changed, message, cms, pipeline_env, tmp_path, emulator
):
    catalog = cms(backend, SHOP_EXPORT)
    settings = SHOP_EXPORT.settings(catalog.name, supabase=backend == "supabase")
    settings["catalog"].update(changed)
    (tmp_path / "stripe_sync.yaml").write_text(yaml.safe_dump(settings))

    with pytest.raises((CatalogError, ConfigError), match=re.escape(message)):
        preflight(load_settings())
    assert emulator.requests() == []


def test_preflight_prints_the_mapping_in_effect(cms, pipeline_env, emulator):
    cms("sqlite", SUPABASE_STARTER)

    lines = preflight(load_settings()).lines()

    mapping = next(line for line in lines if line.startswith("mapping: "))
    assert "images <- image_url" in mapping and "currency: usd for every row" in mapping
    assert "deleted: rows where deleted_at is set" in mapping


def test_a_query_on_supabase_is_refused_with_the_view_to_make_instead(cms, pipeline_env, tmp_path):
    catalog = cms("supabase", STOREFRONT_VIEW)
    settings = STOREFRONT_VIEW.settings(catalog.name, supabase=True, use_query=True)
    (tmp_path / "stripe_sync.yaml").write_text(yaml.safe_dump(settings))

    with pytest.raises(CatalogError, match="create a view with the query in Supabase"):
        preflight(load_settings())


def test_the_uis_dry_run_shows_the_mapping_and_the_changed_column(cms, pipeline_env, emulator):
    import dagster as dg

    from stripe_sync.definitions import build_definitions
    from stripe_sync.operations.instance import run_batches

    catalog = cms("postgres", SHOP_EXPORT)
    assert pipeline_env.migrate().succeeded
    catalog.execute("update {t} set title = 'Wool beanie' where sku = 'A-100'")
    requests_before = len(emulator.requests())

    with dg.DagsterInstance.get() as instance:
        [batch] = instance.get_dynamic_partitions("product_batches")
        result = run_batches(
            build_definitions().resolve_job_def("migrate_batches"),
            instance,
            [batch],
            {"ops": {"stripe_products": {"config": {"dry_run": True}}}},
        )

    assert result.success and len(emulator.requests()) == requests_before
    [observation] = [
        event.asset_observation_data.asset_observation
        for event in result.all_events
        if event.event_type_value == "ASSET_OBSERVATION"
    ]
    plan_markdown = observation.metadata["plan"].value
    assert "- price <- price_cents (minor units)" in plan_markdown
    assert "name <- title: 'Wool hat' -> 'Wool beanie'" in plan_markdown
