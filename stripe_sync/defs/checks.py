"""Asset checks: a batch fit to go to Stripe, how much of it was quarantined, and whether
Stripe holds what the batch's latest sync made (verification)."""

import contextlib
import warnings
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from pydantic import Field

from stripe_sync.core.errors import ConfigError, ErrorKind, StripeFailure
from stripe_sync.core.state import StateStore
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
from stripe_sync.defs.dagster_compat import CheckTarget
from stripe_sync.defs.outcomes import RunOutcome, record_outcome
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource, PipelineSettings, StripeResource

# A batch this small may simply hold a few bad rows; from this size on, a column without a
# single usable value means the column itself is wrong (a renamed field, another type).
STRUCTURE_MIN_ROWS = 5
_COLUMN_REASONS = {
    "name": ("name_missing",),
    "price": ("price_missing", "price_not_a_number", "price_ambiguous"),
}


def _has(reasons: tuple[str, ...], codes: tuple[str, ...]) -> bool:
    return any(reason.split(":", 1)[0] in codes for reason in reasons)


# Partitioned checks are a Dagster preview; partitioned, each reads the run's batches only.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
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
    description="Warns when more than `invalid_share_threshold` (default 5%) of a batch is invalid.",
)


@dg.multi_asset_check(
    specs=[batch_structure, invalid_share],
    ins={"validated_products": dg.AssetIn(validated_products.key)},
)
def batch_quality(
    context: dg.AssetCheckExecutionContext,
    validated_products: pd.DataFrame,
    settings: PipelineSettings,
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each batch of the run fit to go to Stripe (blocking), and how much of it was quarantined."""
    for batch in context.partition_keys:
        rows = validated_products[validated_products["batch"] == batch]
        target = _latest_materialization(context, batch_structure.asset_key, batch)
        yield _batch_evaluation(batch_structure, batch, target, **_structure(rows))
        yield _batch_evaluation(
            invalid_share, batch, target, **_invalid_share(rows, settings.invalid_share_threshold)
        )
    yield from _check_outputs(context)


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
        "description": f"{invalid} of {len(rows)} rows invalid ({share:.1%}; warns above {threshold:.1%})",
        "metadata": {"invalid": invalid, "rows": len(rows), "invalid_share": share},
    }


def _batch_evaluation(
    spec: dg.AssetCheckSpec,
    batch: str,
    target: CheckTarget | None,
    *,
    passed: bool,
    severity: dg.AssetCheckSeverity,
    description: str,
    metadata: dict,
) -> dg.AssetCheckEvaluation:
    """One check's result for one batch. An AssetCheckResult can't name its partition: in a
    run over a range of batches Dagster would record it for no batch at all."""
    return dg.AssetCheckEvaluation(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=passed,
        severity=severity,
        description=f"batch {batch}: {description}",
        metadata=metadata,
        target_materialization_data=target,
        blocking=spec.blocking,  # a failed blocking ERROR fails the step: nothing downstream runs
        partition=batch,
    )


def _check_outputs(context: dg.AssetCheckExecutionContext) -> Iterator[dg.Output]:
    for output in context.op_def.output_defs:  # the checks' outputs, which hold no value
        yield dg.Output(None, output_name=output.name)


# --- verification -------------------------------------------------------------------------

MISMATCH_TABLE_ROWS = 100  # per batch and check; the counts hold them all
MISMATCH_COLUMNS = ("severity", "cms_id", "product_id", "field", "expected", "actual", "note")

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


class VerifyRunConfig(dg.Config):
    """Options of one run's verification (`ops: stripe_matches_catalog: config:`)."""

    mirror: bool | None = Field(
        default=None,
        description="Whether rows deleted from the catalog must be archived (as the run's "
        "stripe_products mirror); unset: the setting sync.mirror.",
    )


@dg.multi_asset_check(
    specs=[products_match_catalog, default_prices_match_catalog],
    ins={"validated_products": dg.AssetIn(validated_products.key)},
)
def stripe_matches_catalog(
    context: dg.AssetCheckExecutionContext,
    config: VerifyRunConfig,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    settings: PipelineSettings,
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Verification: reads each batch's Stripe products by id (100 per request, never search)
    and compares them with what the batch's latest sync made of the catalog. A drifted row's
    checkpoint is forgotten, so the next sync reconciles it with Stripe."""
    mirror = settings.mirror if config.mirror is None else config.mirror
    with _stripe_api(context, stripe) as api, catalog.opened() as source:
        for batch in context.partition_keys:
            rows = validated_products[validated_products["batch"] == batch]
            yield from _verify(
                context, batch, list(planning_inputs(rows)), source.state, api, mirror
            )
    yield from _check_outputs(context)


@contextlib.contextmanager
def _stripe_api(
    context: dg.AssetCheckExecutionContext, stripe: StripeResource
) -> Iterator[StripeApi]:
    try:
        api = stripe.api()
    except ConfigError as error:
        record_outcome(context, RunOutcome.WRONG_CONFIGURATION, str(error))
        raise dg.Failure(str(error)) from None
    try:
        yield api
    finally:
        api.close()


def _verify(
    context: dg.AssetCheckExecutionContext,
    batch: str,
    rows: list[Row],
    store: StateStore,
    api: StripeApi,
    mirror: bool,
) -> Iterator[dg.AssetCheckEvaluation]:
    """The two checks' results for one batch."""
    targets = {
        spec.key: _latest_materialization(context, spec.asset_key, batch)
        for spec in context.check_specs
    }
    if targets[products_match_catalog.key] is None:
        result, requests = _unverified("never synced", "run stripe-sync migrate"), 0
    else:
        result, requests = _compare(context, batch, rows, store, api, mirror=mirror)
    for spec, subject in ((products_match_catalog, PRODUCT), (default_prices_match_catalog, PRICE)):
        yield _evaluation(spec, batch, result, result.of(subject), requests, targets[spec.key])


def _compare(
    context: dg.AssetCheckExecutionContext,
    batch: str,
    rows: list[Row],
    store: StateStore,
    api: StripeApi,
    *,
    mirror: bool,
) -> tuple[BatchVerification, int]:
    """One read of the batch's products, the comparison, the repairs; and the requests it took."""
    saved = store.checkpoints(batch)
    before = api.requests_sent_by_this_thread
    try:
        products = {p["id"]: p for p in api.list_products(product_ids(rows, saved))}
    except StripeFailure as failure:
        if failure.kind is ErrorKind.FATAL:
            message = f"Stripe refused the key ({failure}): check STRIPE_SECRET_KEY."
            record_outcome(context, RunOutcome.KEY_REFUSED, message)
            raise dg.Failure(message) from None
        unread = _unverified("not verified", f"could not read Stripe: {failure}")
        return unread, api.requests_sent_by_this_thread - before
    result = verify_batch(rows, saved, products, mirror=mirror)
    if result.repairs:
        store.record([], {batch: result.repairs})
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
) -> CheckTarget | None:
    """The materialization a batch's check result is about (the UI shows results against it)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[batch]), limit=1
    ).records
    if not records:
        return None
    return CheckTarget(
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
    target: CheckTarget | None,
) -> dg.AssetCheckEvaluation:
    errors = [m for m in mismatches if m.severity == ERROR]
    warned = [m for m in mismatches if m.severity == WARNING]
    if mismatches:
        description = (
            f"{len(errors)} mismatches, {len(warned)} warnings in {result.products} products"
        )
    else:
        description = f"all {result.products} products match the catalog"
    return _batch_evaluation(
        spec,
        batch,
        target,
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
    )
