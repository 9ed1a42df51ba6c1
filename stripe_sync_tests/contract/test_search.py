"""Search: query language, search_result shape, eventual consistency.

The emulator indexes objects ``search_delay_s=1.0`` after a write, so an immediate
search misses them and a later one finds them. Real Stripe gives no bound worth
asserting beyond "eventually" (normally under a minute), so in real mode the tests only
poll (up to 120 s) until the object shows up.
"""

from __future__ import annotations

import time

from ._helpers import ids_of, poll

EMULATOR_DELAY_S = 1.0


def _poll_window(is_emulator: bool) -> dict:
    return (
        {"timeout": 10.0, "interval": 0.2} if is_emulator else {"timeout": 120.0, "interval": 2.0}
    )


def test_a_new_product_becomes_searchable_only_eventually(
    client, make_product, unique_id, run_tag, is_emulator
):
    probe = unique_id("probe")
    query = f"metadata['contract_run']:'{run_tag}' AND metadata['probe']:'{probe}'"
    written_at = time.monotonic()
    product = make_product(metadata={"probe": probe})
    immediate = client.v1.products.search(params={"query": query})
    assert immediate.object == "search_result"
    assert immediate.url == "/v1/products/search"
    assert "next_page" in immediate and "has_more" in immediate
    if is_emulator:
        assert immediate.data == [], "search must not be read-after-write consistent"
    found, _ = poll(
        lambda: client.v1.products.search(params={"query": query}),
        lambda r: len(r.data) > 0,
        **_poll_window(is_emulator),
    )
    assert ids_of(found.data) == [product.id]
    if is_emulator:
        assert time.monotonic() - written_at >= EMULATOR_DELAY_S * 0.9


def test_a_changed_product_is_searchable_by_its_new_values_only_eventually(
    client, make_product, unique_id, run_tag, is_emulator
):
    product = make_product(metadata={"probe": unique_id("probe")})
    new_probe = unique_id("probe")
    query = f"metadata['contract_run']:'{run_tag}' AND metadata['probe']:'{new_probe}'"
    client.v1.products.update(product.id, params={"metadata": {"probe": new_probe}})
    if is_emulator:
        assert client.v1.products.search(params={"query": query}).data == []
    found, _ = poll(
        lambda: client.v1.products.search(params={"query": query}),
        lambda r: len(r.data) > 0,
        **_poll_window(is_emulator),
    )
    assert ids_of(found.data) == [product.id]


def test_a_new_price_becomes_searchable_only_eventually(
    client, make_product, make_price, unique_id, is_emulator
):
    product = make_product()
    probe = unique_id("probe")
    price = make_price(product.id, metadata={"probe": probe})
    query = f"metadata['probe']:'{probe}' AND active:'true'"
    immediate = client.v1.prices.search(params={"query": query})
    assert immediate.object == "search_result"
    assert immediate.url == "/v1/prices/search"
    if is_emulator:
        assert immediate.data == []
    found, _ = poll(
        lambda: client.v1.prices.search(params={"query": query}),
        lambda r: len(r.data) > 0,
        **_poll_window(is_emulator),
    )
    assert ids_of(found.data) == [price.id]


def test_search_results_page_with_next_page(client, make_product, unique_id, run_tag, is_emulator):
    probe = unique_id("probe")
    made = {make_product(metadata={"probe": probe}).id for _ in range(3)}
    query = f"metadata['contract_run']:'{run_tag}' AND metadata['probe']:'{probe}'"
    poll(
        lambda: client.v1.products.search(params={"query": query, "limit": 100}),
        lambda r: len(r.data) == 3,
        **_poll_window(is_emulator),
    )
    first = client.v1.products.search(params={"query": query, "limit": 2})
    assert len(first.data) == 2
    assert first.has_more is True
    assert isinstance(first.next_page, str) and first.next_page
    rest = client.v1.products.search(params={"query": query, "limit": 2, "page": first.next_page})
    assert rest.has_more is False
    assert rest.next_page is None
    seen = ids_of(first.data) + ids_of(rest.data)
    assert len(seen) == 3 and set(seen) == made
