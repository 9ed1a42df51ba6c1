"""Asset checks: a batch fit to go to Stripe, how much of it was quarantined, and whether
Stripe holds what the batch's latest sync made (verification)."""

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence

import dagster as dg
import pandas as pd

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.errors import ConfigError, ErrorKind, StripeFailure
from stripe_sync.core.product_reads import Page, PriceReads, read_pages, read_prices_of
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
    as_synced,
    product_ids,
    verify_batch,
)
from stripe_sync.core.wording import counted
from stripe_sync.defs.assets import stripe_prices, stripe_products, validated_products
from stripe_sync.defs.dagster_compat import CheckTarget
from stripe_sync.defs.outcomes import RunOutcome, record_outcome
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.resources import CatalogResource, StripeResource
from stripe_sync.defs.run_options import RunOptions
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
    settings: dg.ResourceParam[Settings],
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Each batch of the run fit to go to Stripe (blocking), and how much of it was quarantined."""
    targets = _latest_materializations(context, batch_structure.asset_key, context.partition_keys)
    for batch in context.partition_keys:
        rows = validated_products[validated_products["batch"] == batch]
        target = targets.get(batch)
        yield _batch_evaluation(batch_structure, batch, target, **_structure(rows))
        yield _batch_evaluation(
            invalid_share,
            batch,
            target,
            **_invalid_share(rows, settings.validation.invalid_share_threshold),
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
        "description": (
            f"{invalid} of {counted(len(rows), 'row')} invalid ({share:.1%}; warns above "
            f"{threshold:.1%})"
        ),
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
    """Verification: reads the Stripe products of the run's batches by id (100 per request,
    several in flight, never search) and compares each batch's with what its latest sync made
    of the catalog, as soon as they are read. A drifted row's checkpoint is forgotten, so the
    next sync reconciles it with Stripe."""
    mirror = config.mirrors(settings)
    batches = context.partition_keys
    targets = {
        spec.key: _latest_materializations(context, spec.asset_key, batches)
        for spec in context.check_specs
    }
    with _stripe_api(context, stripe) as api, catalog.opened() as source:
        rows = {
            batch: list(planning_inputs(validated_products[validated_products["batch"] == batch]))
            for batch in batches
        }
        # A batch never synced is not read: there is nothing of it to verify yet.
        saved = {
            batch: source.state.checkpoints(batch)
            for batch in batches
            if batch in targets[products_match_catalog.key]
        }
        ids = {batch: product_ids(rows[batch], saved[batch]) for batch in saved}
        in_flight = stripe.in_flight(api)
        all_ids = [product_id for batch_ids in ids.values() for product_id in batch_ids]
        with contextlib.closing(read_pages(api, all_ids, max_in_flight=in_flight)) as pages:
            arrived = _Arrived(context, pages)
            for batch in batches:
                if batch in saved:
                    its_pages, requests = arrived.holding(ids[batch])
                    result, requests = _compare(
                        context,
                        batch,
                        rows[batch],
                        saved[batch],
                        its_pages,
                        source.state,
                        mirror,
                        prices_of=lambda ids: read_prices_of(api, ids, max_in_flight=in_flight),
                        requests=requests,
                    )
                else:
                    result, requests = _unverified("never synced", "run stripe-sync migrate"), 0
                for spec, subject in (
                    (products_match_catalog, PRODUCT),
                    (default_prices_match_catalog, PRICE),
                ):
                    target = targets[spec.key].get(batch)
                    yield _evaluation(spec, batch, result, result.of(subject), requests, target)
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


class _Arrived:
    """The pages read so far, in order; a refused key fails the step as soon as it shows."""

    def __init__(self, context: dg.AssetCheckExecutionContext, pages: Iterator[Page]):
        self._context = context
        self._pages = pages
        self._read: list[Page] = []
        self._page_of: dict[str, int] = {}  # product id -> its page in `_read`
        self._counted: set[int] = set()  # pages whose requests a batch has reported

    def holding(self, product_ids: list[str]) -> tuple[list[Page], int]:
        """The pages that read these products (one read holds up to 100, of one batch or
        more), once they have all arrived; and their requests, less those of pages an
        earlier batch shared and reported (each request is reported once)."""
        while any(product_id not in self._page_of for product_id in product_ids):
            page = next(self._pages)
            if page.failure is not None and page.failure.kind is ErrorKind.FATAL:
                message = f"Stripe refused the key ({page.failure}): check STRIPE_SECRET_KEY."
                record_outcome(self._context, RunOutcome.KEY_REFUSED, message)
                raise dg.Failure(message)
            self._page_of.update(dict.fromkeys(page.ids, len(self._read)))
            self._read.append(page)
        indexes = sorted({self._page_of[product_id] for product_id in product_ids})
        requests = sum(self._read[i].requests for i in indexes if i not in self._counted)
        self._counted.update(indexes)
        return [self._read[i] for i in indexes], requests


def _compare(
    context: dg.AssetCheckExecutionContext,
    batch: str,
    rows: list[Row],
    saved: dict[str, Checkpoint],
    pages: list[Page],
    store: StateStore,
    mirror: bool,
    *,
    prices_of: Callable[[list[str]], PriceReads],
    requests: int,
) -> tuple[BatchVerification, int]:
    """The comparison of a batch's rows and checkpoints with its products (and, with a
    prices model, each existing product's prices: one read a product), the repairs; and
    the requests, `requests` (the product pages') and the price reads."""
    failed = [page.failure for page in pages if page.failure is not None]
    if failed:
        return _stripe_unread(failed[0]), requests
    products = {product["id"]: product for page in pages for product in page.products}
    synced = [
        as_synced(desired, state, saved.get(cms_id))
        for cms_id, desired, _, state in rows
        if desired is not None and desired.prices
    ]
    priced = [desired.stripe_id for desired in synced if desired.stripe_id in products]
    reads = prices_of(priced)
    requests += sum(reads.requests.values())
    if reads.failures:
        return _stripe_unread(next(iter(reads.failures.values()))), requests
    result = verify_batch(rows, saved, products, mirror=mirror, prices=reads.prices)
    if result.repairs:
        store.record([], {batch: result.repairs})
        context.log.warning(
            f"batch {batch}: {counted(len(result.repairs), 'drifted row')}; the next sync "
            "reconciles them"
        )
    return result, requests


def _unverified(actual: str, note: str, *, stripe_unread: str = "") -> BatchVerification:
    """A batch that could not be compared: a mismatch for both checks."""
    return BatchVerification(
        0,
        tuple(
            Mismatch("", "", subject, "batch", "verified", actual, note=note)
            for subject in (PRODUCT, PRICE)
        ),
        stripe_unread=stripe_unread,
    )


def _stripe_unread(failure: StripeFailure) -> BatchVerification:
    """A batch whose products Stripe did not give (unreachable past the retries)."""
    return _unverified(
        "not verified", f"could not reach Stripe: {failure}", stripe_unread=str(failure)
    )


def _latest_materializations(
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
    if result.stripe_unread:
        description = f"not verified: could not reach Stripe: {result.stripe_unread}"
    elif mismatches:
        description = (
            f"{counted(len(errors), 'mismatch')}, {counted(len(warned), 'warning')} in "
            f"{counted(result.products, 'product')}"
        )
    else:
        description = f"no mismatch in {counted(result.products, 'product')}"
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
            "stripe_unread": result.stripe_unread,
            "mismatch_table": dg.MetadataValue.table(
                records=[dg.TableRecord(m.as_row()) for m in mismatches[:MISMATCH_TABLE_ROWS]],
                schema=dg.TableSchema(columns=[dg.TableColumn(name) for name in MISMATCH_COLUMNS]),
            ),
        },
    )
