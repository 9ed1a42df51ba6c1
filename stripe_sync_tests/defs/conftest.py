"""Fixtures for the sensor and schedule tests: ticks evaluated on a real instance, as the
daemon evaluates them, and the runs they request executed in process against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
import pytest
from dagster._core.definitions.schedule_definition import ScheduleExecutionData
from dagster._core.definitions.sensor_definition import SensorExecutionData
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from stripe_sync.definitions import build_definitions
from stripe_sync_tests.conftest import PipelineEnv


def products(count: int, start: int = 0) -> list[dict]:
    return [
        {"id": f"sku-{n:05d}", "name": f"Product {n}", "price": "12.50", "currency": "eur"}
        for n in range(start, start + count)
    ]


def batches_of(request: dg.RunRequest) -> tuple[str, str]:
    """The first and last batch a requested run covers."""
    tags = request.tags
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        return tags[ASSET_PARTITION_RANGE_START_TAG], tags[ASSET_PARTITION_RANGE_END_TAG]
    return request.partition_key, request.partition_key


@dataclass
class Automation:
    """The pipeline's sensors and schedule on the test's DAGSTER_HOME instance."""

    env: PipelineEnv
    instance: dg.DagsterInstance
    cursors: dict[str, str | None] = field(default_factory=dict)

    def tick(self, sensor_name: str) -> SensorExecutionData:
        """One evaluation of a sensor with the environment as it is now; its cursor and new
        batches are kept, as the daemon keeps them."""
        defs = build_definitions()
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(sensor_name),
            repository_def=defs.get_repository_def(),
            resources=defs.resources,
            sensor_name=sensor_name,
        )
        with context, dg.partition_loading_context(dynamic_partitions_store=self.instance):
            data = defs.resolve_sensor_def(sensor_name).evaluate_tick(context)
        if data.cursor is not None:  # a tick that sets none keeps the cursor, as the daemon does
            self.cursors[sensor_name] = data.cursor
        for request in data.dynamic_partitions_requests or ():
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, request.partition_keys
            )
        return data

    def schedule_tick(self, at: datetime) -> ScheduleExecutionData:
        """One evaluation of the reconcile schedule, for its tick at `at`."""
        defs = build_definitions()
        schedule = defs.resolve_schedule_def("reconcile_batches")
        context = dg.build_schedule_context(
            instance=self.instance,
            scheduled_execution_time=at,
            repository_def=defs.get_repository_def(),
            resources=defs.resources,
        )
        with context, dg.partition_loading_context(dynamic_partitions_store=self.instance):
            data = schedule.evaluate_tick(context)
        return data

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """Execute a requested run of migrate_batches, as the run launcher would."""
        job = build_definitions().resolve_job_def("migrate_batches")
        return job.execute_in_process(
            instance=self.instance, tags=request.tags, raise_on_error=False
        )


@pytest.fixture
def automation(pipeline_env: PipelineEnv) -> Iterator[Automation]:
    with dg.DagsterInstance.get() as instance:
        yield Automation(pipeline_env, instance)
