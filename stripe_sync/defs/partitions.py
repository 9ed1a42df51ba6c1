"""Product batches: one dynamic partition per range of catalog ids (see core/batches.py)."""

import dagster as dg

from stripe_sync.core.batches import Batch, batches

batch_partitions = dg.DynamicPartitionsDefinition(name="product_batches")


def batches_for(instance: dg.DagsterInstance, keys: list[str]) -> list[Batch]:
    """The id ranges of some registered batch keys."""
    wanted = set(keys)
    return [
        batch
        for batch in batches(instance.get_dynamic_partitions(batch_partitions.name))
        if batch.key in wanted
    ]
