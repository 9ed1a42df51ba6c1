"""Results the catalog could not take, kept in the Dagster instance for the next run.

When a catalog outage outlasts the retry deadline right after Stripe did a batch's work, the
batch's write-backs, checkpoints and outcomes are logged as an observation of
`stripe_products` for that batch (metadata `undelivered`: the payload, `undelivered_id`): the
run's own event log, which lives in the instance's storage, not in the catalog. The next run's
`stripe_products` step records them first and logs `delivered` with their ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import dagster as dg

PAYLOAD, KEPT_ID, DELIVERED = "undelivered", "undelivered_id", "delivered"
STRIPE_PRODUCTS = dg.AssetKey("stripe_products")
LOOKBACK = 200  # observations searched for kept results, per batch of the run


class InstanceUndelivered:
    """`core.sync.Undelivered` in the instance's event log."""

    def __init__(self, context: dg.AssetExecutionContext):
        self._context = context

    def keep(self, batch: str, payload: dict) -> None:
        self._observe(batch, {PAYLOAD: dg.MetadataValue.json(payload), KEPT_ID: uuid.uuid4().hex})

    def kept(self, batches: Sequence[str]) -> list[tuple[str, str, dict]]:
        # One query for all the batches: there is seldom anything kept, and every run asks.
        records = self._context.instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=STRIPE_PRODUCTS, asset_partitions=list(batches)),
            limit=LOOKBACK * len(batches),
        ).records
        found = []
        for batch in batches:
            delivered: set[str] = set()
            kept = []
            for record in records:  # newest first
                if record.partition_key != batch:
                    continue
                metadata = record.asset_observation.metadata
                if DELIVERED in metadata:
                    delivered.update(metadata[DELIVERED].value)
                elif PAYLOAD in metadata and metadata[KEPT_ID].value not in delivered:
                    kept.append((metadata[KEPT_ID].value, batch, metadata[PAYLOAD].value))
            found += reversed(kept)
        return found

    def delivered(self, batch: str, kept_ids: Sequence[str]) -> None:
        self._observe(batch, {DELIVERED: dg.MetadataValue.json(list(kept_ids))})

    def _observe(self, batch: str, metadata: dict) -> None:
        self._context.log_event(
            dg.AssetObservation(asset_key=STRIPE_PRODUCTS, partition=batch, metadata=metadata)
        )
