"""One verification of some batches, without Dagster: read -> compare -> record the repairs.

`BatchVerify.verify` reads the Stripe products of the batches by id (100 a list request,
several in flight, never search) and compares each batch with what its latest sync made of
the catalog (the rules of `core/verify.py`) as soon as the pages holding its products have
arrived; with a prices model, each existing product's prices are read too (one request a
product). A drifted row's repair (its checkpoint forgotten) is in the state before the
batch's result is given, so the next sync reconciles the row with Stripe.

A batch whose products Stripe did not give (unreachable past the retries) is a result that
says so, not a comparison; a key Stripe refuses raises `KeyRefused`: no read can succeed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.errors import ErrorKind, StripeFailure
from stripe_sync.core.product_reads import Page, read_pages, read_prices_of
from stripe_sync.core.state import StateStore
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.verify import (
    PRICE,
    PRODUCT,
    BatchVerification,
    Mismatch,
    Row,
    as_synced,
    product_ids,
    verify_batch,
)


class KeyRefused(Exception):
    """Stripe refused the key (authentication or permission): the verification stops."""


@dataclass(frozen=True)
class BatchToVerify:
    """A batch as its verification needs it: its validated rows as planning reads them
    (`planning_inputs`), and whether a sync ever made anything of it in Stripe."""

    key: str
    rows: Sequence[Row]
    synced: bool


@dataclass(frozen=True)
class VerifiedBatch:
    """A batch's verification, and the Stripe requests it cost (retries included; a page
    that also held an earlier batch's products counts for that batch only)."""

    key: str
    result: BatchVerification
    requests: int


class BatchVerify:
    """The verification of one run's batches: Stripe is read, the state takes the repairs."""

    def __init__(self, api: StripeApi, state: StateStore, *, max_in_flight: int, mirror: bool):
        self._api = api
        self._state = state
        self._max_in_flight = max_in_flight
        self._mirror = mirror  # whether rows deleted from the catalog must be archived

    def verify(self, batches: Sequence[BatchToVerify]) -> Iterator[VerifiedBatch]:
        """Each batch's verification, in order, as soon as its products are read (the
        later batches' reads in flight meanwhile); its repairs are recorded by then. A
        batch never synced is not read: there is nothing of it to verify yet. Raises
        `KeyRefused` as soon as a read shows it."""
        synced = [batch for batch in batches if batch.synced]
        saved = {batch.key: self._state.checkpoints(batch.key) for batch in synced}
        ids = {batch.key: product_ids(batch.rows, saved[batch.key]) for batch in synced}
        all_ids = [product_id for batch_ids in ids.values() for product_id in batch_ids]
        reads = read_pages(self._api, all_ids, max_in_flight=self._max_in_flight)
        with contextlib.closing(reads) as pages:
            arrived = _Arrived(pages)
            for batch in batches:
                if not batch.synced:
                    yield VerifiedBatch(
                        batch.key, _unverified("never synced", "run stripe-sync migrate"), 0
                    )
                    continue
                its_pages, requests = arrived.holding(ids[batch.key])
                yield self._compared(batch, saved[batch.key], its_pages, requests)

    def _compared(
        self,
        batch: BatchToVerify,
        saved: Mapping[str, Checkpoint],
        pages: list[Page],
        requests: int,
    ) -> VerifiedBatch:
        """The comparison of a batch's rows and checkpoints with its products (and, with a
        prices model, each existing product's prices: one read a product), its repairs
        recorded; `requests`: its product pages', to which the price reads are added."""
        failed = [page.failure for page in pages if page.failure is not None]
        if failed:
            return VerifiedBatch(batch.key, _stripe_unread(failed[0]), requests)
        products = {product["id"]: product for page in pages for product in page.products}
        with_prices = [
            as_synced(desired, state, saved.get(cms_id))
            for cms_id, desired, _, state in batch.rows
            if desired is not None and desired.prices
        ]
        priced = [desired.stripe_id for desired in with_prices if desired.stripe_id in products]
        prices = read_prices_of(self._api, priced, max_in_flight=self._max_in_flight)
        requests += sum(prices.requests.values())
        if prices.failures:
            failure = next(iter(prices.failures.values()))
            return VerifiedBatch(batch.key, _stripe_unread(failure), requests)
        result = verify_batch(
            batch.rows, saved, products, mirror=self._mirror, prices=prices.prices
        )
        if result.repairs:
            self._state.record([], {batch.key: result.repairs})
        return VerifiedBatch(batch.key, result, requests)


class _Arrived:
    """The pages read so far, in order; a refused key raises as soon as it shows."""

    def __init__(self, pages: Iterator[Page]):
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
                raise KeyRefused(f"Stripe refused the key ({page.failure})")
            self._page_of.update(dict.fromkeys(page.ids, len(self._read)))
            self._read.append(page)
        indexes = sorted({self._page_of[product_id] for product_id in product_ids})
        requests = sum(self._read[i].requests for i in indexes if i not in self._counted)
        self._counted.update(indexes)
        return [self._read[i] for i in indexes], requests


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
