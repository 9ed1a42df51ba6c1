"""Asset checks on a batch before it goes to Stripe: fit to go (blocking), and how much of it
was quarantined."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from stripe_sync.core.wording import counted
from stripe_sync.defs.assets import validated_products
from stripe_sync.defs.checks import batch_evaluation, check_outputs, latest_materializations
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.settings.model import Settings

# A batch this small may simply hold a few bad rows; from this size on, a column without a
# single usable value means the column itself is wrong (a renamed field, another type).
STRUCTURE_MIN_ROWS = 5
_COLUMN_REASONS = {
    "name": ("name_missing",),
    "price": ("price_missing", "price_not_a_number", "price_ambiguous"),
}


def _has(reasons: tuple[str, ...], codes: tuple[str, ...]) -> bool:
    return any(reason.split(":", 1)[0] in codes for reason in reasons)


# Partitioned like the verification checks (the preview warning is silenced in checks.py).
batch_structure = dg.AssetCheckSpec(
    "batch_structure",
    asset=validated_products,
    blocking=True,
    partitions_def=batch_partitions,
    description=(
        "Blocks the batch before any Stripe request when a whole column is unusable: in a "
        f"batch of at least {STRUCTURE_MIN_ROWS} rows, not one row has a usable name, or a "
        "usable price."
    ),
)
invalid_share = dg.AssetCheckSpec(
    "invalid_share",
    asset=validated_products,
    partitions_def=batch_partitions,
    description="Warns when more of a batch is invalid than the setting "
    "validation.invalid_share_threshold allows.",
)


@dg.multi_asset_check(
    specs=[batch_structure, invalid_share],
    ins={"validated_products": dg.AssetIn(validated_products.key)},
)
def batch_quality(
    context: dg.AssetCheckExecutionContext,
    validated_products: pd.DataFrame,
    settings: dg.ResourceParam[Settings],
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each batch of the run fit to go to Stripe (blocking), and how much of it was quarantined."""
    targets = latest_materializations(context, batch_structure.asset_key, context.partition_keys)
    for batch in context.partition_keys:
        rows = validated_products[validated_products["batch"] == batch]
        target = targets.get(batch)
        yield batch_evaluation(batch_structure, batch, target, **_structure(rows))
        yield batch_evaluation(
            invalid_share,
            batch,
            target,
            **_invalid_share(rows, settings.validation.invalid_share_threshold),
        )
    yield from check_outputs(context)


def _structure(rows: pd.DataFrame) -> dict:
    broken = []
    if len(rows) >= STRUCTURE_MIN_ROWS:
        for column, codes in _COLUMN_REASONS.items():
            if rows["reasons"].map(lambda reasons, codes=codes: _has(reasons, codes)).all():
                example = next(r for r in rows["reasons"].iloc[0] if r.split(":", 1)[0] in codes)
                broken.append({"column": column, "rows": len(rows), "example": example})
    return {
        "passed": not broken,
        "severity": dg.AssetCheckSeverity.ERROR,
        "description": (
            "; ".join(f"no row has a usable {b['column']} (e.g. {b['example']})" for b in broken)
            or "every column holds usable values"
        ),
        "metadata": {"broken_columns": dg.MetadataValue.json(broken)},
    }


def _invalid_share(rows: pd.DataFrame, threshold: float) -> dict:
    invalid = int((rows["reasons"].map(len) > 0).sum())
    share = invalid / len(rows) if len(rows) else 0.0
    return {
        "passed": share <= threshold,
        "severity": dg.AssetCheckSeverity.WARN,
        "description": (
            f"{invalid} of {counted(len(rows), 'row')} invalid ({share:.1%}; warns above "
            f"{threshold:.1%})"
        ),
        "metadata": {"invalid": invalid, "rows": len(rows), "invalid_share": share},
    }
