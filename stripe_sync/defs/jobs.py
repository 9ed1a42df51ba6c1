"""Jobs: migrate batches, register batches, and the report."""

import dagster as dg

from stripe_sync.core.batches import new_batch_keys
from stripe_sync.defs.assets import (
    migration_report,
    stripe_prices,
    stripe_products,
    supabase_products,
    validated_products,
)
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource, SyncSettings

migrate_batches_job = dg.define_asset_job(
    "migrate_batches",
    selection=[supabase_products, validated_products, stripe_products, stripe_prices],
    description="Sync the selected batches of the catalog into Stripe.",
)

report_job = dg.define_asset_job(
    "report",
    selection=[migration_report],
    description="Rebuild the migration report from every batch.",
)


def register_batches(
    instance: dg.DagsterInstance, catalog: CatalogResource, settings: SyncSettings
) -> list[str]:
    """Append partitions for catalog rows beyond the registered batches; returns the new keys."""
    source = catalog.open()
    try:
        registered = instance.get_dynamic_partitions(batch_partitions.name)
        new_keys = new_batch_keys(source, registered, settings.batch_size)
    finally:
        source.close()
    if new_keys:
        instance.add_dynamic_partitions(batch_partitions.name, new_keys)
    return new_keys


@dg.op(description="Register a batch partition for every batch_size catalog rows not yet in one.")
def register_new_batches(
    context: dg.OpExecutionContext, catalog: CatalogResource, settings: SyncSettings
) -> None:
    new_keys = register_batches(context.instance, catalog, settings)
    context.log.info(
        f"registered {len(new_keys)} new batches"
        + (f": {new_keys[0]} … {new_keys[-1]}" if new_keys else "")
    )


@dg.job(description="Register batch partitions for new catalog rows.")
def register_batches_job() -> None:
    register_new_batches()
