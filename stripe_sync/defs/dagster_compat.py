"""Every private Dagster API stripe_sync uses, each with why no public one serves.

Nothing else in the package imports `dagster._`. `stripe_sync_tests/defs/test_dagster_compat.py`
checks each of these against the installed Dagster, so an upgrade that moves or changes one
fails there, by name, rather than in a run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg

# A partitioned asset check's result for one batch of a run over several batches must name
# the materialization it is about; `dg.AssetCheckEvaluation` takes this type for that and
# Dagster exports no public one.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as CheckTarget,
)

# A run over a range of partitions is requested (and run in process) with these two tags:
# `dg.RunRequest` and `execute_in_process` take one partition key, never a range.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG as PARTITION_RANGE_END_TAG,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG as PARTITION_RANGE_START_TAG,
)

# A write-back must run to its end when a stop arrives meanwhile: Dagster turns SIGINT,
# SIGTERM and a run termination into an interrupt of the step, and only these defer it.
from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

__all__ = [
    "PARTITION_RANGE_END_TAG",
    "PARTITION_RANGE_START_TAG",
    "CheckTarget",
    "instance_at",
    "interrupts_deferred",
    "partition_range_tags",
    "pool_limit_set",
    "tag_run",
]


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of a run over the batches from `first` to `last`."""
    return {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the body to its end; a stop that arrived meanwhile interrupts right after it."""
    with capture_interrupts():
        yield
        interrupted = check_captured_interrupt()
    if interrupted:
        raise dg.DagsterExecutionInterruptedError()


def instance_at(home: Path) -> dg.DagsterInstance:
    """The Dagster instance whose home is `home`. The public `DagsterInstance.get()` finds the
    home only through the DAGSTER_HOME environment variable, which nothing here writes."""
    return dg.DagsterInstance.from_config(str(home))


def tag_run(instance: dg.DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    """Add tags to a run, from inside it: no public API lets a step tag its own run
    (`add_run_tags` is what the UI's "Edit tags" uses)."""
    instance.add_run_tags(run_id, tags)


def pool_limit_set(instance: dg.DagsterInstance, pool: str) -> None:
    """Give `pool` the instance's default limit now, once, unless it has a limit. Each run
    otherwise does it lazily at its first step in the pool, and on PostgreSQL two runs doing it
    at once fail with a duplicate key (dagster-io/dagster#33552); the registration runs before
    any writer. No public API sets a pool to the default (the CLI sets a limit of its own)."""
    storage = instance.event_log_storage
    default_limit = instance.global_op_concurrency_default_limit
    if not storage.supports_global_concurrency_limits or default_limit is None:
        return
    if pool not in {limit.name for limit in storage.get_pool_limits()}:
        storage.initialize_concurrency_limit_to_default(pool)
