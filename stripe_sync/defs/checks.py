"""Asset checks: a batch fit to go to Stripe, and how much of it was quarantined."""

import dagster as dg
import pandas as pd

from stripe_sync.defs.assets import validated_products
from stripe_sync.defs.resources import SyncSettings

# A batch this small may simply hold a few bad rows; from this size on, a column without a
# single usable value means the column itself is wrong (a renamed field, another type).
STRUCTURE_MIN_ROWS = 5
_COLUMN_REASONS = {
    "name": ("name_missing",),
    "price": ("price_missing", "price_not_a_number", "price_ambiguous"),
}


def _has(reasons: tuple[str, ...], codes: tuple[str, ...]) -> bool:
    return any(reason.split(":", 1)[0] in codes for reason in reasons)


@dg.asset_check(asset=validated_products, blocking=True)
def batch_structure(validated_products: pd.DataFrame) -> dg.AssetCheckResult:
    """Blocks the batch before any Stripe request when a whole column is unusable: in a
    batch of at least 5 rows, not one row has a usable name, or a usable price."""
    broken = []
    for batch, rows in validated_products.groupby("batch"):
        if len(rows) < STRUCTURE_MIN_ROWS:
            continue
        for column, codes in _COLUMN_REASONS.items():
            if rows["reasons"].map(lambda reasons, codes=codes: _has(reasons, codes)).all():
                example = next(r for r in rows["reasons"].iloc[0] if r.split(":", 1)[0] in codes)
                broken.append(
                    {"batch": batch, "column": column, "rows": len(rows), "example": example}
                )
    return dg.AssetCheckResult(
        passed=not broken,
        description=(
            "; ".join(
                f"batch {b['batch']}: no row has a usable {b['column']} (e.g. {b['example']})"
                for b in broken
            )
            or "every column holds usable values"
        ),
        metadata={"broken_columns": dg.MetadataValue.json(broken)},
    )


@dg.asset_check(asset=validated_products)
def invalid_share(validated_products: pd.DataFrame, settings: SyncSettings) -> dg.AssetCheckResult:
    """Warns when more than `invalid_share_threshold` (default 5%) of a batch is invalid."""
    invalid = validated_products["reasons"].map(len) > 0
    per_batch = invalid.groupby(validated_products["batch"]).agg(["sum", "count", "mean"])
    over = per_batch[per_batch["mean"] > settings.invalid_share_threshold]
    worst = float(per_batch["mean"].max()) if len(per_batch) else 0.0
    return dg.AssetCheckResult(
        passed=over.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(over)} of {len(per_batch)} batches have more than {settings.invalid_share_threshold:.1%} "
            f"invalid rows (worst {worst:.1%}); {invalid.sum()} of {len(invalid)} rows invalid in all"
        ),
        metadata={
            "worst_invalid_share": worst,
            "per_batch": dg.MetadataValue.md(
                "\n".join(
                    ["| batch | invalid | rows |", "| --- | ---: | ---: |"]
                    + [
                        f"| {batch} | {row['sum']} | {row['count']} |"
                        for batch, row in per_batch.iterrows()
                    ]
                )
            ),
        },
    )
