"""The stripe_sync code location, built lazily from the settings when Dagster loads it."""

from urllib.parse import urlsplit

import dagster as dg

from stripe_sync.core.progress import RunProgress
from stripe_sync.defs import assets, checks, quality_checks, report
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
from stripe_sync.settings.loader import load_settings
from stripe_sync.settings.model import Settings

GROUP = "stripe_sync"
# The definition metadata that shows the effective settings on every asset.
SETTINGS_METADATA = "stripe_sync/settings"
LAYER_TAG = "stripe_sync/layer"
# Which side of the migration each asset stands for, as a tag to filter the catalog by.
LAYERS = {
    assets.supabase_products.key: "catalog",
    assets.validated_products.key: "validation",
    assets.stripe_products.key: "stripe",
    assets.stripe_prices.key: "stripe",
    report.migration_report.key: "report",
}
# The kind Dagster draws for a database URL's scheme (a driver after `+` aside).
_DATABASE_KINDS = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite"}


def catalog_kind(settings: Settings) -> str | None:
    """What the catalog is, as a Dagster kind: its database, else Supabase; None when no
    catalog is configured (the code location loads without one)."""
    if settings.catalog.database_url is not None:
        scheme = urlsplit(settings.catalog.database_url.value).scheme
        return _DATABASE_KINDS.get(scheme.split("+")[0])
    return "supabase" if settings.catalog.supabase_url else None


def pipeline_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The assets as the UI shows them: in the pipeline's group, with its owners, a layer tag
    each, and the catalog's real kind on the asset that reads it."""
    kind = catalog_kind(settings)
    # What a user of the UI would otherwise ask the command line (`stripe-sync config`).
    effective = dg.MetadataValue.md(settings.table())

    def present(spec: dg.AssetSpec) -> dg.AssetSpec:
        shown = spec.replace_attributes(group_name=GROUP, owners=list(settings.assets.owners))
        if spec.key == assets.supabase_products.key:
            shown = shown.replace_attributes(kinds={kind} if kind else set())
        return shown.merge_attributes(
            tags={LAYER_TAG: LAYERS[spec.key]}, metadata={SETTINGS_METADATA: effective}
        )

    return dg.map_asset_specs(present, dg.load_assets_from_modules([assets, report]))


def build_definitions(
    settings: Settings | None = None, progress: RunProgress | None = None
) -> dg.Definitions:
    """Everything Dagster of stripe_sync, configured from `settings` (default: loaded now);
    `progress`: where in-process runs say how far they are (a command's progress bar)."""
    settings = settings or load_settings()
    return dg.Definitions(
        assets=pipeline_assets(settings),
        asset_checks=dg.load_asset_checks_from_modules([quality_checks, checks]),
        jobs=[
            migrate_batches_job,
            register_batches_job,
            report_job,
            rollback_job,
            verify_batches_job,
        ],
        sensors=[report_automation_sensor, *build_automation_sensors(settings)],
        schedules=[build_reconcile_schedule(settings)],
        resources=build_resources(settings, progress),
        loggers={"console": console_and_file},
        executor=build_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location `dagster dev`, `dg` and the daemon load."""
    return build_definitions()
