"""Forget the stored sync state, so the next run re-examines every product against Stripe."""

from __future__ import annotations

from dataclasses import dataclass

from stripe_sync.core.contract import WriteBack
from stripe_sync.operations.instance import resources
from stripe_sync.settings import Settings

RESET_CHUNK = 10_000  # catalog rows emptied per write-back call


@dataclass(frozen=True)
class ResetResult:
    checkpoints_forgotten: int  # rows whose checkpoints were forgotten
    catalog_rows_emptied: int


def reset(settings: Settings, *, catalog_columns: bool) -> ResetResult:
    """Forget every checkpoint, so the next run reconciles each synced row with Stripe; with
    `catalog_columns`, also empty the rows' sync state (and the catalog's write-back columns,
    where it has them)."""
    with resources(settings, "catalog") as built, built.catalog.opened() as source:
        forgotten = source.state.forget_all()
        if not catalog_columns:
            return ResetResult(forgotten, 0)
        ids = list(source.iter_ids())
        for start in range(0, len(ids), RESET_CHUNK):
            source.write_back(
                [
                    WriteBack(cms_id, None, None, None, None, None, None)
                    for cms_id in ids[start : start + RESET_CHUNK]
                ]
            )
    return ResetResult(forgotten, len(ids))
