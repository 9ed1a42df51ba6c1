"""Product batches: one dynamic partition per range of catalog ids (see core/batches.py)."""

import dagster as dg

from stripe_sync.core.batches import Batch, batches, new_batch_keys
from stripe_sync.core.state import TrackedCatalog

batch_partitions = dg.DynamicPartitionsDefinition(name="product_batches")


def batches_for(instance: dg.DagsterInstance, keys: list[str]) -> list[Batch]:
    """The id ranges of some registered batch keys."""
    wanted = set(keys)
    return [
        batch
        for batch in batches(instance.get_dynamic_partitions(batch_partitions.name))
        if batch.key in wanted
    ]


def keys_to_register(source: TrackedCatalog, registered: list[str], batch_size: int) -> list[str]:
    """The batch keys to append for catalog rows beyond the registered batches. An instance
    with none (a new Dagster home, another deployment) first gets the batches the state was
    recorded under, so each row's state is found in its batch."""
    known = [] if registered else source.state.batch_keys()
    return [*known, *new_batch_keys(source, known or registered, batch_size)]
