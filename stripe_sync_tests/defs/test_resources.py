from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from stripe_sync.defs.resources import (
    BatchFrameIOManager,
    CatalogResource,
    StripeResource,
    env_var,
    resources_from_env,
    storage_dir,
)


def test_resource_reprs_never_show_keys_or_database_passwords(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_reprsecret123")
    monkeypatch.setenv(
        "SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOi.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    )
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql://app:hunter2@db.example/catalog")
    resources = {
        "stripe": StripeResource(secret_key=env_var("STRIPE_SECRET_KEY")),
        "catalog": CatalogResource(
            database_url=env_var("CATALOG_DATABASE_URL"),
            supabase_service_role_key=env_var("SUPABASE_SERVICE_ROLE_KEY"),
        ),
    }
    with dg.build_resources(resources) as built:
        shown = " ".join(f"{r!r} {r}" for r in (built.stripe, built.catalog, built.stripe.api()))
    for secret in ("reprsecret123", "hunter2", "c2lnbmF0dXJl"):
        assert secret not in shown


def test_keys_are_wired_as_env_vars_so_dagster_stores_only_their_names(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.setenv("VITE_SUPABASE_URL", "https://x.supabase.co")
    assert env_var("STRIPE_SECRET_KEY") == dg.EnvVar("STRIPE_SECRET_KEY")
    assert env_var("SUPABASE_URL", "VITE_SUPABASE_URL") == dg.EnvVar("VITE_SUPABASE_URL")
    monkeypatch.delenv("VITE_SUPABASE_URL")
    assert env_var("SUPABASE_URL", "VITE_SUPABASE_URL") == ""


def test_the_state_dir_is_dagster_home_unless_stripe_sync_state_dir_moves_it(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STRIPE_SYNC_STATE_DIR", raising=False)
    monkeypatch.delenv("STRIPE_SYNC_BACKUPS_DIR", raising=False)
    assert storage_dir() == tmp_path / "home" / "stripe_sync"
    monkeypatch.setenv("STRIPE_SYNC_STATE_DIR", "  ")  # blank: as if unset
    assert storage_dir() == tmp_path / "home" / "stripe_sync"

    shared = tmp_path / "shared"  # e.g. an NFS mount, the same path on every run worker
    monkeypatch.setenv("STRIPE_SYNC_STATE_DIR", str(shared))
    assert storage_dir() == shared
    resources = resources_from_env(storage_dir())
    assert {
        name: Path(resources[name].base_dir)
        for name in ("batch_frames", "ledger", "checkpoints", "backups")
    } == {
        "batch_frames": shared / "frames",
        "ledger": shared / "ledger",
        "checkpoints": shared / "checkpoints",
        "backups": shared / "backups",
    }


def test_batch_frames_are_stored_per_batch_and_a_missing_batch_fails_instead_of_reading_empty(
    tmp_path,
):
    frames = BatchFrameIOManager(base_dir=str(tmp_path))
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
    with pytest.raises(dg.Failure, match="no data for batch b3"):
        load("b3")
