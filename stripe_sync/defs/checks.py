"""Asset checks: a batch fit to go to Stripe, how much of it was quarantined, and whether
Stripe holds what the batch's latest sync made (verification)."""

import contextlib
import warnings
from collections.abc import Iterator

import dagster as dg
import pandas as pd

# A partitioned check's result for one batch of a run over several: no public API yet.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from stripe_sync.core.checkpoints import CheckpointStore
from stripe_sync.core.errors import ConfigError, ErrorKind, StripeFailure
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.validation import planning_inputs
from stripe_sync.core.verify import (
    ERROR,
    PRICE,
    PRODUCT,
    WARNING,
    BatchVerification,
    Mismatch,
    Row,
    product_ids,
    verify_batch,
)
from stripe_sync.defs.assets import stripe_prices, stripe_products, validated_products
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CheckpointResource, StripeResource, SyncSettings

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


# --- verification -------------------------------------------------------------------------

MISMATCH_TABLE_ROWS = 100  # per batch and check; the counts hold them all
MISMATCH_COLUMNS = ("severity", "cms_id", "product_id", "field", "expected", "actual", "note")
WRONG_CONFIGURATION = "wrong_configuration"  # metadata of a failure the settings must fix

with warnings.catch_warnings():  # partitioned asset checks are a Dagster preview
    warnings.simplefilter("ignore", dg.PreviewWarning)
    products_match_catalog = dg.AssetCheckSpec(
        "products_match_catalog",
        asset=stripe_products,
        additional_deps=[validated_products],  # the rows the batch's latest sync made
        partitions_def=batch_partitions,
        description=(
            "Every product of the batch exists in Stripe with the catalog's name, description, "
            "images, metadata and active flag; no invalid row never synced and (in mirror mode) "
            "no row deleted from the catalog is live. Stale invalid rows and deleted rows left "
            "live with mirror off are warnings."
        ),
    )
    default_prices_match_catalog = dg.AssetCheckSpec(
        "default_prices_match_catalog",
        asset=stripe_prices,
        partitions_def=batch_partitions,
        description="Every product's default price is active, with the catalog's amount and currency.",
    )


@dg.multi_asset_check(
    specs=[products_match_catalog, default_prices_match_catalog],
    ins={"validated_products": dg.AssetIn(validated_products.key)},
)
def stripe_matches_catalog(
    context: dg.AssetCheckExecutionContext,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    checkpoints: CheckpointResource,
    settings: SyncSettings,
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Verification: reads each batch's Stripe products by id (100 per request, never search)
    and compares them with what the batch's latest sync made of the catalog. A drifted row's
    checkpoint is forgotten, so the next sync reconciles it with Stripe."""
    store = checkpoints.store()
    with _stripe_api(stripe) as api:
        # One evaluation per batch and check. An AssetCheckResult can't name its partition:
        # in a run over a range of batches Dagster would record it for no batch at all.
        for batch in context.partition_keys:
            rows = validated_products[validated_products["batch"] == batch]
            yield from _verify(context, batch, list(planning_inputs(rows)), store, api, settings)
    for output in context.op_def.output_defs:  # the checks' outputs, which hold no value
        yield dg.Output(None, output_name=output.name)


@contextlib.contextmanager
def _stripe_api(stripe: StripeResource) -> Iterator[StripeApi]:
    try:
        api = stripe.api()
    except ConfigError as error:
        raise dg.Failure(str(error), metadata={WRONG_CONFIGURATION: True}) from None
    try:
        yield api
    finally:
        api.close()


def _verify(
    context: dg.AssetCheckExecutionContext,
    batch: str,
    rows: list[Row],
    store: CheckpointStore,
    api: StripeApi,
    settings: SyncSettings,
) -> Iterator[dg.AssetCheckEvaluation]:
    """The two checks' results for one batch."""
    targets = {
        spec.key: _latest_materialization(context, spec.asset_key, batch)
        for spec in context.check_specs
    }
    if targets[products_match_catalog.key] is None:
        result, requests = _unverified("never synced", "run stripe-sync migrate"), 0
    else:
        result, requests = _compare(context, batch, rows, store, api, mirror=settings.mirror)
    for spec, subject in ((products_match_catalog, PRODUCT), (default_prices_match_catalog, PRICE)):
        yield _evaluation(spec, batch, result, result.of(subject), requests, targets[spec.key])


def _compare(
    context: dg.AssetCheckExecutionContext,
    batch: str,
    rows: list[Row],
    store: CheckpointStore,
    api: StripeApi,
    *,
    mirror: bool,
) -> tuple[BatchVerification, int]:
    """One read of the batch's products, the comparison, the repairs; and the requests it took."""
    saved = store.load(batch)
    before = api.requests_sent_by_this_thread
    try:
        products = {p["id"]: p for p in api.list_products(product_ids(rows, saved))}
    except StripeFailure as failure:
        if failure.kind is ErrorKind.FATAL:
            raise dg.Failure(
                f"Stripe refused the key ({failure}): check STRIPE_SECRET_KEY.",
                metadata={WRONG_CONFIGURATION: True},
            ) from None
        unread = _unverified("not verified", f"could not read Stripe: {failure}")
        return unread, api.requests_sent_by_this_thread - before
    result = verify_batch(rows, saved, products, mirror=mirror)
    if result.repairs:
        store.record(batch, result.repairs)
        context.log.warning(
            f"batch {batch}: {len(result.repairs)} drifted rows; the next sync reconciles them"
        )
    return result, api.requests_sent_by_this_thread - before


def _unverified(actual: str, note: str) -> BatchVerification:
    """A batch that could not be compared: a mismatch for both checks."""
    return BatchVerification(
        0,
        tuple(
            Mismatch("", "", subject, "batch", "verified", actual, note=note)
            for subject in (PRODUCT, PRICE)
        ),
    )


def _latest_materialization(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey, batch: str
) -> AssetCheckEvaluationTargetMaterializationData | None:
    """The materialization a batch's check result is about (the UI shows results against it)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[batch]), limit=1
    ).records
    if not records:
        return None
    return AssetCheckEvaluationTargetMaterializationData(
        storage_id=records[0].storage_id,
        run_id=records[0].run_id,
        timestamp=records[0].timestamp,
    )


def _evaluation(
    spec: dg.AssetCheckSpec,
    batch: str,
    result: BatchVerification,
    mismatches: list[Mismatch],
    requests: int,
    target: AssetCheckEvaluationTargetMaterializationData | None,
) -> dg.AssetCheckEvaluation:
    errors = [m for m in mismatches if m.severity == ERROR]
    warned = [m for m in mismatches if m.severity == WARNING]
    if mismatches:
        description = f"batch {batch}: {len(errors)} mismatches, {len(warned)} warnings in {result.products} products"
    else:
        description = f"batch {batch}: all {result.products} products match the catalog"
    return dg.AssetCheckEvaluation(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=not mismatches,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "products": result.products,
            "mismatches": len(errors),
            "warnings": len(warned),
            "stripe_requests": requests,
            "mismatch_table": dg.MetadataValue.table(
                records=[dg.TableRecord(m.as_row()) for m in mismatches[:MISMATCH_TABLE_ROWS]],
                schema=dg.TableSchema(columns=[dg.TableColumn(name) for name in MISMATCH_COLUMNS]),
            ),
        },
        target_materialization_data=target,
        blocking=spec.blocking,
        partition=batch,
    )
