"""The production instance (deploy/dagster.yaml) as it ships: run storage in PostgreSQL, runs
queued and launched by the daemon, the Stripe writers pooled, and two runs on different batches
writing at once through one throttle shared in PostgreSQL (at its default share, 0.8 of
Stripe's limit), against the Stripe emulator limited as Stripe's test mode is (25/s).

The runs are launched as an operator launches them (`dagster job launch`, which only queues
them here), then a `dagster-daemon run` subprocess dequeues both and launches each in a run
worker process of its own (DefaultRunLauncher). Run with `pytest -s` for the figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import redis
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster_postgres import PostgresRunStorage  # never skipped: missing, the test fails
from sqlalchemy.engine import make_url

from stripe_sync.definitions import build_definitions
from stripe_sync.defs.dagster_compat import partition_range_tags
from stripe_sync.emulator import EmulatorConfig, EmulatorControl, run_emulator
from stripe_sync_tests.conftest import (
    console_script,
    new_database,
    stop_process_group,
    stripe_state,
    stripe_sync_script,
)
from stripe_sync_tests.support.rate_windows import max_in_window
from stripe_sync_tests.support.sample_catalog import assert_in_sync, sample_products

INSTANCE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
PRODUCTS_PER_BATCH = 100  # alone, a run would send these in well under a second
# The emulator's limit, Stripe's in test mode. The throttle runs at its production default,
# 0.8 of it (20/s shared by both runs); the margin absorbs arrival jitter on a loaded machine.
RATE_LIMIT = 25
BUDGET = 0.8 * RATE_LIMIT
WORKSPACE_YAML = """
load_from:
  - python_module:
      module_name: stripe_sync.definitions
      location_name: stripe_sync
"""
# Each run in its own run worker process, its steps in that process: production's default
# (a process per step) only adds ~1.5 s of start-up per step and jitter between the runs.
IN_PROCESS = json.dumps({"execution": {"config": {"in_process": {}}}})
FINISHED = {
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
}
PRODUCT_ID = re.compile(r"-cms_sku-(\d{5})-")  # in a products.create idempotency key


def use_instance_database(pipeline_env, url: str) -> None:
    """deploy/dagster.yaml's variables, pointing at the database `url`."""
    database = make_url(url)
    pipeline_env.set(
        DAGSTER_PG_HOST=database.host or "localhost",
        DAGSTER_PG_PORT=str(database.port or 5432),
        DAGSTER_PG_USERNAME=database.username or "postgres",
        DAGSTER_PG_PASSWORD=database.password or "",
        DAGSTER_PG_DB=database.database,
    )


@pytest.fixture
def instance_database_url(postgres_url: str) -> Iterator[str]:
    """A database of its own for the Dagster instance's storage, dropped after."""
    with new_database(postgres_url, "stripe_sync_instance") as url:
        yield url


