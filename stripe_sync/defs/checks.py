"""Asset checks: whether Stripe holds what each batch's latest sync made (verification, the
unit of work in `core/verification.py`); and what every check of a batch shares (the checks
before Stripe are in `quality_checks.py`): each result recorded for its batch, against the
batch's latest materialization."""

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import dagster as dg
import pandas as pd

from stripe_sync.core.errors import ConfigError
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.validation import planning_inputs
from stripe_sync.core.verification import BatchToVerify, BatchVerify, KeyRefused, VerifiedBatch
from stripe_sync.core.verify import ERROR, PRICE, PRODUCT, WARNING, Mismatch
from stripe_sync.core.wording import counted
from stripe_sync.defs.assets import stripe_prices, stripe_products, validated_products
from stripe_sync.defs.dagster_compat import CheckTarget
from stripe_sync.defs.outcomes import RunOutcome, record_outcome
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource, StripeResource
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.settings.model import Settings

# Partitioned checks are a Dagster preview; partitioned, each reads the run's batches only.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)


def batch_evaluation(
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


def check_outputs(context: dg.AssetCheckExecutionContext) -> Iterator[dg.Output]:
    """The outputs a multi-asset check must yield after its evaluations."""
    for output in context.op_def.output_defs:  # the checks' outputs, which hold no value
        yield dg.Output(None, output_name=output.name)


def latest_materializations(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey, batches: Sequence[str]
) -> dict[str, CheckTarget]:
    """The materialization each batch's check result is about (the UI shows results against
    it), for the batches that have one. One query when a run just materialized every batch
    (the newest records are theirs); one per batch for the rest."""
    targets: dict[str, CheckTarget] = {}
    newest = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(batches)),
        limit=len(batches),
    ).records
    for record in newest:
        targets.setdefault(record.partition_key, _target(record))
    for batch in batches:
        if batch in targets:
            continue
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[batch]), limit=1
        ).records
        if records:
            targets[batch] = _target(records[0])
    return targets


def _target(record: dg.EventLogRecord) -> CheckTarget:
    return CheckTarget(
        storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
    )


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
    description="Every product's default price is active, with the catalog's amount and currency; "
    "with a prices model, every price of every product (amount, currency, interval, nickname, "
    "active, default).",
)


@dg.multi_asset_check(
    specs=[products_match_catalog, default_prices_match_catalog],
    ins={"validated_products": dg.AssetIn(validated_products.key)},
)
def stripe_matches_catalog(
    context: dg.AssetCheckExecutionContext,
    config: RunOptions,
    validated_products: pd.DataFrame,
    stripe: StripeResource,
    catalog: CatalogResource,
    settings: dg.ResourceParam[Settings],
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Verification (`BatchVerify`): reads the Stripe products of the run's batches by id (100
    per request, several in flight, never search) and compares each batch's with what its
    latest sync made of the catalog, as soon as they are read. A drifted row's checkpoint is
    forgotten, so the next sync reconciles it with Stripe."""
    mirror = config.mirrors(settings)
    with _stripe_api(context, stripe) as api, catalog.opened() as source:
        verify = BatchVerify(api, source.state, max_in_flight=stripe.in_flight(api), mirror=mirror)
        yield from _evaluations(context, verify, validated_products)
    yield from check_outputs(context)


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


def _evaluations(
    context: dg.AssetCheckExecutionContext, verify: BatchVerify, validated: pd.DataFrame
) -> Iterator[dg.AssetCheckEvaluation]:
    """Both checks' result for each batch of the run, as soon as it is verified; a key
    Stripe refuses fails the step, and no further run can succeed."""
    batches = context.partition_keys
    targets = {
        spec.key: latest_materializations(context, spec.asset_key, batches)
        for spec in context.check_specs
    }
    to_verify = [
        BatchToVerify(
            batch,
            list(planning_inputs(validated[validated["batch"] == batch])),
            # Its stripe_products are materialized once a sync of it made anything in Stripe.
            synced=batch in targets[products_match_catalog.key],
        )
        for batch in batches
    ]
    try:
        for verified in verify.verify(to_verify):
            if verified.result.repairs:
                drifted = counted(len(verified.result.repairs), "drifted row")
                context.log.warning(
                    f"batch {verified.key}: {drifted}; the next sync reconciles them"
                )
            for spec, subject in (
                (products_match_catalog, PRODUCT),
                (default_prices_match_catalog, PRICE),
            ):
                target = targets[spec.key].get(verified.key)
                yield _evaluation(spec, verified, verified.result.of(subject), target)
    except KeyRefused as refused:
        message = f"{refused}: check STRIPE_SECRET_KEY."
        record_outcome(context, RunOutcome.KEY_REFUSED, message)
        raise dg.Failure(message) from None


def _evaluation(
    spec: dg.AssetCheckSpec,
    verified: VerifiedBatch,
    mismatches: list[Mismatch],
    target: CheckTarget | None,
) -> dg.AssetCheckEvaluation:
    """One check's result for a verified batch: its mismatches (those the check is about)."""
    result = verified.result
    errors = [m for m in mismatches if m.severity == ERROR]
    warned = [m for m in mismatches if m.severity == WARNING]
    if result.stripe_unread:
        description = f"not verified: could not reach Stripe: {result.stripe_unread}"
    elif mismatches:
        description = (
            f"{counted(len(errors), 'mismatch')}, {counted(len(warned), 'warning')} in "
            f"{counted(result.products, 'product')}"
        )
    else:
        description = f"no mismatch in {counted(result.products, 'product')}"
    return batch_evaluation(
        spec,
        verified.key,
        target,
        passed=not mismatches,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "products": result.products,
            "mismatches": len(errors),
            "warnings": len(warned),
            "stripe_requests": verified.requests,
            "stripe_unread": result.stripe_unread,
            "mismatch_table": dg.MetadataValue.table(
                records=[dg.TableRecord(m.as_row()) for m in mismatches[:MISMATCH_TABLE_ROWS]],
                schema=dg.TableSchema(columns=[dg.TableColumn(name) for name in MISMATCH_COLUMNS]),
            ),
        },
    )
