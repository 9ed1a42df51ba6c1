"""The whole code location loads, with no environment at all, and is what review expects:
a change to an asset key, a check, a job, a sensor, a schedule or a resource key shows here."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import dagster as dg
import pytest

from stripe_sync.definitions import LAYER_TAG, SETTINGS_METADATA, build_definitions, defs
from stripe_sync.settings.loader import load_settings
from stripe_sync_tests.conftest import console_script

ROOT = pathlib.Path(__file__).parents[1]

SNAPSHOT = {
    "assets": [
        "migration_report",
        "stripe_prices",
        "stripe_products",
        "supabase_products",
        "validated_products",
    ],
    "asset_checks": [
        "stripe_prices:default_prices_match_catalog",
        "stripe_products:products_match_catalog",
        "validated_products:batch_structure",
        "validated_products:invalid_share",
    ],
    "jobs": ["migrate_batches", "register_batches_job", "report", "rollback", "verify_batches"],
    "sensors": ["catalog_changes", "failed_batch_retry", "migration_report_automation"],
    "schedules": ["reconcile_batches"],
    "resources": ["batch_frames", "catalog", "progress", "secrets", "settings", "stripe"],
    "asset_groups": ["stripe_sync"],
}


def snapshot(definitions: dg.Definitions) -> dict[str, list[str]]:
    repository = definitions.get_repository_def()
    graph = repository.asset_graph
    return {
        "assets": sorted(key.to_user_string() for key in graph.get_all_asset_keys()),
        "asset_checks": sorted(
            f"{key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys
        ),
        "jobs": sorted(
            job.name for job in repository.get_all_jobs() if not job.name.startswith("__")
        ),
        "sensors": sorted(sensor.name for sensor in repository.sensor_defs),
        "schedules": sorted(schedule.name for schedule in repository.schedule_defs),
        "resources": sorted(definitions.resources),
        "asset_groups": sorted({spec.group_name for spec in definitions.resolve_all_asset_specs()}),
    }


def asset_specs(environ: dict[str, str], cwd: pathlib.Path) -> dict[str, dg.AssetSpec]:
    """The code location's asset specs, by asset name, built from the settings of `environ`."""
    definitions = build_definitions(load_settings(environ=environ, cwd=cwd))
    return {spec.key.to_user_string(): spec for spec in definitions.resolve_all_asset_specs()}


def test_the_code_location_is_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    assert snapshot(defs()) == SNAPSHOT


def test_every_asset_is_in_the_pipelines_group_with_the_owners_set_and_its_layer(tmp_path):
    specs = asset_specs({"STRIPE_SYNC_ASSET_OWNERS": "team:payments, ana@example.com"}, tmp_path)

    assert {name: (spec.group_name, spec.tags[LAYER_TAG]) for name, spec in specs.items()} == {
        "supabase_products": ("stripe_sync", "catalog"),
        "validated_products": ("stripe_sync", "validation"),
        "stripe_products": ("stripe_sync", "stripe"),
        "stripe_prices": ("stripe_sync", "stripe"),
        "migration_report": ("stripe_sync", "report"),
    }
    assert {tuple(spec.owners) for spec in specs.values()} == {("team:payments", "ana@example.com")}


@pytest.mark.parametrize(
    ("environ", "kinds"),
    [
        ({"CATALOG_DATABASE_URL": "postgresql://sync@db.example/cms"}, {"postgres"}),
        ({"CATALOG_DATABASE_URL": "postgres://sync@db.example/cms"}, {"postgres"}),
        ({"CATALOG_DATABASE_URL": "postgresql+psycopg://sync@db.example/cms"}, {"postgres"}),
        ({"CATALOG_DATABASE_URL": "sqlite:///catalog.db"}, {"sqlite"}),
        (
            {"SUPABASE_URL": "https://abc.supabase.co", "SUPABASE_SERVICE_ROLE_KEY": "key-0123"},
            {"supabase"},
        ),
        (  # a database URL wins over Supabase, as the catalog it opens does
            {
                "CATALOG_DATABASE_URL": "sqlite:///catalog.db",
                "SUPABASE_URL": "https://abc.supabase.co",
            },
            {"sqlite"},
        ),
        ({}, set()),  # no catalog configured: no kind rather than a wrong one
    ],
)
def test_the_asset_reading_the_catalog_has_the_catalogs_kind(tmp_path, environ, kinds):
    specs = asset_specs(environ, tmp_path)

    assert specs["supabase_products"].kinds == kinds
    assert {name: spec.kinds for name, spec in specs.items() if name != "supabase_products"} == {
        "validated_products": {"pandas"},
        "stripe_products": {"stripe"},
        "stripe_prices": {"stripe"},
        "migration_report": {"stripe"},
    }


def test_the_code_location_loads_with_no_environment_at_all(tmp_path):
    code = (
        "import stripe_sync.definitions as d;"
        "r = d.defs().get_repository_def();"
        "print(len(list(r.asset_graph.get_all_asset_keys())))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        env={},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )

    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "5"


def test_secrets_reach_dagster_as_env_var_names_never_values(tmp_path):
    settings = load_settings(
        environ={"STRIPE_SECRET_KEY": "sk_test_definitions_0123456789"}, cwd=tmp_path
    )

    secrets = build_definitions(settings).resources["secrets"]

    assert secrets.stripe_secret_key == dg.EnvVar("STRIPE_SECRET_KEY")


def test_every_asset_shows_the_effective_settings_with_secrets_masked(tmp_path):
    settings = load_settings(
        environ={
            "STRIPE_SECRET_KEY": "sk_test_definitions_0123456789",
            "CATALOG_DATABASE_URL": "postgresql://app:hunter2@db.example/catalog",
            "STRIPE_SYNC_BATCH_SIZE": "250",
        },
        cwd=tmp_path,
    )

    specs = build_definitions(settings).resolve_all_asset_specs()

    for spec in specs:
        shown = spec.metadata[SETTINGS_METADATA].value
        assert "| sync.batch_size | 250 | env STRIPE_SYNC_BATCH_SIZE |" in shown
        assert "postgresql://app:***@db.example/catalog" in shown
        assert "hunter2" not in shown and "0123456789" not in shown


def test_dg_lists_the_project_from_the_repository_root():
    env = {name: value for name, value in os.environ.items() if name != "DAGSTER_HOME"}
    listed = subprocess.run(
        [console_script("dg"), "list", "defs", "--json"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert sorted(asset["asset_key"] for asset in found["assets"]) == SNAPSHOT["assets"]
    assert sorted(check["key"] for check in found["asset_checks"]) == SNAPSHOT["asset_checks"]
    assert sorted(job["name"] for job in found["jobs"]) == SNAPSHOT["jobs"]
    assert sorted(resource["name"] for resource in found["resources"]) == SNAPSHOT["resources"]
    assert sorted(sensor["name"] for sensor in found["sensors"]) == SNAPSHOT["sensors"]
    assert sorted(schedule["name"] for schedule in found["schedules"]) == SNAPSHOT["schedules"]
    assert sorted({asset["group_name"] for asset in found["assets"]}) == SNAPSHOT["asset_groups"]


def test_dg_check_defs_passes():
    checked = subprocess.run(
        [console_script("dg"), "check", "defs"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
