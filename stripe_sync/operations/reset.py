"""Forget the stored sync state, so the next run re-examines every product against Stripe."""

from __future__ import annotations

from dataclasses import dataclass

from stripe_sync.core.contract import WriteBack
from stripe_sync.core.identity import stripe_product_id
from stripe_sync.factory import opened_catalog
from stripe_sync.settings.model import Settings

RESET_CHUNK = 10_000  # catalog rows emptied per write-back call


@dataclass(frozen=True)
class ResetResult:
    checkpoints_forgotten: int  # rows whose checkpoints were forgotten
    catalog_rows_emptied: int
    adopted_ids_kept: int = 0  # rows whose adopted product's ids were kept


def reset(settings: Settings, *, catalog_columns: bool) -> ResetResult:
    """Forget every checkpoint, so the next run reconciles each synced row with Stripe; with
    `catalog_columns`, also empty the rows' sync state (and the catalog's write-back columns,
    where it has them), but for the Stripe ids of adopted products: nothing else finds them
    (their ids are not the pipeline's own), and the next run would make a second product."""
    with opened_catalog(settings) as source:
        forgotten = source.state.forget_all()
        if not catalog_columns:
            return ResetResult(forgotten, 0)
        ids, kept = list(source.iter_ids()), 0
        for start in range(0, len(ids), RESET_CHUNK):
            chunk = ids[start : start + RESET_CHUNK]
            adopted = {
                row["id"]: (row["stripe_product_id"], row["stripe_price_id"])
                for row in source.read_rows(chunk)
                if row["stripe_product_id"] not in (None, stripe_product_id(row["id"]))
            }
            source.write_back(
                [
                    WriteBack(cms_id, *adopted.get(cms_id, (None, None)), None, None, None, None)
                    for cms_id in chunk
                ]
            )
            kept += len(adopted)
    return ResetResult(forgotten, len(ids), kept)
