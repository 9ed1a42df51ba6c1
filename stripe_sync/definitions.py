"""The stripe_sync code location."""

import dagster as dg

from stripe_sync.defs import assets, checks
from stripe_sync.defs.jobs import (
    migrate_batches_job,
    register_batches_job,
    report_job,
    rollback_job,
    verify_batches_job,
)
from stripe_sync.defs.loggers import console_and_file
from stripe_sync.defs.resources import resources_from_env, storage_dir
from stripe_sync.defs.schedules import build_reconcile_schedule
from stripe_sync.defs.sensors import build_automation_sensors, report_automation_sensor


def build_definitions() -> dg.Definitions:
    """Definitions configured from the environment as it is now."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([assets]),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[
            migrate_batches_job,
            report_job,
            register_batches_job,
            rollback_job,
            verify_batches_job,
        ],
        sensors=[report_automation_sensor, *build_automation_sensors()],
        schedules=[build_reconcile_schedule()],
        resources=resources_from_env(storage_dir()),
        loggers={"console": console_and_file},
    )


defs = build_definitions()
