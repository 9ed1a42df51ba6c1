"""Sensors: the report follows the batches."""

import dagster as dg

from stripe_sync.defs.assets import migration_report

# Dagster's built-in automation sensor starts stopped; this one runs from the start.
report_automation_sensor = dg.AutomationConditionSensorDefinition(
    "migration_report_automation",
    target=[migration_report],
    default_status=dg.DefaultSensorStatus.RUNNING,
)
