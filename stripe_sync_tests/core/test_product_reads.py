"""Reading many products at once: pages of 100 ids, in their order, several in flight."""

from __future__ import annotations

import threading
import time

from stripe_sync.core.errors import ErrorKind, StripeFailure
from stripe_sync.core.product_reads import read_pages


class FakeApi:
    """list_products that takes a while, counts requests per thread and fails on demand."""

    def __init__(self, failing: set[str] = frozenset()):
        self.failing = failing
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()
        self._this_thread = threading.local()

    @property
    def requests_sent_by_this_thread(self) -> int:
        return getattr(self._this_thread, "sent", 0)

    def list_products(self, ids: list[str]) -> list[dict]:
        self._this_thread.sent = self.requests_sent_by_this_thread + 1
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.05)
        with self._lock:
            self.in_flight -= 1
        if self.failing & set(ids):
            raise StripeFailure(ErrorKind.RETRYABLE, "Stripe is down")
        return [{"id": product_id} for product_id in ids if not product_id.endswith("x")]


def test_pages_of_100_in_order_each_id_once_several_in_flight():
    ids = [f"p{n}" for n in range(250)] + ["p0", "p7x"]
    api = FakeApi()

    pages = list(read_pages(api, ids, max_in_flight=4))

    assert [len(page.ids) for page in pages] == [100, 100, 51]
    assert [product_id for page in pages for product_id in page.ids] == [
        *(f"p{n}" for n in range(250)),
        "p7x",
    ]
    assert sum(len(page.products) for page in pages) == 250  # p7x does not exist
    assert [page.requests for page in pages] == [1, 1, 1]
    assert api.most_in_flight == 3


def test_a_failed_page_says_so_and_the_others_are_read():
    api = FakeApi(failing={"p150"})

    pages = list(read_pages(api, [f"p{n}" for n in range(300)], max_in_flight=2))

    assert [page.failure is not None for page in pages] == [False, True, False]
    assert pages[1].products == [] and pages[1].failure.message == "Stripe is down"
    assert len(pages[0].products) == len(pages[2].products) == 100


def test_one_page_is_read_in_the_callers_thread_and_none_needs_no_request():
    api = FakeApi()

    assert list(read_pages(api, [], max_in_flight=4)) == []
    [page] = read_pages(api, ["p1"], max_in_flight=4)

    assert page.products == [{"id": "p1"}] and api.requests_sent_by_this_thread == 1
