"""The resources: thin handles on what `stripe_sync.factory` builds, holding only secrets."""

import dagster as dg
import pandas as pd
import pytest

from stripe_sync.defs.resources import (
    BatchFrameIOManager,
    CatalogResource,
    SecretsResource,
    build_resources,
)
from stripe_sync.settings.loader import load_settings
from stripe_sync.settings.model import secret_kind, setting_fields
from stripe_sync_tests.support.tables import create_sqlite_products


def test_resource_reprs_never_show_keys_or_database_passwords(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_reprsecret123")
    monkeypatch.setenv(
        "SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOi.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    )
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql://app:hunter2@db.example/catalog")
    monkeypatch.setenv("STRIPE_SYNC_THROTTLE_URL", "memory://")  # db.example is not reachable
    with dg.build_resources(build_resources(load_settings())) as built:
        shown = " ".join(f"{r!r} {r}" for r in (built.stripe, built.catalog, built.stripe.api()))
    for secret in ("reprsecret123", "hunter2", "c2lnbmF0dXJl"):
        assert secret not in shown


def test_keys_are_wired_as_env_vars_so_dagster_stores_only_their_names(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "eyJx.eyJy.z")
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.setenv("VITE_SUPABASE_URL", "https://x.supabase.co")
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql://app:hunter2@db.example/catalog")
    resources = build_resources(load_settings())
    secrets = resources["secrets"]
    assert secrets.stripe_secret_key == dg.EnvVar("STRIPE_SECRET_KEY")
    assert secrets.catalog_supabase_service_role_key == dg.EnvVar("SUPABASE_SERVICE_ROLE_KEY")
    assert secrets.catalog_database_url == dg.EnvVar("CATALOG_DATABASE_URL")
    # the original's name
    assert resources["settings"].catalog.supabase_url == "https://x.supabase.co"
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    assert build_resources(load_settings())["secrets"].stripe_secret_key == ""


def test_the_only_dagster_config_of_the_resources_is_the_secrets_of_the_settings():
    celery = {"execution.celery_broker", "execution.celery_backend"}  # the executor's own
    configured = {
        name: set(type(resource).model_fields) - {"settings", "secrets", "catalog"}
        for name, resource in build_resources(load_settings(environ={})).items()
        if isinstance(resource, dg.ConfigurableResource | dg.ConfigurableIOManager)
    }

    assert configured.pop("secrets") == {
        key.replace(".", "_", 1) for key, info in setting_fields() if secret_kind(info)
    } - {key.replace(".", "_", 1) for key in celery}
    assert configured == {"catalog": set(), "stripe": set(), "batch_frames": set()}


def test_a_run_builds_from_the_secrets_dagster_resolved(monkeypatch, tmp_path):
    settings = load_settings(environ={"STRIPE_SECRET_KEY": "sk_test_loaded"}, cwd=tmp_path)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_resolved_at_run_time")

    with dg.build_resources(build_resources(settings)) as built:
        resolved = built.catalog.resolved_settings()

    assert resolved.stripe.secret_key.value == "sk_test_resolved_at_run_time"
    assert resolved.stripe.secret_key.variable == "STRIPE_SECRET_KEY"
    assert resolved.source("stripe.secret_key") == settings.source("stripe.secret_key")


def test_the_state_dir_is_dagster_home_unless_stripe_sync_state_dir_moves_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STRIPE_SYNC_STATE_DIR", raising=False)
    assert load_settings().state_dir == tmp_path / "home" / "stripe_sync"
    monkeypatch.setenv("STRIPE_SYNC_STATE_DIR", "  ")  # blank: as if unset
    assert load_settings().state_dir == tmp_path / "home" / "stripe_sync"
    monkeypatch.setenv("STRIPE_SYNC_STATE_DIR", str(tmp_path / "local"))
    assert load_settings().state_dir == tmp_path / "local"


def test_batch_frames_are_stored_per_batch_in_the_state_database_and_a_missing_batch_fails(
    tmp_path,
):
    create_sqlite_products(tmp_path / "catalog.db", "text", 3)
    frames = BatchFrameIOManager(catalog=sqlite_catalog(tmp_path / "catalog.db"))
    key = dg.AssetKey("validated_products")
    batches = dg.StaticPartitionsDefinition(["b1", "b2", "b3"])
    both = pd.DataFrame({"batch": ["b1", "b2", "b2"], "id": ["a", "b", "c"]})
    for batch in ("b1", "b2"):
        context = dg.build_output_context(
            asset_key=key, partition_key=batch, asset_partitions_def=batches
        )
        frames.handle_output(context, both)

    def load(batch: str) -> pd.DataFrame:
        context = dg.build_input_context(
            asset_key=key, partition_key=batch, asset_partitions_def=batches
        )
        return frames.load_input(context)

    assert list(load("b2")["id"]) == ["b", "c"]
    assert list(tmp_path.iterdir()) == [tmp_path / "catalog.db"]  # no file of its own
    with pytest.raises(dg.Failure, match="no data for batch b3 in table stripe_sync_state"):
        load("b3")


def test_a_step_reads_the_frames_its_run_wrote_in_this_process_from_memory(tmp_path):
    create_sqlite_products(tmp_path / "catalog.db", "text", 3)
    catalog = sqlite_catalog(tmp_path / "catalog.db")
    this_run, other_run = BatchFrameIOManager(catalog=catalog), BatchFrameIOManager(catalog=catalog)
    key = dg.AssetKey("validated_products")
    batches = dg.StaticPartitionsDefinition(["b1"])

    def output(run_id: str) -> dg.OutputContext:
        return dg.build_output_context(
            asset_key=key, partition_key="b1", asset_partitions_def=batches, run_id=run_id
        )

    def load(manager: BatchFrameIOManager, run_id: str) -> list[str]:
        context = dg.build_input_context(
            asset_key=key,
            partition_key="b1",
            asset_partitions_def=batches,
            upstream_output=output(run_id),
        )
        return list(manager.load_input(context)["id"])

    this_run.handle_output(output("r1"), pd.DataFrame({"batch": ["b1"], "id": ["mine"]}))
    # another run, elsewhere, stores the batch again meanwhile
    other_run.handle_output(output("r2"), pd.DataFrame({"batch": ["b1"], "id": ["theirs"]}))

    assert load(this_run, "r1") == ["mine"]  # what its own run made, not a newer run's
    assert load(this_run, "an earlier run") == ["theirs"]  # not of this run: the database's


def sqlite_catalog(path) -> CatalogResource:
    """The catalog resource of a SQLite catalog, its URL given as Dagster would resolve it."""
    url = f"sqlite:///{path}"
    return CatalogResource(
        settings=load_settings(environ={"CATALOG_DATABASE_URL": url}, cwd=path.parent),
        secrets=SecretsResource(catalog_database_url=url),
    )
