"""The stripe_sync code location, built lazily from the settings when Dagster loads it."""

import dagster as dg

from stripe_sync.core.progress import RunProgress
from stripe_sync.defs import assets, checks
from stripe_sync.defs.executors import build_executor
from stripe_sync.defs.jobs import (
    migrate_batches_job,
    register_batches_job,
    report_job,
    rollback_job,
    verify_batches_job,
)
from stripe_sync.defs.loggers import console_and_file
from stripe_sync.defs.resources import build_resources
from stripe_sync.defs.schedules import build_reconcile_schedule
from stripe_sync.defs.sensors import build_automation_sensors, report_automation_sensor
from stripe_sync.settings import Settings, load_settings


def build_definitions(
    settings: Settings | None = None, progress: RunProgress | None = None
) -> dg.Definitions:
    """Everything Dagster of stripe_sync, configured from `settings` (default: loaded now);
    `progress`: where in-process runs say how far they are (a command's progress bar)."""
    settings = settings or load_settings()
    status = dg.DefaultSensorStatus(settings.automation.status.upper())
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets]),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[
            migrate_batches_job,
            register_batches_job,
            report_job,
            rollback_job,
            verify_batches_job,
        ],
        sensors=[report_automation_sensor, *build_automation_sensors(status)],
        schedules=[build_reconcile_schedule(settings)],
        resources=build_resources(settings, progress),
        loggers={"console": console_and_file},
        executor=build_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `dagster dev`, `dg` and the daemon load."""
    return build_definitions()
