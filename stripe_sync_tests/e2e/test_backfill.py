"""Backfilling "failed and missing" batches as the Dagster UI does it, through Dagster's own
machinery: the partition statuses and the launchPartitionBackfill mutation of Dagster's
GraphQL API (what the UI calls) over a workspace loaded from this repository's definitions,
then the backfill daemon's own iteration launching the runs, on a real instance against a
PostgreSQL catalog and the Stripe emulator."""

from __future__ import annotations

import logging
import textwrap

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
)
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from stripe_sync.definitions import build_definitions
from stripe_sync_tests.conftest import BATCH_ASSETS, stripe_state

# Runs launched by the backfill execute in this process, one after the other.
INSTANCE_YAML = """
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_launcher:
  module: dagster._core.launcher.sync_in_memory_run_launcher
  class: SyncInMemoryRunLauncher
"""
PARTITION_STATUSES = """
query ($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { failedPartitions unmaterializedPartitions }
      }
    }
  }
}
"""


def test_a_backfill_of_failed_and_missing_batches_runs_exactly_those_ten_to_a_run(
    products_table, pipeline_env, emulator, tmp_path
):
    (pipeline_env.dagster_home / "dagster.yaml").write_text(INSTANCE_YAML)
    table = products_table(
        [{"id": f"sku-{n:05d}", "name": f"Product {n}", "price": "12.50"} for n in range(40)]
    )
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="2")
    defs = build_definitions()
    migrate = defs.resolve_job_def("migrate_batches")
    with dg.DagsterInstance.get() as instance:
        assert defs.resolve_job_def("register_batches_job").execute_in_process(instance=instance)
        keys = instance.get_dynamic_partitions("product_batches")
        assert len(keys) == 20
        # Batches 0-4 synced; batch 5 failed (Stripe refused the key); 6-19 never ran.
        first = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[4]}
        assert migrate.execute_in_process(instance=instance, tags=first).success
        emulator.configure(api_keys=["sk_test_someone_else"])
        failed = migrate.execute_in_process(
            instance=instance, partition_key=keys[5], raise_on_error=False
        )
        assert not failed.success
        emulator.configure(api_keys=None)

        with code_location(instance, tmp_path) as workspace:
            wanted = failed_and_missing(workspace.create_request_context())
            assert wanted == set(keys[5:])
            launched = execute_dagster_graphql(
                workspace.create_request_context(),
                LAUNCH_PARTITION_BACKFILL_MUTATION,
                {
                    "backfillParams": {
                        "partitionNames": [key for key in keys if key in wanted],
                        "assetSelection": [{"path": [asset]} for asset in BATCH_ASSETS],
                    }
                },
            ).data["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched["backfillId"]
            for _ in range(10):
                list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
                if instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED:
                    break

        assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
        runs = instance.get_runs(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        ranges = sorted(
            (run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG])
            for run in runs
        )
        assert ranges == [(keys[5], keys[14]), (keys[15], keys[19])]  # 15 batches, 10 a run
        assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}
        for asset in BATCH_ASSETS:
            statuses = instance.get_status_by_partition(
                dg.AssetKey(asset), keys, defs.resolve_assets_def(asset).partitions_def
            )
            assert set(statuses.values()) == {dg.AssetPartitionStatus.MATERIALIZED}, asset
    products, _ = stripe_state(pipeline_env.emulator_url)
    assert len(products) == 40
    assert {row["sync_status"] for row in table.rows().values()} == {"synced"}


def failed_and_missing(context) -> set[str]:
    """The batches the UI's "failed and missing" picks: failed or never materialized, for
    any of the batch assets (from the partition statuses the UI reads)."""
    wanted = set()
    for asset in BATCH_ASSETS:
        node = execute_dagster_graphql(context, PARTITION_STATUSES, {"assetKey": {"path": [asset]}})
        statuses = node.data["assetNodeOrError"]["assetPartitionStatuses"]
        wanted |= {*statuses["failedPartitions"], *statuses["unmaterializedPartitions"]}
    return wanted


def code_location(instance: dg.DagsterInstance, tmp_path):
    """A workspace with this repository's definitions, loaded as `dagster dev` loads them
    (from a file, so they are built from the test's environment)."""
    path = tmp_path / "stripe_sync_location.py"
    path.write_text(
        textwrap.dedent(
            """
            from stripe_sync.definitions import build_definitions

            defs = build_definitions()
            """
        )
    )
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(path), attribute="defs"),
        location_name="stripe_sync",
    )
    return create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance)