def test_two_runs_on_a_postgres_instance_share_one_stripe_budget_without_duplicates(
    products_table, pipeline_env, fresh_database_url, instance_database_url, tmp_path
):
    home = pipeline_env.dagster_home
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML)
    source = {row["id"]: row for row in sample_products(2 * PRODUCTS_PER_BATCH)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    secret_key = f"sk_test_production_{secrets.token_hex(8)}"  # its own throttle namespace
    state_dir = tmp_path / "local_files"  # never shared: nothing a run depends on is there
    use_instance_database(pipeline_env, instance_database_url)
    pipeline_env.set(
        STRIPE_SECRET_KEY=secret_key,
        STRIPE_SYNC_THROTTLE_URL=fresh_database_url,
        STRIPE_SYNC_BATCH_SIZE=str(PRODUCTS_PER_BATCH),
        STRIPE_SYNC_STATE_DIR=str(state_dir),
    )

    with (
        run_emulator(EmulatorConfig(rate_limit=RATE_LIMIT, latency_ms=20)) as base_url,
        dg.DagsterInstance.get() as instance,
    ):
        pipeline_env.set(STRIPE_API_BASE=base_url)
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert (
            build_definitions()
            .resolve_job_def("register_batches_job")
            .execute_in_process(instance=instance)
        )
        batches = instance.get_dynamic_partitions("product_batches")
        assert len(batches) == 2

        # Queued, not started: the QueuedRunCoordinator of deploy/dagster.yaml holds them.
        launches = [
            subprocess.Popen(
                [
                    *(console_script("dagster"), "job", "launch", "-w", str(workspace)),
                    *("-j", "migrate_batches", "--config-json", IN_PROCESS),
                    *("--tags", json.dumps({PARTITION_NAME_TAG: batch})),
                ],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for batch in batches
        ]
        for launch in launches:
            out, _ = launch.communicate(timeout=60)
            assert launch.returncode == 0, out
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="migrate_batches"))
        assert {run.status for run in runs} == {dg.DagsterRunStatus.QUEUED}
        assert sorted(run.tags[PARTITION_NAME_TAG] for run in runs) == sorted(batches)

        daemon_log = tmp_path / "daemon.log"
        with open(daemon_log, "wb") as daemon_out:
            daemon = subprocess.Popen(
                [console_script("dagster-daemon"), "run", "-w", str(workspace)],
                cwd=tmp_path,
                stdout=daemon_out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 120
                while not all(
                    instance.get_run_by_id(run.run_id).status in FINISHED for run in runs
                ):
                    assert daemon.poll() is None, daemon_log.read_text()
                    assert time.monotonic() < deadline, daemon_log.read_text()[-5000:]
                    time.sleep(0.5)
            finally:
                stop_process_group(daemon)
        records = [instance.get_run_record_by_id(run.run_id) for run in runs]
        failures = [failure_messages(instance, run.run_id) for run in runs]
        pool = instance.event_log_storage.get_concurrency_info("stripe_writes")
        log = EmulatorControl(base_url).requests()
        products, prices = stripe_state(base_url, secret_key)

    # Both runs succeeded, recorded in the instance's PostgreSQL database.
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 2, failures
    with psycopg.connect(instance_database_url) as connection:
        stored = dict(
            connection.execute(
                "select run_id, status from runs where pipeline_name = 'migrate_batches'"
            ).fetchall()
        )
    assert stored == {r.dagster_run.run_id: "SUCCESS" for r in records}
    assert pool.slot_count == 2  # deploy/dagster.yaml's default_limit, given to stripe_writes

    # They ran at the same time: their runs and their Stripe write windows overlap.
    run_overlap = min(r.end_time for r in records) - max(r.start_time for r in records)
    windows = {}
    for entry in log:
        if (entry["method"], entry["path"]) == ("POST", "/v1/products"):
            batch = int(PRODUCT_ID.search(entry["idempotency_key"]).group(1)) // PRODUCTS_PER_BATCH
            windows.setdefault(batch, []).append(entry["started_at"])
    write_overlap = min(max(w) for w in windows.values()) - max(min(w) for w in windows.values())

    # The throttle held the shared budget: no 429, never more than the limit in any second,
    # and it was the binding limit (the budget was reached).
    namespace = hashlib.sha256(secret_key.encode()).hexdigest()[:16]  # as factory.open_stripe_api
    with psycopg.connect(fresh_database_url) as connection:
        shared = connection.execute(
            "select count(*) from stripe_sync_throttle_state where namespace = %s", [namespace]
        ).fetchone()[0]
    assert shared == 1
    assert not (state_dir / "stripe_throttle.sqlite").exists()  # the one-machine default
    statuses = Counter(entry["status"] for entry in log)
    started = sorted(entry["started_at"] for entry in log)
    worst = max_in_window(started)
    span = started[-1] - started[0]
    print(
        f"\n[production instance] 2 runs x {PRODUCTS_PER_BATCH} products: runs overlapped"
        f" {run_overlap:.1f} s, Stripe writes overlapped {write_overlap:.1f} s"
        f" (windows {[f'{max(w) - min(w):.1f} s' for w in windows.values()]});"
        f" {len(log)} requests in {span:.1f} s ({(len(log) - 1) / span:.1f}/s),"
        f" max in any 1-s window {worst} (budget {BUDGET:g}, limit {RATE_LIMIT}),"
        f" statuses {dict(statuses)}"
    )
    assert run_overlap > 0
    assert write_overlap > 1.0
    assert set(statuses) == {200}
    assert worst <= RATE_LIMIT
    assert worst >= 0.75 * BUDGET  # the budget was what limited them

    # No duplicates: one product per row, its one active price the default, all written back.
    assert len(products) == len(source)
    assert_in_sync(table.rows(), source, products, prices)
    active = Counter(price["product"] for price in prices.values() if price["active"])
    assert set(active.values()) == {1}
    # Both run workers kept the pipeline's state in the catalog's database, nothing on disk.
    with psycopg.connect(table.database_url) as connection:
        ledger = connection.execute(
            "select batch from stripe_sync_ledger where namespace = %s and step = 'stripe_prices'",
            [table.name],
        ).fetchall()
    assert {batch for (batch,) in ledger} == set(batches)
    assert not state_dir.exists() or not any(state_dir.rglob("*.json"))


def failure_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What a run's failed steps and the run's failure said."""
    return [
        entry.message
        for entry in instance.all_logs(
            run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
        )
    ]


def test_two_run_workers_sharing_only_the_databases_each_sync_a_batch_and_a_third_sees_both(
    products_table, pipeline_env, instance_database_url, emulator, tmp_path
):
    source = {row["id"]: row for row in sample_products(40)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    use_instance_database(pipeline_env, instance_database_url)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="20")
    run_config = tmp_path / "in_process.yaml"
    run_config.write_text("execution:\n  config:\n    in_process: {}\n")

    def machine(name: str, *command: str, instance: Path | None = INSTANCE_YAML):
        """`command` in a directory of its own: its own Dagster home (the shared PostgreSQL
        instance, or a new local one) and its own local files."""
        home = tmp_path / name / "dagster_home"
        home.mkdir(parents=True)
        if instance is not None:
            shutil.copy(instance, home / "dagster.yaml")
        env = {
            **pipeline_env.cli_env(),
            "DAGSTER_HOME": str(home),
            "STRIPE_SYNC_STATE_DIR": str(tmp_path / name / "local"),
        }
        return subprocess.Popen(
            command,
            cwd=home.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def execute(name: str, job: str, tags: dict | None = None):
        command = [console_script("dagster"), "job", "execute", "-m", "stripe_sync.definitions"]
        command += ["-j", job, "-c", str(run_config), "--tags", json.dumps(tags or {})]
        return machine(name, *command)

    def finished(process: subprocess.Popen) -> str:
        out, _ = process.communicate(timeout=180)
        assert process.returncode == 0, out
        return out

    finished(execute("registrar", "register_batches_job"))
    with psycopg.connect(instance_database_url) as connection:
        batches = sorted(
            partition
            for (partition,) in connection.execute(
                "select partition from dynamic_partitions "
                "where partitions_def_name = 'product_batches'"
            )
        )
    assert len(batches) == 2
    workers = [
        execute(f"worker_{n}", "migrate_batches", {PARTITION_NAME_TAG: batch})
        for n, batch in enumerate(batches)
    ]
    for worker in workers:
        finished(worker)
    before = len(emulator.requests())
    plan = finished(machine("third", stripe_sync_script(), "plan", "--json", instance=None))

    assert json.loads(plan[plan.index("{") :])["counts"]["unchanged"] == len(source)
    assert emulator.requests()[before:] == []  # a plan reads the catalog and the state only
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))
    for name in ("worker_0", "worker_1"):
        assert list((tmp_path / name / "local").rglob("*.json")) == []


def test_a_run_on_two_celery_workers_sharing_only_the_databases_is_exact(
    products_table, pipeline_env, instance_database_url, emulator, tmp_path
):
    source = {row["id"]: row for row in sample_products(60)}
    table = products_table(list(source.values()))
    pipeline_env.use_catalog(table)
    queue = f"stripe_sync_test_{secrets.token_hex(4)}"  # this test's tasks only
    broker = os.environ.get("STRIPE_SYNC_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
    use_instance_database(pipeline_env, instance_database_url)
    pipeline_env.set(
        STRIPE_SYNC_BATCH_SIZE="20",
        STRIPE_SYNC_EXECUTOR="celery",
        STRIPE_SYNC_CELERY_BROKER=broker,
        STRIPE_SYNC_CELERY_QUEUE=queue,
    )
    shutil.copy(INSTANCE_YAML, pipeline_env.dagster_home / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        assert (
            build_definitions()
            .resolve_job_def("register_batches_job")
            .execute_in_process(instance=instance)
            .success
        )
        batches = instance.get_dynamic_partitions("product_batches")
    assert len(batches) == 3

    workers, logs = [], []
    for n in range(2):
        folder = tmp_path / f"celery_worker_{n}"  # a machine of its own: nothing else shared
        (folder / "tmp").mkdir(parents=True)
        logs.append(folder / "worker.log")
        env = {
            **pipeline_env.cli_env(),
            "TMPDIR": str(folder / "tmp"),
            "STRIPE_SYNC_STATE_DIR": str(folder / "local"),
        }
        env.pop("DAGSTER_HOME")  # a task carries its instance; the worker needs no home
        with open(logs[-1], "wb") as out:
            workers.append(
                subprocess.Popen(
                    [
                        *(console_script("celery"), "-A", "dagster_celery.app"),
                        *("-b", broker, "--result-backend", broker, "worker"),
                        *("-n", f"worker{n}@%h", "-Q", queue, "-l", "INFO"),
                        *("--concurrency=1", "--prefetch-multiplier=1"),
                    ],
                    cwd=folder,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        deadline = time.monotonic() + 60
        while not all(" ready." in log.read_text() for log in logs):
            assert all(w.poll() is None for w in workers), [log.read_text() for log in logs]
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            time.sleep(0.5)
        # Two runs at once (batches 1-2 and batch 3): the two workers take the steps as they
        # come, so a step often runs on another worker than the step before it.
        runs = [
            subprocess.Popen(
                [
                    *(console_script("dagster"), "job", "execute", "-m"),
                    *("stripe_sync.definitions", "-j", "migrate_batches", "--tags"),
                    json.dumps(
                        {**partition_range_tags(first, last), "dagster-celery/queue": queue}
                    ),
                ],
                cwd=tmp_path,
                env=pipeline_env.cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for first, last in ((batches[0], batches[1]), (batches[2], batches[2]))
        ]
        outputs = [run.communicate(timeout=300)[0] for run in runs]
    finally:
        for worker in workers:
            stop_process_group(worker)
        forget_celery_keys(broker, queue)

    assert [run.returncode for run in runs] == [0, 0], outputs
    with dg.DagsterInstance.get() as instance:
        steps = sum(
            len(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS))
            for run in instance.get_runs(filters=dg.RunsFilter(job_name="migrate_batches"))
        )
    tasks = [log.read_text().count("succeeded in") for log in logs]
    assert sum(tasks) == steps and min(tasks) >= 1, tasks  # every step a task, both workers busy
    assert_in_sync(table.rows(), source, *stripe_state(emulator.base_url))
    assert all(worker.poll() is not None for worker in workers)


def forget_celery_keys(broker: str, queue: str) -> None:
    """The keys Celery left in the test's Redis: the task results and the queue's bindings."""
    client = redis.Redis.from_url(broker)
    keys = [*client.scan_iter("celery-task-meta-*"), *client.scan_iter(f"*{queue}*")]
    if keys:
        client.delete(*keys)
    client.close()
