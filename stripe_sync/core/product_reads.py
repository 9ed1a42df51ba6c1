"""Many Stripe products read at once: one list request per 100 ids, several in flight.

Reading a run's batches one list request after another costs a round trip each (10 batches
at 300 ms: 3 s); in flight together, paced by the shared throttle, they take about one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stripe_sync.core.errors import StripeFailure
from stripe_sync.core.stripe_api import LIST_PAGE_SIZE, StripeApi


@dataclass(frozen=True)
class Page:
    """One list request's ids, the products among them that exist, and the requests it took
    (retries included); or why it failed."""

    ids: list[str]
    products: list[dict]
    requests: int
    failure: StripeFailure | None = None


def read_pages(api: StripeApi, product_ids: Sequence[str], *, max_in_flight: int) -> Iterator[Page]:
    """The products among `product_ids` (each read once), in pages of 100 ids in their order,
    at most `max_in_flight` requests at once; each page as soon as it and the pages before it
    are read, so a caller works on the first while the rest are in flight. A page that fails
    says so; the others are read all the same. Close the iterator when done early: it waits
    for the requests in flight."""
    ids = list(dict.fromkeys(product_ids))
    chunks = [ids[start : start + LIST_PAGE_SIZE] for start in range(0, len(ids), LIST_PAGE_SIZE)]

    def read(chunk: list[str]) -> Page:
        before = api.requests_sent_by_this_thread
        try:
            products = api.list_products(chunk)
        except StripeFailure as failure:
            return Page(chunk, [], api.requests_sent_by_this_thread - before, failure)
        return Page(chunk, products, api.requests_sent_by_this_thread - before)

    if len(chunks) <= 1:
        yield from map(read, chunks)
        return
    with ThreadPoolExecutor(
        min(max_in_flight, len(chunks)), thread_name_prefix="stripe-read"
    ) as pool:
        yield from pool.map(read, chunks)


@dataclass(frozen=True)
class PriceReads:
    """Every price of some products, by product id; the requests each read took (retries
    included); and each read that failed."""

    prices: dict[str, list[dict]]
    requests: dict[str, int]
    failures: dict[str, StripeFailure]


def read_prices_of(api: StripeApi, product_ids: Sequence[str], *, max_in_flight: int) -> PriceReads:
    """Every price of each product: one list request a product, at most `max_in_flight` at
    once; a read that fails says so, the others are read all the same."""

    def read(product_id: str) -> tuple[list[dict], int, StripeFailure | None]:
        before = api.requests_sent_by_this_thread
        try:
            prices = api.prices_of(product_id)
        except StripeFailure as failure:
            return [], api.requests_sent_by_this_thread - before, failure
        return prices, api.requests_sent_by_this_thread - before, None

    ids = list(dict.fromkeys(product_ids))
    if not ids:
        return PriceReads({}, {}, {})
    with ThreadPoolExecutor(min(max_in_flight, len(ids)), thread_name_prefix="stripe-read") as pool:
        results = dict(zip(ids, pool.map(read, ids), strict=True))
    return PriceReads(
        {
            product_id: prices
            for product_id, (prices, _, failure) in results.items()
            if failure is None
        },
        {product_id: requests for product_id, (_, requests, _) in results.items()},
        {product_id: failure for product_id, (_, _, failure) in results.items() if failure},
    )
