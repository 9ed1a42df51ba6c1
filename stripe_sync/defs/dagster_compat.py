"""Every private Dagster API stripe_sync uses, each with why no public one serves.

Nothing else in the package imports `dagster._`. `stripe_sync_tests/defs/test_dagster_compat.py`
checks each of these against the installed Dagster, so an upgrade that moves or changes one
fails there, by name, rather than in a run.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import dagster as dg
import sqlalchemy
import yaml

# A partitioned asset check's result for one batch of a run over several batches must name
# the materialization it is about; `dg.AssetCheckEvaluation` takes this type for that and
# Dagster exports no public one.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as CheckTarget,
)

# The default SQLite event log makes a new engine and connection for every event it stores
# (5-10 ms each, about 165 events a run); a subclass that keeps them is the only way to
# change that, and it must override the private `_connect`.
from dagster._core.instance.ref import InstanceRef

# Dagster's capture of a run's stdout and stderr (the UI's "stdout/stderr") starts `tail` and a
# Python watcher (`watch_orphans.py`) in the command's process group, so a Ctrl+C reaches them
# too and the watcher dies of it printing a KeyboardInterrupt traceback. Only a compute log
# manager of one's own (a `LocalComputeLogManager` capturing into a `CapturedLogContext`) can
# start them otherwise, and Dagster exports neither.
from dagster._core.storage.compute_log_manager import CapturedLogContext
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

# A run over a range of partitions is requested (and run in process) with these two tags:
# `dg.RunRequest` and `execute_in_process` take one partition key, never a range.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG as PARTITION_RANGE_END_TAG,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG as PARTITION_RANGE_START_TAG,
)
from dagster._serdes import ConfigurableClassData

# Stripe's answered work must be recorded whatever stops arrive meanwhile: Dagster turns
# SIGINT, SIGTERM and a run termination (a SIGINT to the step's process) into an exception
# raised in the step wherever it is, and only these defer it and tell that one came.
from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "PARTITION_RANGE_END_TAG",
    "PARTITION_RANGE_START_TAG",
    "CheckTarget",
    "PooledSqliteEventLogStorage",
    "QuietComputeLogManager",
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
def interrupts_deferred() -> Iterator[Callable[[], bool]]:
    """Run the body to its end whatever stops arrive meanwhile (one or many); the body polls
    the function it is given to learn whether one came. A stop that came interrupts right
    after the body."""
    with capture_interrupts():
        yield check_captured_interrupt
        interrupted = check_captured_interrupt()
    if interrupted:
        raise dg.DagsterExecutionInterruptedError()


def instance_at(home: Path) -> dg.DagsterInstance:
    """The Dagster instance whose home is `home`. The public `DagsterInstance.get()` finds the
    home only through the DAGSTER_HOME environment variable, which nothing here writes.

    On a home with Dagster's default SQLite storage, its event log keeps its connections
    (`PooledSqliteEventLogStorage`); with Dagster's default compute logs, their helper
    processes ignore a Ctrl+C (`QuietComputeLogManager`). Same files, so `dagster dev` on the
    home reads them."""
    config_file = home / "dagster.yaml"
    config = (yaml.safe_load(config_file.read_text()) if config_file.exists() else None) or {}
    overrides = {}
    if not config.keys() & {"storage", "event_log_storage", "run_storage", "schedule_storage"}:
        overrides["event_log_storage"] = {
            "module": __name__,
            "class": PooledSqliteEventLogStorage.__name__,
            "config": {"base_dir": str(home.absolute() / "history" / "runs")},
        }
    if "compute_logs" not in config:
        overrides["compute_logs"] = {
            "module": __name__,
            "class": QuietComputeLogManager.__name__,
            "config": {"base_dir": str(home.absolute() / "storage")},
        }
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home), overrides=overrides))


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, keeping an engine (and its pooled connection) for the index
    and the few latest runs' databases instead of making one per event, in write-ahead-log
    mode (a commit without a journal file), and remembering which tables exist (Dagster asks
    before each check event)."""

    _KEPT_ENGINES = 4  # the index, the run being written, and runs being read

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # the parent's __init__ connects
        self._tables: set[str] = set()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engines.pop(shard, None) or self._engine(shard)
            self._engines[shard] = engine
            while len(self._engines) > self._KEPT_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as connection, connection.begin():
                yield connection

    def has_table(self, table_name: str) -> bool:
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)  # a table is never dropped (`wipe` empties them)
        return table_name in self._tables

    def _engine(self, shard: str) -> Engine:
        engine = sqlalchemy.create_engine(
            self.conn_string_for_shard(shard),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        sqlalchemy.event.listen(engine, "connect", _write_ahead_log)
        return engine

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # it deletes the files under them
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


class QuietComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs, whose helper processes (`tail`, `watch_orphans.py`) start
    with SIGINT blocked, a mask they keep across exec: a Ctrl+C to the command's process group
    stops the command, which ends them when its run's capture ends, and prints nothing."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping
    ) -> QuietComputeLogManager:
        return cls(inst_data=inst_data, **config_value)

    @contextlib.contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        with contextlib.ExitStack() as capture:
            # Blocked, not ignored: a SIGINT that comes meanwhile is delivered once unblocked.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                captured = capture.enter_context(super().capture_logs(log_key))
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            yield captured


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


def _write_ahead_log(connection: sqlite3.Connection, _record: object) -> None:
    connection.execute("pragma journal_mode=wal")
    connection.execute("pragma synchronous=normal")
