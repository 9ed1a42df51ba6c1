"""Each private Dagster API of `defs/dagster_compat.py` still does what stripe_sync relies on.

An upgrade of Dagster that moves or changes one fails here, naming it, instead of in a run."""

import contextlib
import os
import signal
from pathlib import Path

import dagster as dg
import pytest

from stripe_sync.defs import dagster_compat as compat
from stripe_sync_tests.conftest import descendants


def test_the_check_target_type_is_what_asset_check_evaluation_takes():
    target = compat.CheckTarget(storage_id=7, run_id="r" * 36, timestamp=1.0)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("stripe_products"),
        check_name="products_match_catalog",
        passed=True,
        target_materialization_data=target,
    )

    assert evaluation.target_materialization_data.storage_id == 7


def test_the_partition_range_tags_run_a_range_in_process(tmp_path):
    partitions = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
    seen = []

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def ranged(context: dg.AssetExecutionContext) -> None:
        seen.extend(context.partition_keys)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize(
            [ranged], instance=instance, tags=compat.partition_range_tags("b", "c")
        )

    assert result.success
    assert seen == ["b", "c"]


def test_interrupts_are_deferred_to_the_end_of_the_body_which_can_ask_whether_one_came():
    finished = []

    with (
        pytest.raises(dg.DagsterExecutionInterruptedError),
        compat.interrupts_deferred() as stop_requested,
    ):
        finished.append(stop_requested())
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl+C is deferred too
        finished.append(stop_requested())

    assert finished == [False, True]


def test_an_instance_is_opened_at_a_home_without_the_environment(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    with compat.instance_at(tmp_path) as instance:
        assert instance.root_directory == str(tmp_path)


def _materialize_runs(instance: dg.DagsterInstance, runs: int) -> None:
    @dg.asset
    def counted() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"n": 1})

    @dg.asset_check(asset=counted)
    def counted_is_fine() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    for _ in range(runs):
        assert dg.materialize([counted, counted_is_fine], instance=instance).success


def _open_database_files(under: Path) -> list[str]:
    """The database files under `under` this process holds open (other tests' instances in
    the same worker may hold theirs)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, now closed
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if link.endswith(".db") and link.startswith(f"{under}/")]


def test_an_instance_on_default_storage_keeps_connections_that_plain_dagster_reads(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    with compat.instance_at(tmp_path) as pooled:
        assert isinstance(pooled.event_log_storage, compat.PooledSqliteEventLogStorage)
        _materialize_runs(pooled, 6)
        # one engine a run would keep six run databases open
        assert len(set(_open_database_files(tmp_path))) <= 4
        with dg.DagsterInstance.from_config(str(tmp_path)) as plain:
            _materialize_runs(plain, 1)  # written beside the pooled instance's connections
            assert not isinstance(plain.event_log_storage, compat.PooledSqliteEventLogStorage)
            assert len(plain.fetch_materializations(dg.AssetKey("counted"), limit=10).records) == 7
        assert len(pooled.fetch_materializations(dg.AssetKey("counted"), limit=10).records) == 7
        assert pooled.event_log_storage.supports_asset_checks


def test_an_instance_with_storage_of_its_own_is_opened_as_configured(tmp_path):
    storage = f"storage:\n  sqlite:\n    base_dir: {tmp_path / 'own'}\n"
    (tmp_path / "dagster.yaml").write_text(storage)

    with compat.instance_at(tmp_path) as instance:
        _materialize_runs(instance, 1)
        assert not isinstance(instance.event_log_storage, compat.PooledSqliteEventLogStorage)
        assert (tmp_path / "own" / "history" / "runs" / "index.db").exists()


def test_the_compute_logs_helper_processes_start_deaf_to_a_ctrl_c(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    with compat.instance_at(tmp_path) as instance, open(tmp_path / "out", "w") as console:
        manager = instance.compute_log_manager
        assert isinstance(manager, compat.QuietComputeLogManager)
        with contextlib.redirect_stdout(console), manager.capture_logs(["run", "steps"]):
            masks = {
                args: _blocked_signals(pid)
                for pid, args in descendants(os.getpid()).items()
                if "tail" in args or "watch_orphans" in args  # not `ps`, gone by now
            }

    assert any("watch_orphans" in args for args in masks), masks
    assert all(signal.SIGINT in blocked for blocked in masks.values()), masks


def _blocked_signals(pid: int) -> set[signal.Signals]:
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
    )
    return {s for s in signal.Signals if mask & (1 << (s - 1))}


def test_a_step_can_tag_its_own_run(tmp_path):
    @dg.op
    def tags_itself(context: dg.OpExecutionContext) -> None:
        compat.tag_run(context.instance, context.run_id, {"stripe_sync/outcome": "ok"})

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = (
            dg.GraphDefinition("tagging", node_defs=[tags_itself])
            .to_job()
            .execute_in_process(instance=instance)
        )
        tags = instance.get_run_by_id(result.run_id).tags

    assert tags["stripe_sync/outcome"] == "ok"


def test_a_pool_gets_the_default_limit_once_and_keeps_a_limit_of_its_own(tmp_path):
    overrides = {"concurrency": {"pools": {"default_limit": 2}}}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        compat.pool_limit_set(instance, "writers")
        instance.event_log_storage.set_concurrency_slots("own", 5)
        compat.pool_limit_set(instance, "own")

        storage = instance.event_log_storage
        assert storage.get_concurrency_info("writers").slot_count == 2
        assert storage.get_concurrency_info("own").slot_count == 5
