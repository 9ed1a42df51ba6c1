"""The Dagster instance the commands run in, and the in-process runs they start there."""

from __future__ import annotations

import importlib.resources
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from filelock import FileLock  # a dependency of dagster's

from stripe_sync.defs.dagster_compat import instance_at, partition_range_tags
from stripe_sync.operations.ui import workspace_file
from stripe_sync.settings.model import Settings

_HOST_TAG, _PID_TAG = "stripe_sync/host", "stripe_sync/pid"
# The project's instance settings (run queue, the stripe_writes pool, run retries), shipped
# in the package: a new home gets them wherever the command runs.
_INSTANCE_YAML = importlib.resources.files("stripe_sync") / "dagster.yaml"


def dagster_home(settings: Settings) -> Path:
    """The Dagster home (`paths.dagster_home`, default ./.dagster_home), made if missing with
    the project's dagster.yaml, and with the workspace file the UI hint names."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    workspace_file(home)
    instance_yaml = home / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text(_INSTANCE_YAML.read_text())
    return home


def open_instance(home: Path) -> dg.DagsterInstance:
    """The instance at `home`. Opened under a lock: two migrations started at once on a new
    home would both create its SQLite storage, and one would die of "table alembic_version
    already exists"."""
    with FileLock(home / ".stripe_sync_instance.lock"):
        return instance_at(home)


def run_batches(
    job: dg.JobDefinition, instance: dg.DagsterInstance, keys: Sequence[str], run_config: dict
) -> dg.ExecuteInProcessResult:
    """One in-process run of `job` over a range of batches, tagged with this process so a
    later command can tell if it was killed."""
    return job.execute_in_process(
        instance=instance,
        run_config=run_config,
        tags={**partition_range_tags(keys[0], keys[-1]), **_launcher_tags()},
        raise_on_error=False,
    )


def _launcher_tags() -> dict[str, str]:
    return {_HOST_TAG: socket.gethostname(), _PID_TAG: str(os.getpid())}


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the in-process runs of this machine whose process is gone (SIGKILL, power
    loss): no daemon watches them, and their pool slots would block every later run."""
    abandoned = []
    started_here = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED], tags={_HOST_TAG: socket.gethostname()}
    )
    for run in instance.get_runs(filters=started_here):
        if not _alive(int(run.tags[_PID_TAG])):
            instance.report_run_failed(run)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            abandoned.append(run.run_id)
    return abandoned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive
    return True
