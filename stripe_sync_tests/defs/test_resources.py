import dagster as dg
import pandas as pd
import pytest

from stripe_sync.core.mapping import FieldMapping, ValueRule
from stripe_sync.defs.resources import (
    BatchFrameIOManager,
    CatalogMapping,
    CatalogResource,
    build_resources,
)
from stripe_sync.settings.loader import load_settings
from stripe_sync_tests.backends.tables import create_sqlite_products


def test_resource_reprs_never_show_keys_or_database_passwords(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_reprsecret123")
    monkeypatch.setenv(
        "SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOi.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    )
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql://app:hunter2@db.example/catalog")
    monkeypatch.setenv("STRIPE_SYNC_THROTTLE_URL", "memory://")  # db.example is not reachable
    configured = build_resources(load_settings())
    resources = {name: configured[name] for name in ("stripe", "catalog")}
    with dg.build_resources(resources) as built:
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
    assert resources["stripe"].secret_key == dg.EnvVar("STRIPE_SECRET_KEY")
    assert resources["catalog"].supabase_service_role_key == dg.EnvVar("SUPABASE_SERVICE_ROLE_KEY")
    assert resources["catalog"].database_url == dg.EnvVar("CATALOG_DATABASE_URL")
    assert resources["catalog"].supabase_url == "https://x.supabase.co"  # the original's name
    monkeypatch.delenv("STRIPE_SECRET_KEY")
    assert build_resources(load_settings())["stripe"].secret_key == ""


def test_the_state_dir_is_dagster_home_unless_stripe_sync_state_dir_moves_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STRIPE_SYNC_STATE_DIR", raising=False)
    assert load_settings().state_dir == tmp_path / "home" / "stripe_sync"
    monkeypatch.setenv("STRIPE_SYNC_STATE_DIR", "  ")  # blank: as if unset
    assert load_settings().state_dir == tmp_path / "home" / "stripe_sync"
    monkeypatch.setenv("STRIPE_SYNC_STATE_DIR", str(tmp_path / "local"))
    assert load_settings().state_dir == tmp_path / "local"


@pytest.mark.parametrize(
    ("variables", "throttle"),
    [
        ({}, ""),  # a SQLite file in the state dir: one machine
        ({"CATALOG_DATABASE_URL": "sqlite:///catalog.db"}, ""),
        ({"CATALOG_DATABASE_URL": "postgresql://cms@db/cms"}, "postgresql://cms@db/cms"),
        ({"STRIPE_SYNC_STATE_URL": "postgresql://state@db/state"}, "postgresql://state@db/state"),
        (
            {
                "CATALOG_DATABASE_URL": "postgresql://cms@db/cms",
                "STRIPE_SYNC_STATE_URL": "sqlite:///s.db",
            },
            "",
        ),
        ({"STRIPE_SYNC_THROTTLE_URL": "redis://cache:6379/0"}, "redis://cache:6379/0"),
    ],
)
def test_the_throttle_follows_the_state_database_when_it_is_postgresql(
    tmp_path, variables, throttle
):
    settings = load_settings(environ=variables, cwd=tmp_path)

    configured = build_resources(settings)["stripe"].throttle_url

    assert getattr(configured, "env_var_name", configured) == (
        next((name for name, value in variables.items() if value == throttle), "")
    )


def test_batch_frames_are_stored_per_batch_in_the_state_database_and_a_missing_batch_fails(
    tmp_path,
):
    create_sqlite_products(tmp_path / "catalog.db", "text", 3)
    frames = BatchFrameIOManager(
        catalog=CatalogResource(database_url=f"sqlite:///{tmp_path / 'catalog.db'}")
    )
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
    catalog = CatalogResource(database_url=f"sqlite:///{tmp_path / 'catalog.db'}")
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


def test_a_rule_with_boolean_values_holds_alike_in_a_run_as_in_the_settings():
    mapping = FieldMapping(active=ValueRule("is_live", (True,)))

    in_run = CatalogMapping.of(mapping).field_mapping()

    assert in_run.shaped({"active": True})["active"] is True
    assert in_run.shaped({"active": False})["active"] is False
