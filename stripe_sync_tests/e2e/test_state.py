"""The sync state lives in a database: no local file, lost or corrupted, stops a run or costs a
Stripe request, a new Dagster home costs no write, and a CMS table needs no new columns."""

from __future__ import annotations

import json
import pathlib
import sqlite3
from contextlib import closing
from dataclasses import asdict

import pytest
from psycopg import sql

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.operations.demo import seed_sample_catalog
from stripe_sync_tests.conftest import stripe_state, write_requests
from stripe_sync_tests.support.postgrest import grant_like_supabase, service_role_key
from stripe_sync_tests.support.sample_catalog import assert_in_sync, sample_products

PRODUCTS = 200


def reads(log: list[dict]) -> list[dict]:
    return [entry for entry in log if entry["method"] == "GET"]


@pytest.fixture
def migrated(products_table, pipeline_env, emulator):
    """A PostgreSQL catalog of 200 products, migrated in batches of 50."""
    source = {row["id"]: row for row in sample_products(PRODUCTS)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="50")
    assert pipeline_env.migrate().succeeded
    return source, table


def test_a_new_dagster_home_costs_no_stripe_write_and_one_read_per_hundred_products(
    migrated, pipeline_env, emulator, tmp_path
):
    source, table = migrated
    before = len(emulator.requests())
    pipeline_env.set(DAGSTER_HOME=str(tmp_path / "another_home"))  # another machine

    again = pipeline_env.migrate()

    log = emulator.requests()[before:]
    assert again.succeeded
    assert write_requests(log) == []
    assert len(reads(log)) <= PRODUCTS // 100 + 5
    assert again.report["counts"]["unchanged"] == PRODUCTS
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))


def test_with_every_local_file_truncated_a_run_makes_only_the_writes_the_catalog_needs(
    pipeline_env, emulator, tmp_path, caplog
):
    catalog_url = seed_sample_catalog(tmp_path / "catalog.db", 60)
    pipeline_env.set(CATALOG_DATABASE_URL=catalog_url, STRIPE_SYNC_BATCH_SIZE="20")
    assert pipeline_env.migrate().report["counts"]["created"] == 55  # 5 rows are broken
    local = [
        path
        for folder in (pipeline_env.dagster_home / "stripe_sync", pipeline_env.reports_dir)
        for path in folder.rglob("*")
        if path.is_file()
    ]
    assert any(path.suffix == ".sqlite" for path in local)  # the throttle's file, at least
    for path in local:
        path.write_bytes(b"\x00garbage")
    with closing(sqlite3.connect(tmp_path / "catalog.db")) as connection, connection:
        connection.execute("update products set name = 'Renamed' where id = 'sku-00001'")
    before = len(emulator.requests())

    again = pipeline_env.migrate()

    assert again.succeeded, again.report_markdown
    assert [(e["method"], e["path"]) for e in write_requests(emulator.requests()[before:])] == [
        ("POST", "/v1/products/cms_sku-00001")
    ]
    assert again.report["counts"]["updated"] == 1
    throttle_file = next(path for path in local if path.suffix == ".sqlite")
    assert f"the throttle file {throttle_file} is unreadable" in caplog.text


@pytest.mark.parametrize("kind", ["postgres", "supabase"])
def test_a_table_without_write_back_columns_migrates_untouched_and_a_rerun_writes_nothing(
    kind, request, products_table, catalog_connection, pipeline_env, emulator
):
    source = {row["id"]: row for row in sample_products(60)}
    if kind == "postgres":
        table = products_table(list(source.values()), write_back=False)
        pipeline_env.use_catalog(table)
        name = table.name
    else:
        request.getfixturevalue("apply_state_migration")
        name = "products"
        table = products_table(list(source.values()), write_back=False, name=name)
        grant_like_supabase(catalog_connection, name)
        pipeline_env.set(
            SUPABASE_URL=request.getfixturevalue("supabase_url"),
            SUPABASE_SERVICE_ROLE_KEY=service_role_key(request.getfixturevalue("jwt_secret")),
        )
    cms_rows = cms_text(catalog_connection, name)
    before = cms_rows()

    first = pipeline_env.migrate()
    created = len(emulator.requests())
    second = pipeline_env.migrate()

    assert first.succeeded and first.report["counts"]["created"] == 60
    assert cms_rows() == before  # byte for byte: no column, no row changed
    assert write_requests(emulator.requests()[created:]) == []
    assert second.report["counts"]["unchanged"] == 60
    products, _prices = stripe_state(emulator.base_url)
    assert sorted(p["metadata"]["cms_id"] for p in products) == sorted(source)


def test_state_kept_in_files_by_an_earlier_version_moves_to_the_database_without_a_write(
    migrated, pipeline_env, emulator, catalog_connection
):
    _source, table = migrated
    state_dir = pipeline_env.dagster_home / "stripe_sync"
    export_as_files(table, state_dir)
    for state_table in ("stripe_sync_state", "stripe_sync_ledger", "stripe_sync_backups"):
        catalog_connection.execute(
            sql.SQL("delete from {} where namespace = %s").format(sql.Identifier(state_table)),
            [table.name],
        )
    before = len(emulator.requests())

    again = pipeline_env.migrate()

    log = emulator.requests()[before:]
    assert again.succeeded
    assert write_requests(log) == []
    assert len(reads(log)) <= PRODUCTS // 100 + 5  # the checkpoints were trusted
    assert again.report["counts"]["unchanged"] == PRODUCTS
    assert (state_dir / "checkpoints.imported").is_dir() and not (
        state_dir / "checkpoints"
    ).exists()
    assert "imported the state kept in files by an earlier version: 200 checkpoints" in "\n".join(
        pipeline_env.say_lines
    )


def cms_text(connection, table: str):
    """Every column of every row of a PostgreSQL table as PostgreSQL prints it."""
    query = sql.SQL("select t::text from {} t order by id").format(sql.Identifier(table))
    return lambda: connection.execute(query).fetchall()


def export_as_files(table, state_dir: pathlib.Path) -> None:
    """The table's state as the file stores of earlier versions wrote it."""
    catalog = open_catalog(
        database_url=table.database_url, supabase_url=None, supabase_key=None, table=table.name
    )
    state = open_state(catalog)
    for batch in sorted(set(state.memberships().values())):
        path = state_dir / "checkpoints" / f"{batch}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoints = state.checkpoints(batch)
        path.write_text(json.dumps({i: asdict(c) for i, c in checkpoints.items()}, default=str))
        for step in ("stripe_products", "stripe_prices"):
            record = state.outcomes(step, batch)
            if record is not None:
                path = state_dir / "ledger" / step / f"{batch}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, default=str))
    catalog.close()


def test_a_run_whose_report_fails_prints_no_older_report_in_its_place(migrated, pipeline_env):
    pipeline_env.reports_dir.rename(pipeline_env.reports_dir.with_name("old_reports"))
    pipeline_env.reports_dir.write_text("a file where the reports folder was")

    again = pipeline_env.migrate()

    assert not again.succeeded and again.failed_batches == []
    assert again.report_markdown.startswith("No report: ")
    assert "# Migration report" not in again.report_markdown
