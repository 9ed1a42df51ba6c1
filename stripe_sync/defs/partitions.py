"""Product batches: one dynamic partition per batch of catalog rows (see core/batches.py)."""

import dagster as dg

batch_partitions = dg.DynamicPartitionsDefinition(name="product_batches")
